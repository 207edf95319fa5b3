"""The examples run as real processes: each one is started on a free port,
spoken to with stdlib sockets, then stopped with a signal and must exit 0."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
START_TIMEOUT = 15
STOP_TIMEOUT = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Example:
    """A running example process whose log lines (stderr) are collected by
    a thread, so that waiting for one never blocks on the pipe."""

    def __init__(self, script: str, *args: str) -> None:
        self.port = free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), "--host", "127.0.0.1",
             "--port", str(self.port), *args],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        self.lines: List[str] = []
        self._queue: "queue.Queue[str]" = queue.Queue()
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self._queue.put(line)

    def wait_for_line(self, text: str, timeout: float = START_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.process.poll() is not None and self._queue.empty()):
                raise AssertionError(f"no line with {text!r}; output so far: {self.lines}")
            try:
                line = self._queue.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            if text in line:
                return line

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        try:
            code = self.process.wait(STOP_TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(5)
            assert self.process.stdout is not None
            self.process.stdout.close()
        return code


@pytest.fixture
def run_example() -> Iterator:
    started: List[Example] = []

    def run(script: str, *args: str) -> Example:
        example = Example(script, *args)
        started.append(example)
        return example

    yield run
    for example in started:    # a failed test must not leave a server running
        if example.process.poll() is None:
            example.process.kill()
            example.process.wait()
        if example.process.stdout is not None:
            example.process.stdout.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    parts = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def recv_until_eof(sock: socket.socket) -> bytes:
    parts = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def check_echo(example: Example) -> None:
    clients = [example.connect() for _ in range(3)]
    try:
        for index, client in enumerate(clients):
            payload = bytes([index]) * 1000 + os.urandom(70_000)
            client.sendall(payload)
            assert recv_exactly(client, len(payload)) == payload
        for client in clients:
            client.sendall(b"last")
            client.shutdown(socket.SHUT_WR)
            assert recv_until_eof(client) == b"last"   # the server closes after our EOF
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("script", ["echo.py", "echo_events.py"])
def test_echo_examples(run_example, script: str) -> None:
    example = run_example(script)
    line = example.wait_for_line("listening on")
    assert f"127.0.0.1:{example.port}" in line
    check_echo(example)
    assert example.stop() == 0
    assert any("stopped" in line for line in example.lines)


@pytest.mark.parametrize("mode", ["fork", "transfer"])
def test_testsocket_example(run_example, mode: str) -> None:
    example = run_example("testsocket.py", "--mode", mode)
    line = example.wait_for_line("listening on")
    assert f"127.0.0.1:{example.port}" in line and mode in line
    clients = [example.connect() for _ in range(3)]
    try:
        # send at once, before the greeting: nothing may be lost in the hand-over
        for index, client in enumerate(clients):
            client.sendall(b"hello %d\nwor" % index)
        for index, client in enumerate(clients):
            reader = client.makefile("rb")
            assert reader.readline() == b"Hello Skynet\n"
            assert reader.readline() == b"hello %d\n" % index
            client.sendall(b"ld\r\n\nsplit")
            assert reader.readline() == b"world\r\n"
            assert reader.readline() == b"\n"
            client.sendall(b" line\nunterminated")
            assert reader.readline() == b"split line\n"
            client.shutdown(socket.SHUT_WR)
            assert reader.read() == b"unterminated"     # then EOF: the server closed
            reader.close()
    finally:
        for client in clients:
            client.close()
    example.wait_for_line("close socket")
    assert example.stop(signal.SIGINT if mode == "fork" else signal.SIGTERM) == 0
    assert sum("connect from 127.0.0.1:" in line for line in example.lines) == 3
    assert any("testsocket stopped" in line for line in example.lines)
    assert not any("Traceback" in line for line in example.lines)


def test_testsocket_refuses_connections_after_stop(run_example) -> None:
    example = run_example("testsocket.py")
    example.wait_for_line("listening on")
    idle = example.connect()                  # a client still connected at SIGTERM
    try:
        assert idle.makefile("rb").readline() == b"Hello Skynet\n"
        assert example.stop() == 0
        assert recv_until_eof(idle) == b""
    finally:
        idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", example.port), timeout=5).close()


def _rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_echo_holds_little_for_a_peer_that_does_not_read(run_example) -> None:
    """A peer sends without reading: echo.py stops reading from it (drain)
    instead of queueing everything, and every byte is echoed once the peer
    reads again (issue: 300 MB sent made the server hold 322 MB)."""
    example = run_example("echo.py")
    example.wait_for_line("echo listening")
    baseline = _rss_of(example.process.pid)
    client = example.connect()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.settimeout(None)
    block = os.urandom(1 << 20)
    total = 200 * len(block)
    sent = [0]

    def send_all() -> None:
        for _ in range(total // len(block)):
            client.sendall(block)
            sent[0] += len(block)

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    deadline = time.monotonic() + 3
    last = -1
    while time.monotonic() < deadline and sent[0] != last:   # until the sender is stuck
        last = sent[0]
        time.sleep(0.5)
    stuck_at = sent[0]
    assert stuck_at < total // 4                 # the server stopped taking our bytes
    grown = _rss_of(example.process.pid) - baseline
    assert grown < 32 << 20, f"server grew by {grown >> 20} MiB holding {stuck_at >> 20} MiB"
    received = 0
    client.settimeout(10)
    while received < total:                       # read it all: the rest flows again
        chunk = client.recv(1 << 20)
        assert chunk, f"EOF after {received} bytes"
        offset = received % len(block)
        assert chunk == (block[offset:] + block * (len(chunk) // len(block) + 2))[:len(chunk)]
        received += len(chunk)
    sender.join(10)
    assert sent[0] == total == received
    client.close()
    assert example.stop() == 0


def test_readme_first_example_serves(tmp_path) -> None:
    """README's first example, as written (on a free port), serves lines."""
    readme = (ROOT / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "gsocket.serve(handle" in code
    port = free_port()
    script = tmp_path / "readme_example.py"
    script.write_text(code.replace("8888", str(port)))
    process = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        with client:
            client.sendall(b"hello\nworld\n")
            assert recv_exactly(client, 12) == b"HELLO\nWORLD\n"
            client.shutdown(socket.SHUT_WR)
            assert recv_until_eof(client) == b""       # the handler returned: closed
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
