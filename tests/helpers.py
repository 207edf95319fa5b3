"""Helpers for the SocketServer tests: an event collector and peers that are
independent of gsocket.

Peers are either gevent sockets (cooperative: the test greenlet and the
server share the hub) or plain stdlib sockets driven from real OS threads
(the process is not monkey-patched, so those block only their thread).
Waiting for a thread is always cooperative, so the hub keeps serving.
"""

from __future__ import annotations

import inspect
import os
import random
import socket as stdlib_socket
import struct
import threading
from typing import Any, Callable, Iterator, List, Optional, Tuple

import gevent
import gevent.socket
import pytest

from gsocket.events import (
    EVENT_NAMES, SOCKET_ACCEPT, SOCKET_DATA, SOCKET_OPEN, SocketMessage,
)
from gsocket.server import SocketServer
from gsocket._accelerate import compiled_modules

#: Default seconds to wait for one expected event / one peer thread.
WAIT = 10.0


def _fmt(message: Optional[SocketMessage]) -> str:
    return repr(message)


class Events:
    """Polls a SocketServer and remembers every event it saw, in order."""

    def __init__(self, server: SocketServer) -> None:
        self.server = server
        self.seen: List[SocketMessage] = []

    def next(self, timeout: float = WAIT) -> SocketMessage:
        """The next event; AssertionError if none arrives in time."""
        message = self.server.poll(timeout)
        assert message is not None, f"no event within {timeout} s (seen: {self.seen[-5:]})"
        self.seen.append(message)
        return message

    def expect(self, kind: int, socket_id: Optional[int] = None, data: Any = ...,
               ud: Any = ..., timeout: float = WAIT) -> SocketMessage:
        """The very next event must be ``kind`` (and match id/data/ud when given)."""
        message = self.next(timeout)
        want = EVENT_NAMES[kind]
        assert message.type == kind, f"expected {want}, got {_fmt(message)}"
        if socket_id is not None:
            assert message.id == socket_id, f"expected {want} for {socket_id}, got {_fmt(message)}"
        if data is not ...:
            assert message.data == data, f"expected {want} data {data!r}, got {_fmt(message)}"
        if ud is not ...:
            assert message.ud == ud, f"expected {want} ud {ud!r}, got {_fmt(message)}"
        return message

    def wait_for(self, kind: int, socket_id: Optional[int] = None,
                 where: Optional[Callable[[SocketMessage], bool]] = None,
                 timeout: float = WAIT) -> SocketMessage:
        """Skip events until one of ``kind`` (for ``socket_id``) arrives."""
        with gevent.Timeout(timeout, AssertionError(
                f"no {EVENT_NAMES[kind]} for {socket_id} within {timeout} s "
                f"(last seen: {self.seen[-5:]})")):
            while True:
                message = self.next(timeout + 1)
                if message.type != kind:
                    continue
                if socket_id is not None and message.id != socket_id:
                    continue
                if where is not None and not where(message):
                    continue
                return message

    def quiet(self, duration: float = 0.2) -> List[SocketMessage]:
        """Collect events until none arrives for ``duration`` seconds."""
        got = []
        while True:
            message = self.server.poll(duration)
            if message is None:
                return got
            self.seen.append(message)
            got.append(message)

    def assert_none(self, duration: float = 0.2, socket_id: Optional[int] = None) -> None:
        """No event (for ``socket_id``, if given) within ``duration`` seconds."""
        got = [m for m in self.quiet(duration) if socket_id is None or m.id == socket_id]
        assert not got, f"unexpected events: {got}"

    def of(self, socket_id: int, kind: Optional[int] = None) -> List[SocketMessage]:
        return [m for m in self.seen if m.id == socket_id and (kind is None or m.type == kind)]

    def data(self, socket_id: int, nbytes: int, timeout: float = WAIT) -> bytes:
        """Gather DATA of ``socket_id`` until ``nbytes`` arrived; other
        events are recorded and skipped."""
        parts = []
        got = 0
        with gevent.Timeout(timeout, AssertionError(
                f"only {got} of {nbytes} bytes arrived on {socket_id} within {timeout} s")):
            while got < nbytes:
                message = self.next(timeout + 1)
                if message.id == socket_id and message.type == SOCKET_DATA:
                    assert message.ud == len(message.data) > 0
                    parts.append(message.data)
                    got += message.ud
        data = b"".join(parts)
        assert len(data) == nbytes, f"got {len(data)} bytes, wanted {nbytes}"
        return data


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT, step: float = 0.002,
               what: str = "condition") -> Any:
    """Poll ``predicate`` cooperatively; its first truthy value."""
    with gevent.Timeout(timeout, AssertionError(f"{what} not met within {timeout} s")):
        while True:
            value = predicate()
            if value:
                return value
            gevent.sleep(step)


