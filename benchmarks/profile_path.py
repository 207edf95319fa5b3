"""Per-message cost of an echo example: Python calls and CPU instructions.

    python -m benchmarks.profile_path                      # both measures, echo.py, 100 conns
    python -m benchmarks.profile_path --example echo_events.py --mode connect
    python -m benchmarks.profile_path --measure calls      # cProfile only (no valgrind needed)

The wall-clock ratios of ``python -m benchmarks`` move by 5-10% between runs
on a shared machine; these two measures do not, so they show what one change
to the hot path saves:

- ``calls``: the server runs under cProfile while the load generator drives
  it; every Python-level call (functions, methods, builtins) is counted and
  divided by the messages (or connections) the load generator counted. Always
  of the pure-Python code (GSOCKET_PURE_PYTHON=1): cProfile does not see
  inside the compiled twins.
- ``instructions``: the server runs under valgrind's callgrind; counting is
  zeroed after a warm-up run and dumped after the measured one, and the
  user-space instructions (Python, C extensions, libc; not the kernel) are
  divided the same way. valgrind slows the server some 50x, so the load is
  lighter than in the real benchmark (fewer events per loop turn): compare
  figures taken this way only with each other. Of the compiled twins when they
  are built (see gsocket/_accelerate.py), of the pure code with ``--pure``.

The server is the example from ``examples/`` (or any script taking
``--port``) started with this Python; needs a C compiler for the load
generator and ``valgrind`` for the instruction count. Prints one line per
measure. The call count needs a server that exits cleanly on SIGTERM (the
gsocket examples do).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from .loadgen import parse_key_values
from .native import build_loadgen
from .server_process import accepts_connections, pick_free_port

REPO = Path(__file__).resolve().parent.parent

_PROFILED_SERVER = """
import cProfile, os, pstats, runpy, sys
script, port, out = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[0] = os.path.dirname(os.path.abspath(script))   # as when the script is run
profile = cProfile.Profile()
sys.argv = [script, "--port", port]
profile.enable()
try:
    runpy.run_path(script, run_name="__main__")
finally:
    profile.disable()
    calls = sum(row[1] for row in pstats.Stats(profile).stats.values())
    with open(out, "w") as handle:
        handle.write(str(calls))
"""


def _wait_listening(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not accepts_connections("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not listen on {port}")
        time.sleep(0.2)


def _drive(loadgen: Path, port: int, mode: str, conns: int, seconds: float) -> int:
    """Run the load generator once; return the messages (connections) it counted."""
    line = subprocess.run(
        [str(loadgen), "-H", "127.0.0.1", "-p", str(port), "-m", mode, "-c", str(conns),
         "-s", "64", "-t", f"{seconds:g}", "-w", "0"],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return int(parse_key_values(line)["msgs"])


#: Seconds a server gets to exit after SIGTERM (it writes its call count then).
STOP_GRACE = 10.0


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _environment(pure: bool) -> dict:
    environment = dict(os.environ)
    if pure:
        environment["GSOCKET_PURE_PYTHON"] = "1"
    return environment


def count_calls(script: Path, mode: str, conns: int, seconds: float, loadgen: Path) -> float:
    """Python calls of the pure-Python code per message (``mode`` pingpong)
    or per connection (connect)."""
    port = pick_free_port()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "calls"
        process = subprocess.Popen([sys.executable, "-c", _PROFILED_SERVER, str(script), str(port),
                                    str(out)], cwd=REPO, env=_environment(True),
                                   stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            _wait_listening(port, process, 30)
            messages = _drive(loadgen, port, mode, conns, seconds)
        finally:
            _stop(process)
        if not out.exists():
            raise RuntimeError(f"{script.name} did not exit cleanly on SIGTERM: no call count")
        return int(out.read_text()) / max(messages, 1)


def count_instructions(script: Path, mode: str, conns: int, seconds: float,
                       loadgen: Path, pure: bool = False) -> float:
    """User-space instructions per message (or connection), warm-up excluded;
    of the pure-Python code when ``pure``, else of what runs (compiled twins
    when built)."""
    port = pick_free_port()
    with tempfile.TemporaryDirectory() as scratch:
        dump = Path(scratch) / "callgrind.out"
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}", sys.executable,
             str(script), "--port", str(port)],
            cwd=REPO, env=_environment(pure), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            _wait_listening(port, process, 120)
            _drive(loadgen, port, mode, conns, 2)                  # warm-up, not counted
            subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True,
                           capture_output=True)
            messages = _drive(loadgen, port, mode, conns, seconds)
            subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True,
                           capture_output=True)
        finally:
            _stop(process)
        total = 0
        for part in Path(scratch).glob("callgrind.out*"):
            match = re.search(r"^(?:summary|totals): (\d+)", part.read_text(errors="replace"),
                              re.MULTILINE)
            if match and part.name != dump.name:                   # the dump after zeroing
                total = int(match.group(1))
        return total / max(messages, 1)


def _twins_built() -> bool:
    probe = ("import gsocket.socket, gsocket._accelerate as a; "
             "print(len(a.compiled_modules()))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, env=_environment(False))
    return result.returncode == 0 and result.stdout.strip() not in ("", "0")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="echo.py",
                        help="a script in examples/ (or a path) that takes --port")
    parser.add_argument("--mode", choices=["pingpong", "connect"], default="pingpong")
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--measure", choices=["calls", "instructions", "both"], default="both")
    parser.add_argument("--pure", action="store_true",
                        help="count the instructions of the pure-Python code, not the compiled twins")
    args = parser.parse_args(argv)
    script = Path(args.example)
    if not script.is_file():
        script = REPO / "examples" / args.example
    loadgen = build_loadgen(REPO)
    unit = "message" if args.mode == "pingpong" else "connection"
    label = f"{script.name} {args.mode} {args.conns} conns"
    if args.measure in ("calls", "both"):
        calls = count_calls(script, args.mode, args.conns, args.seconds, loadgen)
        print(f"{label}: {calls:.1f} Python calls per {unit} (pure Python)")
    if args.measure in ("instructions", "both"):
        if shutil.which("valgrind") is None:
            print("valgrind is not installed: no instruction count", file=sys.stderr)
            return 1
        instructions = count_instructions(script, args.mode, args.conns, args.seconds, loadgen,
                                          args.pure)
        code = "pure Python" if args.pure or not _twins_built() else "compiled"
        print(f"{label}: {instructions:,.0f} user-space instructions per {unit} ({code})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
