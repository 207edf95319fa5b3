"""The benchmarks' own load generator builds from the repository alone, drives
examples/echo.py, and catches an echo that gets bytes wrong. (No speed is
asserted: figures belong to ``python -m benchmarks``.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the benchmarks package is not installed, only the checkout has it
    sys.path.insert(0, str(ROOT))

from benchmarks import native  # noqa: E402
from benchmarks.loadgen import parse_key_values  # noqa: E402
from benchmarks.server_process import accepts_connections, pick_free_port  # noqa: E402
from gsocket import netpack  # noqa: E402

pytestmark = pytest.mark.gsocket(timeout=60)


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return native.build(native.loadgen_source(ROOT), "loadgen", tmp_path_factory.mktemp("build"))


def run_loadgen(binary: Path, port: int, *args: str) -> Dict[str, str]:
    completed = subprocess.run(
        [str(binary), "-H", "127.0.0.1", "-p", str(port), *args],
        capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0, completed.stderr
    result = [line for line in completed.stdout.splitlines() if line.startswith("mode=")]
    assert len(result) == 1, completed.stdout
    return parse_key_values(result[0])


@pytest.fixture
def echo_example() -> Iterator[Tuple[int, subprocess.Popen]]:
    port = pick_free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "echo.py"), "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not accepts_connections("127.0.0.1", port) and process.poll() is None:
            assert time.monotonic() < deadline, "examples/echo.py never listened"
            time.sleep(0.02)
        assert process.poll() is None, "examples/echo.py exited at start"
        yield port, process
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_sources_are_in_the_repository() -> None:
    assert native.loadgen_source(ROOT).is_relative_to(ROOT / "benchmarks")
    assert native.echo_epoll_source(ROOT).is_file()


def test_pingpong_against_the_echo_example(loadgen: Path, echo_example: Tuple[int, subprocess.Popen]) -> None:
    port, process = echo_example
    fields = run_loadgen(loadgen, port, "-m", "pingpong", "-c", "4", "-s", "100", "-t", "1", "-w", "0.1",
                         "-P", str(process.pid))
    assert fields["mismatch"] == "0" and fields["err"] == "0" and fields["conn_err"] == "0", fields
    messages = int(fields["msgs"])
    assert messages > 0
    # every byte of every counted round trip came back and was compared
    assert int(fields["checked_bytes"]) >= messages * 100
    assert float(fields["p50_us"]) <= float(fields["p99_us"])
    assert "srv_cpu" in fields


def test_idle_connections_held_and_pinged_again(loadgen: Path,
                                                echo_example: Tuple[int, subprocess.Popen]) -> None:
    port, _ = echo_example
    fields = run_loadgen(loadgen, port, "-m", "idle", "-c", "20", "-s", "8", "-t", "0.2")
    assert fields["opened"] == "20" and fields["alive"] == "20", fields
    assert fields["checked_bytes"] == str(20 * 8 * 2)


def test_a_corrupting_echo_is_caught(loadgen: Path) -> None:
    """An echo that reverses one chunk: the load generator reports the mismatch."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def corrupting_echo() -> None:
        connection, _ = listener.accept()
        with connection:
            for chunk_number in range(1000):
                data = connection.recv(65536)
                if not data:
                    return
                connection.sendall(data[::-1] if chunk_number == 3 else data)

    worker = threading.Thread(target=corrupting_echo, daemon=True)
    worker.start()
    try:
        fields = run_loadgen(loadgen, port, "-m", "pingpong", "-c", "1", "-s", "64", "-t", "0.3", "-w", "0")
    finally:
        worker.join(timeout=10)
        listener.close()
    assert fields["mismatch"] == "1" and fields["err"] == "1", fields
    assert "differ" in fields["last_err"]


def test_frames_are_netpack_frames(loadgen: Path) -> None:
    """-f: what the load generator sends decodes as netpack frames of SIZE - 2
    payload bytes each, in the per-connection cycle; echoed back as they
    came, they check out."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    payloads: list = []

    def framing_echo() -> None:
        decoder = netpack.Decoder()
        connection, _ = listener.accept()
        with connection:
            while True:
                try:
                    data = connection.recv(65536)
                except ConnectionResetError:   # the load generator's close at the end
                    return
                if not data:
                    return
                payloads.extend(decoder.feed(data))
                connection.sendall(data)

    worker = threading.Thread(target=framing_echo, daemon=True)
    worker.start()
    try:
        fields = run_loadgen(loadgen, port, "-m", "pingpong", "-c", "1", "-s", "40", "-t", "0.3",
                             "-w", "0", "-f")
    finally:
        worker.join(timeout=10)
        listener.close()
    assert fields["mismatch"] == "0" and fields["err"] == "0", fields
    assert len(payloads) >= int(fields["msgs"]) > 0
    assert {len(payload) for payload in payloads} == {38}
    # the payload bytes run through the 251-byte cycle; the 2 header bytes of
    # the next frame take the cycle's next 2 positions
    for payload in payloads[:10]:
        assert all((payload[i] + 1) % 251 == payload[i + 1] for i in range(len(payload) - 1))
    for before, after in zip(payloads[:10], payloads[1:10]):
        assert after[0] == (before[-1] + 3) % 251


def test_the_gate_echo_answers_frames(loadgen: Path) -> None:
    """benchmarks/servers/gate_echo.py (python -m benchmarks --frames) echoes
    every frame through gsocket.gate, checked byte for byte."""
    port = pick_free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.servers.gate_echo", "--host", "127.0.0.1", "--port",
         str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not accepts_connections("127.0.0.1", port) and process.poll() is None:
            assert time.monotonic() < deadline, "the gate echo never listened"
            time.sleep(0.02)
        fields = run_loadgen(loadgen, port, "-m", "pingpong", "-c", "4", "-s", "100", "-t", "0.5",
                             "-w", "0.1", "-f")
        assert fields["mismatch"] == "0" and fields["err"] == "0", fields
        assert int(fields["msgs"]) > 0
        assert int(fields["checked_bytes"]) >= int(fields["msgs"]) * 100
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
