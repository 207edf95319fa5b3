"""benchmarks.profile_path: Python calls per echoed message, measured for
real (the example server under cProfile, driven by the C load generator)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_calls_per_message_of_the_echo_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.profile_path", "--measure", "calls", "--conns", "10",
         "--seconds", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    match = re.search(r"echo\.py pingpong 10 conns: ([\d.]+) Python calls per message", result.stdout)
    assert match, result.stdout
    # A message costs some tens of calls (read, write, drain and what they
    # call); far fewer would mean nothing was profiled, far more a regression.
    assert 10 < float(match.group(1)) < 120


def test_a_server_that_does_not_stop_on_sigterm_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import argparse, signal, socket, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: None)\n"
        "parser = argparse.ArgumentParser(); parser.add_argument('--port', type=int)\n"
        "listener = socket.create_server(('127.0.0.1', parser.parse_args().port))\n"
        "while True:\n"
        "    conn, _ = listener.accept(); conn.close()\n")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.profile_path", "--example", str(script), "--measure",
         "calls", "--mode", "connect", "--conns", "2", "--seconds", "0.5"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "did not exit cleanly on SIGTERM" in result.stderr
