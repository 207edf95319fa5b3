"""Helpers for the chat tests: a line client on a gevent socket, a web user
(the `websockets` sync client at /ws), a chat server process (the real
CLI), and a real redis-server on a free port."""

from __future__ import annotations

import os
import signal
import socket as stdlib_socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

import gevent
import gevent.socket
from gevent.subprocess import PIPE, STDOUT, Popen
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
WAIT = 10.0


def free_port() -> int:
    with stdlib_socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


Match = Union[str, Callable[[str], bool]]


def _matcher(match: Match) -> Callable[[str], bool]:
    if callable(match):
        return match
    return lambda line: line.startswith(match)


class BufferedClient:
    """A gevent TCP client that splits what it receives at ``separator``
    and turns each piece into an item (``_item``); every item is kept in
    ``seen``, the ones not consumed yet in ``pending``."""

    separator = b"\n"

    def __init__(self, port: int, host: str = "127.0.0.1", rcvbuf: Optional[int] = None) -> None:
        self.sock = gevent.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(WAIT)
        self.sock.connect((host, port))
        self.buffer = b""
        self.seen: List[Any] = []
        self.pending: List[Any] = []
        self.eof = False

    def _item(self, raw: bytes) -> Any:
        raise NotImplementedError

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        *pieces, self.buffer = self.buffer.split(self.separator)
        for raw in pieces:
            item = self._item(raw)
            self.seen.append(item)
            self.pending.append(item)
        return True

    def _next(self, timeout: float) -> Any:
        """The next item not consumed yet, or None at EOF."""
        with gevent.Timeout(timeout, AssertionError(f"nothing within {timeout} s; seen {self.seen[-8:]}")):
            while not self.pending:
                if self.eof or not self._fill():
                    return None
        return self.pending.pop(0)

    def close(self) -> None:
        self.sock.close()


class ChatClient(BufferedClient):
    """A line-protocol client; every line it received is kept in ``seen``."""

    def _item(self, raw: bytes) -> str:
        return raw.decode("utf-8")

    def send(self, *lines: str, end: str = "\n") -> None:
        self.sock.sendall("".join(line + end for line in lines).encode())

    def line(self, timeout: float = WAIT) -> Optional[str]:
        """The next line not consumed yet, or None at EOF."""
        return self._next(timeout)

    def expect(self, match: Match, timeout: float = WAIT) -> str:
        """Skip lines until one matches (prefix or predicate); return it."""
        test = _matcher(match)
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(0.01, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"EOF before a line matching {match!r}; seen {self.seen[-8:]}")
            if test(line):
                return line

    def next_is(self, expected: str, timeout: float = WAIT) -> None:
        """The very next line is ``expected``."""
        line = self.line(timeout)
        assert line == expected, f"expected {expected!r}, got {line!r}; seen {self.seen[-8:]}"

    def ask(self, command: str, prefix: str = "* ") -> str:
        """Send a command and return the next line starting with ``prefix``
        that answers it (a /who or /rooms reply)."""
        self.send(command)
        return self.expect(prefix)

    def who(self) -> str:
        self.send("/who")
        return self.expect(lambda line: line.startswith("* ") and "): " in line)

    def sync(self) -> None:
        """A /who round trip, then forget every line not consumed yet."""
        self.who()
        self.pending.clear()

    def rooms(self) -> str:
        self.send("/rooms")
        return self.expect("* rooms:")

    def greeting(self) -> str:
        return self.expect("* welcome ")

    def until_eof(self, timeout: float = WAIT) -> List[str]:
        """Every line until the server closes."""
        rest: List[str] = []
        with gevent.Timeout(timeout, AssertionError(f"no EOF within {timeout} s; seen {self.seen[-8:]}")):
            while True:
                line = self.line(timeout)
                if line is None:
                    return rest
                rest.append(line)

    def until_eof_or(self, last: str, timeout: float = WAIT) -> List[str]:
        """Every line up to and including ``last`` (or until EOF)."""
        rest: List[str] = []
        while True:
            line = self.line(timeout)
            if line is None:
                return rest
            rest.append(line)
            if line == last:
                return rest

class WsUser:
    """A `websockets` sync client; its blocking calls run in gevent's
    thread pool, so the hub (and the chat server on it) keeps running."""

    def __init__(self, port: int) -> None:
        self.pool = gevent.get_hub().threadpool
        self.stack = ExitStack()
        url = f"ws://127.0.0.1:{port}/ws"
        self.ws: ClientConnection = self.pool.apply(
            lambda: self.stack.enter_context(connect(url, open_timeout=WAIT, close_timeout=2)))
        self.seen: List[str] = []

    def send(self, message) -> None:
        self.pool.apply(self.ws.send, (message,))

    def recv(self) -> str:
        message = self.pool.apply(self.ws.recv, (WAIT,))
        assert isinstance(message, str), message       # every server line is a text message
        self.seen.append(message)
        return message

    def expect(self, prefix: str) -> str:
        while True:
            line = self.recv()
            if line.startswith(prefix):
                return line

    def until_closed(self) -> List[str]:
        rest: List[str] = []
        try:
            while True:
                rest.append(self.recv())
        except ConnectionClosed:
            return rest

    @property
    def close_code(self):
        return self.ws.close_code

    def close(self) -> None:
        self.pool.apply(self.stack.close)


class ChatProcess:
    """``python -m gsocket chat ...`` as a child process, its log collected."""

    def __init__(self, *args: str, port: Optional[int] = None, env: Optional[dict] = None) -> None:
        self.port = port if port is not None else free_port()
        self.args = ["--host", "127.0.0.1", "--port", str(self.port), *args]
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.process = Popen([sys.executable, "-m", "gsocket", "chat", *self.args], cwd=str(ROOT),
                             env=full_env, stdin=subprocess.DEVNULL, stdout=PIPE, stderr=STDOUT)
        self.lines: List[str] = []
        self._reader = gevent.spawn(self._collect)

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def wait_for_log(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if text in line:
                    return line
            seen = len(self.lines)
            if self.process.poll() is not None:
                gevent.sleep(0.05)
                if not any(text in line for line in self.lines):
                    raise AssertionError(f"exited ({self.process.returncode}) without {text!r}: {self.lines}")
            gevent.sleep(0.02)
        raise AssertionError(f"no log line with {text!r} within {timeout} s: {self.lines}")

    def started(self) -> "ChatProcess":
        self.wait_for_log("chat listening on")
        return self

    def client(self) -> ChatClient:
        return ChatClient(self.port)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(2)
        return code  # type: ignore[no-any-return]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()


class RedisServer:
    """A real redis-server on a free port, its files in ``directory``."""

    def __init__(self, directory: Path, port: Optional[int] = None) -> None:
        self.directory = directory
        self.port = port if port is not None else free_port()
        self.process: Optional[Popen] = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with gevent.socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            gevent.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def command(self, *words: str) -> str:
        """A command through redis-cli (the real client): its output."""
        result = Popen(["redis-cli", "-p", str(self.port), *words], stdout=PIPE, stderr=STDOUT)
        out, _ = result.communicate(timeout=10)
        return out.decode().strip()  # type: ignore[no-any-return]
