"""What every peer has (API.md section 6), on real loopback sockets: write
backpressure (``drain``), half-close (``shutdown_write``), listener limits
(``max_connections``, ``idle_timeout``), graceful ``stop`` and the
high-level ``gsocket.serve``."""

from __future__ import annotations

import logging
import socket as stdlib_socket
import time
from typing import List

import gevent
import gevent.socket
import pytest

import gsocket
from gsocket import socket as gs

pytestmark = [pytest.mark.usefixtures("driver"), pytest.mark.timeout(60)]

WAIT = 10.0


def client(port: int, rcvbuf: int = 0) -> gevent.socket.socket:
    sock = gevent.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", port))
    return sock


def read_exactly(sock, size: int) -> bytes:
    chunks: List[bytes] = []
    got = 0
    while got < size:
        chunk = sock.recv(min(1 << 20, size - got))
        assert chunk, f"EOF after {got} of {size} bytes"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_to_eof(sock) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class Accepted:
    """A listener on a free port whose accepted ids are collected (started)."""

    def __init__(self, **limits) -> None:
        self.ids: List[int] = []
        self.listen_id = gs.listen("127.0.0.1", 0)
        self.port = gs.address(self.listen_id)[1]
        gs.start(self.listen_id, self._accept, **limits)

    def _accept(self, socket_id: int, peer: str) -> None:
        gs.start(socket_id)
        self.ids.append(socket_id)

    def wait_for(self, count: int) -> None:
        with gevent.Timeout(WAIT, AssertionError(f"{len(self.ids)} of {count} accepted")):
            while len(self.ids) < count:
                gevent.sleep(0.01)


# ---------------------------------------------------------------------- drain

def test_drain_waits_for_a_slow_reader_and_loses_nothing() -> None:
    accepted = Accepted()
    peer = client(accepted.port, rcvbuf=4096)
    accepted.wait_for(1)
    conn = accepted.ids[0]
    payload = bytes(range(256)) * (8 * 4096)              # 8 MiB
    assert gs.write(conn, payload)
    queued = gsocket.driver.current().server.pending_bytes(conn)
    assert queued > 1 << 20                               # the kernel took only a little
    with pytest.raises(TimeoutError):
        gs.drain(conn, below=65536, timeout=0.2)
    assert gsocket.driver.current().server.pending_bytes(conn) >= queued - (1 << 20)
    reader = gevent.spawn(read_exactly, peer, len(payload))
    assert gs.drain(conn, below=65536, timeout=WAIT) is True
    assert gsocket.driver.current().server.pending_bytes(conn) <= 65536
    assert gs.drain(conn, below=0, timeout=WAIT) is True
    assert reader.get(timeout=WAIT) == payload
    assert gs.drain(conn) is True                          # nothing queued: at once
    gs.close(conn)
    peer.close()


def test_drain_is_false_when_the_socket_closes_or_is_gone() -> None:
    accepted = Accepted()
    peer = client(accepted.port, rcvbuf=4096)
    accepted.wait_for(1)
    conn = accepted.ids[0]
    assert gs.write(conn, b"x" * (8 << 20))
    waiting = gevent.spawn(gs.drain, conn, below=0)
    gevent.sleep(0.05)
    assert not waiting.ready()
    peer.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    peer.close()                                            # RST: the write fails, the id closes
    assert waiting.get(timeout=WAIT) is False
    gs.close(conn)
    assert gs.drain(conn) is False
    assert gs.drain(123456) is False
    with pytest.raises(ValueError):
        gs.drain(conn, below=-1)


# ---------------------------------------------------------------------- shutdown_write

def test_shutdown_write_sends_fin_after_the_queue_and_reading_goes_on() -> None:
    accepted = Accepted()
    peer = client(accepted.port, rcvbuf=4096)
    accepted.wait_for(1)
    conn = accepted.ids[0]
    payload = b"y" * (2 << 20)
    assert gs.write(conn, payload)
    gs.shutdown_write(conn)
    assert gs.write(conn, b"too late") is False
    assert read_to_eof(peer) == payload                    # every queued byte, then FIN
    peer.sendall(b"still listening\n")
    assert gs.readline(conn, timeout=WAIT) == b"still listening"
    peer.close()
    assert gs.read(conn, timeout=WAIT) is None
    gs.close(conn)


# ---------------------------------------------------------------------- limits

