"""Shared pieces of the RESP example's tests: the examples folder on
sys.path, a real redis-server to compare with, the example server run in
this process or as its own process, and raw RESP clients.

No asserts here (this module is not rewritten by pytest): failures raise
AssertionError with a message.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket as stdlib_socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional

import gevent
import gevent.socket

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from resp_server import RespServer  # noqa: E402

START_TIMEOUT = 20.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1."""
    with stdlib_socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: Optional[subprocess.Popen] = None,
                  timeout: float = START_TIMEOUT) -> None:
    """Block (the thread; use before the hub has work) until something
    accepts on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before listening")
        try:
            stdlib_socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on port {port} after {timeout} s")
            time.sleep(0.02)


def stop_process(process: subprocess.Popen) -> Optional[int]:
    """SIGTERM, then SIGKILL after 10 s; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class RedisServer:
    """A real redis-server on a free port, in memory only."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is not installed (.ci/run installs it)")
        self.port = free_port()
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        stop_process(self.process)


class ExampleProcess:
    """``python examples/resp_server.py`` on a free port."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"resp_server_{self.port}.log"
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "resp_server.py"), "--host", "127.0.0.1",
             "--port", str(self.port), *args],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self.process)
        except AssertionError as exc:
            output = self.output()
            self.cleanup()
            raise AssertionError(f"{exc}; its output: {output}") from None

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> Optional[int]:
        code = stop_process(self.process)
        self.log.close()
        return code

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if not self.log.closed:
            self.log.close()
        self.log_path.unlink(missing_ok=True)


# Fixture bodies: each test module wraps the ones it needs in its own
# fixtures (importing fixtures by name would shadow them in every test).

def redis_server_running() -> Iterator[RedisServer]:
    """A real redis-server, stopped at the end (tests FLUSHALL it first)."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


def example_process_running() -> Iterator[ExampleProcess]:
    """``examples/resp_server.py`` as its own process."""
    example = ExampleProcess()
    try:
        yield example
    finally:
        example.cleanup()


def example_in_this_process() -> Iterator[RespServer]:
    """The example server on the current driver, stopped at the end."""
    server = RespServer()
    server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        server.stop()


def raw_exchange(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send ``request`` on a new cooperative connection and return every
    byte the server sends until it closes the connection: the request must
    end in QUIT or in a protocol error (Redis drops the replies of a client
    that half-closes)."""
    client = gevent.socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        client.sendall(request)
        parts: List[bytes] = []
        while True:
            try:
                chunk = client.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)
    finally:
        client.close()


def run_tool(*argv: str, input: Optional[bytes] = None, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run a client program without blocking the hub (gevent's subprocess)."""
    import gevent.subprocess
    return gevent.subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout)


def cooperative_sleep(seconds: float) -> None:
    gevent.sleep(seconds)