class InThread:
    """Run ``fn(*args)`` in a real OS thread; ``result()`` waits for it
    cooperatively (the hub keeps running) and re-raises its exception."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.value: Any = None
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(fn, args), daemon=True)
        self.thread.start()

    def _main(self, fn: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        try:
            self.value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self.error = exc
        finally:
            self.done.set()

    def result(self, timeout: float = WAIT) -> Any:
        wait_until(self.done.is_set, timeout, what="peer thread")
        self.thread.join(2)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.value


def recv_exact(sock: Any, n: int) -> bytes:
    """Read exactly n bytes (fewer only at EOF) from a stdlib/gevent socket."""
    parts = []
    while n > 0:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def recv_to_eof(sock: Any) -> bytes:
    """Read until EOF; ConnectionResetError propagates."""
    parts = []
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def recv_to_end(sock: Any) -> Tuple[bytes, Optional[str]]:
    """Read until EOF or a reset: (bytes, None) or (bytes, 'reset')."""
    parts = []
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return b"".join(parts), None
            parts.append(chunk)
    except ConnectionResetError:
        return b"".join(parts), "reset"


def thread_client(port: int, host: str = "127.0.0.1", rcvbuf: Optional[int] = None,
                  timeout: float = 20.0) -> stdlib_socket.socket:
    """A blocking stdlib client connected to (host, port). The kernel
    completes the handshake from the listen backlog, so this does not need
    the hub; use it from OS threads afterwards."""
    family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
    sock = stdlib_socket.socket(family, stdlib_socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def set_linger_zero(sock: Any) -> None:
    """close() will now send RST instead of FIN."""
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_LINGER, struct.pack("ii", 1, 0))


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released at once)."""
    family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
    with stdlib_socket.socket(family, stdlib_socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def os_socket(local: Tuple[str, int], peer: Optional[Tuple[str, int]] = None,
              family: int = stdlib_socket.AF_INET) -> stdlib_socket.socket:
    """A dup of this process's TCP socket bound to ``local`` (and connected
    to ``peer``, when given), found through /proc/self/fd: lets a test check
    or set OS-level options without touching gsocket internals. The caller
    closes the dup (the original stays open)."""
    for name in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            probe = stdlib_socket.fromfd(int(name), family, stdlib_socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            if probe.getsockname()[:2] == tuple(local) and (
                    peer is None or probe.getpeername()[:2] == tuple(peer)):
                return probe
        except OSError:
            pass
        probe.close()
    raise AssertionError(f"no socket of this process is bound to {local} (peer {peer})")


def bound_gevent_socket(closer: Any, kind: int, host: str = "127.0.0.1") -> Tuple[Any, int]:
    """A gevent socket of ``kind`` (SOCK_STREAM or SOCK_DGRAM) bound to an
    ephemeral port of ``host``, closed by ``closer``; returns (sock, port)."""
    family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
    sock = closer(gevent.socket.socket(family, kind))
    sock.bind((host, 0))
    return sock, sock.getsockname()[1]


def info_row(server: SocketServer, socket_id: int) -> Any:
    for row in server.info():
        if row.id == socket_id:
            return row
    return None


def listen_started(server: SocketServer, events: Events, host: str = "127.0.0.1",
                   opaque: int = 0, backlog: int = 32) -> Tuple[int, int]:
    """listen + start; returns (listen id, port) after OPEN "start"."""
    listen_id = server.listen(host, 0, backlog=backlog, opaque=opaque)
    port = server.address(listen_id)[1]
    server.start(listen_id)
    events.expect(SOCKET_OPEN, listen_id, data="start")
    return listen_id, port


def accept(events: Events, listen_id: int) -> SocketMessage:
    return events.wait_for(SOCKET_ACCEPT, listen_id)


def gevent_pair(server: SocketServer, events: Events, host: str = "127.0.0.1",
                start: bool = True) -> Tuple[int, gevent.socket.socket, int]:
    """(connection id, gevent client socket, listen id); started if ``start``."""
    listen_id, port = listen_started(server, events, host)
    family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
    client = gevent.socket.socket(family, stdlib_socket.SOCK_STREAM)
    client.connect((host, port))
    socket_id = accept(events, listen_id).ud
    if start:
        server.start(socket_id)
        events.expect(SOCKET_OPEN, socket_id, data="start")
    return socket_id, client, listen_id


def thread_pair(server: SocketServer, events: Events, rcvbuf: Optional[int] = None,
                start: bool = True,
                host: str = "127.0.0.1") -> Tuple[int, stdlib_socket.socket, int]:
    """(connection id, blocking stdlib client, listen id)."""
    listen_id, port = listen_started(server, events, host)
    client = thread_client(port, host, rcvbuf=rcvbuf)
    socket_id = accept(events, listen_id).ud
    if start:
        server.start(socket_id)
        events.expect(SOCKET_OPEN, socket_id, data="start")
    return socket_id, client, listen_id


class Closer:
    """Closes sockets/fds and joins threads registered during a test."""

    def __init__(self) -> None:
        self.items: List[Any] = []

    def __call__(self, item: Any) -> Any:
        self.items.append(item)
        return item

    def close_all(self) -> None:
        for item in reversed(self.items):
            if isinstance(item, int):
                try:
                    os.close(item)
                except OSError:
                    pass
            elif isinstance(item, InThread):
                item.thread.join(5)
            else:
                if isinstance(item, stdlib_socket.socket) and not isinstance(
                        item, gevent.socket.socket) and item.fileno() >= 0:
                    try:   # wakes a thread still blocked on it
                        item.shutdown(stdlib_socket.SHUT_RDWR)
                    except OSError:
                        pass
                item.close()
        self.items.clear()


@pytest.fixture
def closer(server: SocketServer) -> Iterator[Closer]:
    """Register peers to close; torn down before the server is released and
    leak-checked."""
    c = Closer()
    try:
        yield c
    finally:
        c.close_all()


@pytest.fixture
def events(server: SocketServer) -> Events:
    return Events(server)


def pattern(seed: int, size: int) -> bytes:
    """Deterministic pseudo-random bytes: any reordering, loss or
    duplication of a chunk shows up when compared with the original."""
    start = (seed * 7919) % 65536
    out = _RANDOM_BLOCK[start:start + size]
    while len(out) < size:
        out += _RANDOM_BLOCK[: size - len(out)]
    return out


_RANDOM_BLOCK = random.Random(20240607).randbytes(2 << 20)


def runs(data: bytes) -> List[Tuple[int, int]]:
    """Run-length encoding: [(byte value, count), ...]."""
    out: List[Tuple[int, int]] = []
    i = 0
    while i < len(data):
        value = data[i]
        end = len(data) - len(data[i:].lstrip(bytes([value])))
        out.append((value, end - i))
        i = end
    return out


def is_function(obj: Any) -> bool:
    """True for a Python function, pure or compiled by Cython (the hot
    modules' twins, see gsocket/_accelerate.py)."""
    return inspect.isfunction(obj) or type(obj).__name__ == "cython_function_or_method"


def defined_in(obj: Any, module_name: str) -> bool:
    """True when ``obj`` was defined in ``module_name`` or its compiled twin."""
    defined = getattr(obj, "__module__", None)
    return defined == module_name or defined == compiled_modules().get(module_name)
