"""Helpers shared by the socket-API tests: independent loopback peers.

Peers are gevent sockets (cooperative, so the hub keeps running while a test
greenlet talks to them) or plain stdlib sockets driven from OS threads.
Nothing here uses gsocket internals, except :func:`reader_waits` (no public
call shows that a greenlet is blocked reading an id).
"""

from __future__ import annotations

import socket as stdlib_socket
import threading
from typing import Any, Callable, Iterator, List, NamedTuple, Optional, Tuple

import gevent
import gevent.queue
import gevent.socket
import pytest

from gsocket import socket as gs
from helpers import recv_exact as recv_exactly  # noqa: F401 - re-exported for the tests
from helpers import recv_to_eof as recv_until_eof  # noqa: F401


class Pair(NamedTuple):
    """A gsocket connection id and the gevent client socket at its other end."""

    listen_id: int
    id: int
    client: gevent.socket.socket
    address: str        # "host:port" the accept callback was given


def accept_one(listen_id: int, accepted: "gevent.queue.Queue[Tuple[int, str]]",
               family: int = stdlib_socket.AF_INET) -> Tuple[int, str, gevent.socket.socket]:
    host, port = gs.address(listen_id)
    client = gevent.socket.socket(family, stdlib_socket.SOCK_STREAM)
    client.connect((host, port))
    socket_id, address = accepted.get(timeout=5)
    return socket_id, address, client


def make_pair(start: bool = True, host: str = "127.0.0.1") -> Pair:
    """listen + start(listen, cb) + a client that connects; the accepted id
    is started when ``start``."""
    listen_id = gs.listen(host, 0)
    accepted: gevent.queue.Queue = gevent.queue.Queue()
    gs.start(listen_id, lambda socket_id, address: accepted.put((socket_id, address)))
    family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
    socket_id, address, client = accept_one(listen_id, accepted, family)
    if start:
        gs.start(socket_id)
    return Pair(listen_id, socket_id, client, address)


@pytest.fixture
def pair(driver: Any) -> Iterator[Pair]:
    """A started connection id plus its gevent client, closed afterwards."""
    p = make_pair()
    try:
        yield p
    finally:
        p.client.close()


@pytest.fixture
def unstarted_pair(driver: Any) -> Iterator[Pair]:
    """An accepted connection id that nobody started yet, plus its client."""
    p = make_pair(start=False)
    try:
        yield p
    finally:
        p.client.close()


class GeventListener:
    """A gevent listening socket on 127.0.0.1 (or ::1) that accepts in a
    spawned greenlet and runs ``handler(conn)`` for each connection."""

    def __init__(self, handler: Callable[[Any], None], host: str = "127.0.0.1") -> None:
        family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
        self.sock = gevent.socket.socket(family, stdlib_socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.handler = handler
        self.conns: List[Any] = []
        self.greenlets: List[gevent.Greenlet] = []
        self.acceptor = gevent.spawn(self._accept_loop)

    def _accept_loop(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            self.conns.append(conn)
            self.greenlets.append(gevent.spawn(self.handler, conn))

    def close(self) -> None:
        self.acceptor.kill()
        gevent.joinall(self.greenlets, timeout=5)
        gevent.killall(self.greenlets)
        for conn in self.conns:
            conn.close()
        self.sock.close()

    def __enter__(self) -> "GeventListener":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def closed_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on (bound once, then released)."""
    family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
    with stdlib_socket.socket(family, stdlib_socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def row(socket_id: int) -> Optional[Any]:
    """The netstat row of socket_id, or None."""
    for info in gs.netstat():
        if info.id == socket_id:
            return info
    return None


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, step: float = 0.005) -> Any:
    """Poll ``predicate`` while the hub runs; its first truthy value, or
    AssertionError after ``timeout`` seconds."""
    with gevent.Timeout(timeout, AssertionError(f"condition not met within {timeout} s")):
        while True:
            value = predicate()
            if value:
                return value
            gevent.sleep(step)


def routed() -> None:
    """Wait until the default driver has handed every event its server made
    to the owners (the dispatcher pops and routes without yielding, so an
    empty queue seen from here means routed): the message boundary that a
    sleep would only guess."""
    from gsocket import driver as driver_module
    server = driver_module.current().server
    wait_for(lambda: server.pending_events == 0)


def reader_waits(socket_id: int) -> None:
    """Wait until a greenlet is blocked reading ``socket_id``."""
    pool = gs._pool()
    wait_for(lambda: (entry := pool.entries.get(socket_id)) is not None
             and entry.reader is not None)


class ThreadPeer:
    """A stdlib socket driven by an OS thread (fully independent of the hub).

    ``run(sock)`` is called in the thread with a connected blocking socket;
    its return value or exception is available from ``result()``."""

    def __init__(self, port: int, run: Callable[[stdlib_socket.socket], Any],
                 host: str = "127.0.0.1") -> None:
        self.host, self.port, self.run = host, port, run
        self.value: Any = None
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            with stdlib_socket.create_connection((self.host, self.port), timeout=20) as sock:
                self.value = self.run(sock)
        except BaseException as exc:  # reported by result()
            self.error = exc
        finally:
            self.done.set()

    def result(self, timeout: float = 20) -> Any:
        """Wait (cooperatively, so the hub keeps serving) for the thread."""
        wait_for(self.done.is_set, timeout, step=0.002)
        self.thread.join(1)
        if self.error is not None:
            raise self.error
        return self.value


def vm_rss() -> int:
    """Resident set size of this process in bytes (from /proc/self/status)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")
