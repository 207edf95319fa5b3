"""gsocket.Connection: one socket id as an object; reads raise
ConnectionClosed (with .partial, the bytes that did arrive) instead of
returning None."""

from __future__ import annotations

import gevent
import pytest

import gsocket
from gsocket import Connection, ConnectionClosed
from gsocket import socket as gs

pytest_plugins = ["_peers"]                 # fixture: pair

from _peers import (  # noqa: E402
    GeventListener, Pair, reader_waits, recv_exactly, recv_until_eof, routed, row, wait_for,
)



def test_exports() -> None:
    assert gsocket.Connection is Connection and gsocket.ConnectionClosed is ConnectionClosed
    assert issubclass(ConnectionClosed, ConnectionError)
    with pytest.raises(TypeError):
        Connection("3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Connection(True)  # type: ignore[arg-type]


def test_read_readline_write(pair: Pair) -> None:
    conn = Connection(pair.id)
    assert conn.id == pair.id and str(pair.id) in repr(conn)
    pair.client.sendall(b"hello\r\nworld\n12345678")
    assert conn.readline(b"\r\n") == b"hello"
    assert conn.readline() == b"world"
    assert conn.read(3) == b"123"
    assert conn.read() == b"45678"
    assert conn.write(b"out") is True
    assert conn.write([b"a", b"b"]) is True
    assert recv_exactly(pair.client, 5) == b"outab"


def test_read_timeout(pair: Pair) -> None:
    conn = Connection(pair.id)
    pair.client.sendall(b"ab")
    with pytest.raises(TimeoutError):
        conn.read(3, timeout=0.05)
    with pytest.raises(TimeoutError):
        conn.readline(timeout=0.05)
    with pytest.raises(TimeoutError):
        conn.readall(timeout=0.05)
    pair.client.sendall(b"c\n")
    assert conn.readline(timeout=5) == b"abc"


def test_read_raises_connection_closed_with_partial(pair: Pair) -> None:
    conn = Connection(pair.id)
    pair.client.sendall(b"12345")
    pair.client.close()
    with pytest.raises(ConnectionClosed) as info:
        conn.read(10)
    assert info.value.partial == b"12345" and info.value.id == pair.id
    # the partial bytes were consumed
    with pytest.raises(ConnectionClosed) as info:
        conn.read()
    assert info.value.partial == b""


def test_readline_raises_connection_closed_with_partial(pair: Pair) -> None:
    conn = Connection(pair.id)
    pair.client.sendall(b"line\nunterminated")
    pair.client.close()
    assert conn.readline() == b"line"
    with pytest.raises(ConnectionClosed) as info:
        conn.readline()
    assert info.value.partial == b"unterminated"


def test_blocked_read_raises_when_the_peer_closes(pair: Pair) -> None:
    conn = Connection(pair.id)
    reader = gevent.spawn(conn.read, 100)
    reader_waits(pair.id)
    pair.client.sendall(b"half")
    wait_for(lambda: row(pair.id).read == 4)
    routed()
    pair.client.close()
    reader.join(5)
    assert isinstance(reader.exception, ConnectionClosed)
    assert reader.exception.partial == b"half"


def test_readall(pair: Pair) -> None:
    conn = Connection(pair.id)
    reader = gevent.spawn(conn.readall)
    pair.client.sendall(b"everything ")
    reader_waits(pair.id)
    pair.client.sendall(b"until EOF")
    pair.client.close()
    assert reader.get(timeout=5) == b"everything until EOF"
    assert conn.readall() == b""


def test_context_manager_closes(pair: Pair) -> None:
    with Connection(pair.id) as conn:
        conn.write(b"bye")
    assert gs.invalid(pair.id)
    assert recv_until_eof(pair.client) == b"bye"


def test_context_manager_closes_on_error(pair: Pair) -> None:
    with pytest.raises(ZeroDivisionError):
        with Connection(pair.id):
            raise ZeroDivisionError("inside with")
    assert gs.invalid(pair.id)
    assert recv_until_eof(pair.client) == b""


def test_close_wakes_a_reader_in_another_greenlet(pair: Pair) -> None:
    conn = Connection(pair.id)
    reader = gevent.spawn(conn.readline)
    reader_waits(pair.id)
    conn.close()
    reader.join(5)
    assert isinstance(reader.exception, ConnectionClosed)
    assert conn.write(b"x") is False


def test_iteration_over_lines(pair: Pair) -> None:
    conn = Connection(pair.id)
    pair.client.sendall(b"one\ntwo\n\nthree\nlast without newline")
    pair.client.close()
    assert list(conn) == [b"one", b"two", b"", b"three", b"last without newline"]
    assert list(conn) == []


def test_iteration_as_data_trickles_in(pair: Pair) -> None:
    conn = Connection(pair.id)
    lines = []

    def consume() -> None:
        for line in conn:
            lines.append(line)
            conn.write(b"ack %d\n" % len(lines))

    consumer = gevent.spawn(consume)
    for i in range(5):
        pair.client.sendall(b"msg %d\n" % i)
        assert recv_exactly(pair.client, 6) == b"ack %d\n" % (i + 1)
    pair.client.close()
    consumer.get(timeout=5)
    assert lines == [b"msg %d" % i for i in range(5)]


def test_client_connection_from_open(driver) -> None:
    def greet(sock) -> None:
        sock.sendall(b"220 ready\r\n")
        assert recv_exactly(sock, 6) == b"QUIT\r\n"
        sock.sendall(b"221 bye\r\n")
        sock.close()

    with GeventListener(greet) as server:
        with Connection(gs.open("127.0.0.1", server.port)) as conn:
            assert conn.readline(b"\r\n") == b"220 ready"
            conn.write(b"QUIT\r\n")
            assert conn.readline(b"\r\n") == b"221 bye"
            assert list(conn) == []
        assert gs.netstat() == []


def test_reader_woken_by_a_hand_over_does_not_block_or_steal(pair: Pair) -> None:
    # A Connection reader is woken by abandon(); before it runs, the id is
    # started again (the new owner). Its ConnectionClosed must come at once
    # with nothing taken from the new owner's buffer.
    conn = Connection(pair.id)
    pair.client.sendall(b"ab")
    wait_for(lambda: row(pair.id).read == 2)
    routed()                                 # "ab" is buffered
    reader = gevent.spawn(conn.read, 10)
    reader_waits(pair.id)                    # the reader waits for 10 bytes
    gs.abandon(pair.id)
    gs.start(pair.id)                        # taken over again, with "ab"
    with pytest.raises(ConnectionClosed) as caught:
        reader.get(timeout=2)
    assert caught.value.partial == b""
    pair.client.sendall(b"cd")
    assert gs.read(pair.id, 4) == b"abcd"    # the new owner got every byte