def test_max_connections_pauses_accepting_and_drops_nobody() -> None:
    accepted = Accepted(max_connections=2)
    peers = [client(accepted.port) for _ in range(4)]      # all four connect (kernel backlog)
    accepted.wait_for(2)
    gevent.sleep(0.2)
    assert len(accepted.ids) == 2
    gs.close(accepted.ids[0])
    accepted.wait_for(3)
    gevent.sleep(0.1)
    assert len(accepted.ids) == 3
    gs.close(accepted.ids[1])
    gs.close(accepted.ids[2])
    accepted.wait_for(4)
    last = accepted.ids[3]
    for peer in peers[:3]:
        assert read_to_eof(peer) == b""                   # closed by us, not refused
    assert gs.write(last, b"served\n")
    assert peers[3].recv(100) == b"served\n"
    gs.close(last)
    for peer in peers:
        peer.close()


def test_idle_timeout_closes_silent_connections_only(caplog) -> None:
    caplog.set_level(logging.INFO)
    accepted = Accepted(idle_timeout=0.3)
    quiet, chatty = client(accepted.port), client(accepted.port)
    accepted.wait_for(2)
    quiet_id, chatty_id = accepted.ids
    started = time.monotonic()
    talker = gevent.spawn(lambda: [chatty.sendall(b".") or gevent.sleep(0.1) for _ in range(10)])
    assert gs.read(quiet_id, 10 ** 9, timeout=WAIT) is None   # woken with None when closed
    assert 0.3 <= time.monotonic() - started < 2.0
    assert read_to_eof(quiet) == b""
    talker.get(timeout=WAIT)
    assert gs.read(chatty_id, 10, timeout=WAIT) == b"." * 10   # alive after 1 s of talk
    assert any("idle for 0.3 s" in record.getMessage() for record in caplog.records)
    gs.close(quiet_id)
    gs.close(chatty_id)
    quiet.close()
    chatty.close()


def test_limits_are_checked() -> None:
    listen_id = gs.listen("127.0.0.1", 0)
    with pytest.raises(ValueError):
        gs.start(listen_id, lambda i, a: None, max_connections=0)
    with pytest.raises(ValueError):
        gs.start(listen_id, lambda i, a: None, idle_timeout=-1)
    with pytest.raises(ValueError):
        gs.start(listen_id, max_connections=3)
    gs.close(listen_id)


# ---------------------------------------------------------------------- stop

def test_stop_releases_the_port_then_waits_for_handlers_then_forces() -> None:
    accepted = Accepted()
    polite, stubborn = client(accepted.port), client(accepted.port)
    accepted.wait_for(2)
    polite_id, stubborn_id = accepted.ids

    def polite_handler() -> None:
        assert gs.readline(polite_id) == b"bye"
        gs.write(polite_id, b"goodbye\n" * 10000)          # flushed before the close counts
        gs.close(polite_id)

    handler = gevent.spawn(polite_handler)
    stopping = gevent.spawn(gs.stop, accepted.listen_id, 1.0)
    gevent.sleep(0.05)
    with pytest.raises(ConnectionRefusedError):
        client(accepted.port)                              # the port is released at once
    polite.sendall(b"bye\n")
    started = time.monotonic()
    assert stopping.get(timeout=WAIT) == (1, 1)
    assert time.monotonic() - started < 1.5                # never much longer than grace
    handler.get(timeout=WAIT)
    assert read_to_eof(polite) == b"goodbye\n" * 10000
    assert gs.read(stubborn_id, timeout=WAIT) is None      # its reader is woken
    assert read_to_eof(stubborn) == b""
    gs.close(stubborn_id)
    polite.close()
    stubborn.close()
    with pytest.raises(ConnectionError):
        gs.stop(accepted.listen_id)


# ---------------------------------------------------------------------- serve

def test_serve_runs_a_handler_per_connection_and_closes_after_it(caplog) -> None:
    def handler(conn: gsocket.Connection) -> None:
        for line in conn:
            if line == b"crash":
                raise RuntimeError("handler bug")
            if line == b"quit":
                return
            conn.write(line.upper() + b"\n")

    listen_id = gsocket.serve(handler, "127.0.0.1", 0)
    port = gs.address(listen_id)[1]
    one, two, three = client(port), client(port), client(port)
    one.sendall(b"hello\n")
    two.sendall(b"crash\n")
    three.sendall(b"quit\n")
    assert one.recv(100) == b"HELLO\n"
    assert read_to_eof(two) == b""                          # the crash closed it
    assert read_to_eof(three) == b""                        # returning closed it
    failed = [r for r in caplog.records if "handler" in r.getMessage() and r.exc_info]
    assert failed and "handler bug" in str(failed[0].exc_info[1])
    one.sendall(b"again\n")
    assert one.recv(100) == b"AGAIN\n"                      # the others are unaffected
    assert gs.stop(listen_id, grace=0.2) == (0, 1)          # only "one" was still open
    assert read_to_eof(one) == b""
    for sock in (one, two, three):
        sock.close()
    with pytest.raises(TypeError):
        gsocket.serve("not callable", "127.0.0.1", 0)
