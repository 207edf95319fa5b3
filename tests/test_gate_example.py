"""examples/gate_server.py as a real process, spoken to by raw stdlib clients."""

from __future__ import annotations

import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 15


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GateServer:
    """The example running on a free port; its log lines collected by a thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "gate_server.py"), "--host", "127.0.0.1",
             "--port", str(self.port)],
            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: List[str] = []
        self.queue: "queue.Queue[str]" = queue.Queue()
        self.reader = threading.Thread(target=self._collect, daemon=True)
        self.reader.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self.queue.put(line)

    def wait_for_line(self, text: str, timeout: float = START_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; output: {self.lines}")

    def stop(self) -> Optional[int]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


@pytest.fixture
def gate_server() -> Iterator[GateServer]:
    server = GateServer()
    try:
        yield server
    finally:
        server.stop()


def frame(payload: bytes) -> bytes:
    return struct.pack(">H", len(payload)) + payload


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    parts = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def read_frame(sock: socket.socket) -> Optional[bytes]:
    head = recv_exactly(sock, 2)
    if len(head) < 2:
        return None
    return recv_exactly(sock, struct.unpack(">H", head)[0])


def test_gate_example_agents_get_every_byte(gate_server: GateServer) -> None:
    line = gate_server.wait_for_line("listening on")
    assert f"127.0.0.1:{gate_server.port}" in line
    clients = [socket.create_connection(("127.0.0.1", gate_server.port), timeout=10) for _ in range(3)]
    try:
        payloads = [[b"c%d-m%d" % (c, m) + b"." * (m * 300) for m in range(6)] for c in range(3)]
        # everything at once, before the agent is even started, split mid-header
        for client, mine in zip(clients, payloads):
            wire = b"".join(frame(p) for p in mine) + frame(b"quit") + frame(b"after quit")
            client.sendall(wire[:1])
            client.sendall(wire[1:777])
            client.sendall(wire[777:])
        for client, mine in zip(clients, payloads):
            assert read_frame(client) == b"welcome 127.0.0.1:%d" % client.getsockname()[1]
            assert [read_frame(client) for _ in mine] == [p.upper() for p in mine]
            assert read_frame(client) == b"bye"
            assert client.recv(1) == b""                         # closed after bye
    finally:
        for client in clients:
            client.close()
    gate_server.wait_for_line("client quit")
    assert gate_server.stop() == 0
    assert sum("new agent" in line for line in gate_server.lines) == 3
    assert any("gate_server stopped" in line for line in gate_server.lines)
    assert not any("Traceback" in line for line in gate_server.lines)


def test_gate_example_client_leaving_midway(gate_server: GateServer) -> None:
    gate_server.wait_for_line("listening on")
    with socket.create_connection(("127.0.0.1", gate_server.port), timeout=10) as client:
        client.sendall(frame(b"one") + b"\x00\x10par")            # a partial frame, then leave
        assert read_frame(client) is not None                      # welcome
        assert read_frame(client) == b"ONE"
    gate_server.wait_for_line("client left")
    with socket.create_connection(("127.0.0.1", gate_server.port), timeout=10) as client:
        assert read_frame(client) is not None                      # still serving
    assert gate_server.stop() == 0
