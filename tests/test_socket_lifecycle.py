"""gsocket.socket lifecycle over real loopback sockets: open, listen/start/
accept, close, shutdown, close_fd, abandon + start, onclose, warning,
invalid/disconnected, limit, pause, header, netstat, resolve, bind/stdin,
and UDP (skynet-socket-semantics.md sections 4.4 and 8)."""

from __future__ import annotations

import logging
import os
import random
import socket as stdlib_socket
import struct
from typing import Any, List, Tuple

import gevent
import gevent.event
import gevent.queue
import gevent.socket
import pytest

from gsocket import socket as gs

pytest_plugins = ["_peers"]                 # fixtures: pair, unstarted_pair

from _peers import (  # noqa: E402
    GeventListener, Pair, closed_port, make_pair, reader_waits, recv_exactly, recv_until_eof,
    routed, row, wait_for,
)


pytestmark = pytest.mark.usefixtures("driver")


def echo_handler(conn: Any) -> None:
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


def read_until_eof_or_reset(sock: Any) -> Tuple[bytes, bool]:
    """(bytes received, True if it ended with a reset rather than EOF)."""
    parts: List[bytes] = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(parts), False
            parts.append(chunk)
    except ConnectionResetError:
        return b"".join(parts), True


# ---------------------------------------------------------------------- open

def test_open_host_port_reads_at_once() -> None:
    with GeventListener(echo_handler) as server:
        socket_id = gs.open("127.0.0.1", server.port)
        assert isinstance(socket_id, int) and socket_id > 0
        assert gs.address(socket_id) == ("127.0.0.1", server.port)
        assert gs.write(socket_id, b"ping") is True
        assert gs.read(socket_id, 4, timeout=5) == b"ping"   # no start() needed
        gs.close(socket_id)
        assert gs.invalid(socket_id)


def test_open_host_colon_port_string() -> None:
    with GeventListener(echo_handler) as server:
        socket_id = gs.open(f"127.0.0.1:{server.port}")
        gs.write(socket_id, [b"a", "b", bytearray(b"c")])
        assert gs.read(socket_id, 3, timeout=5) == b"abc"
        gs.close(socket_id)


def test_open_ipv6_bracket_string() -> None:
    with GeventListener(echo_handler, host="::1") as server:
        socket_id = gs.open(f"[::1]:{server.port}")
        assert gs.address(socket_id)[0] == "::1"
        gs.write(socket_id, b"v6")
        assert gs.read(socket_id, 2, timeout=5) == b"v6"
        gs.close(socket_id)


def test_open_rejects_bad_address_strings() -> None:
    for address, message in [
        ("127.0.0.1:abc", "Invalid port"), ("127.0.0.1:80x", "Invalid port"),
        ("127.0.0.1:70000", "Invalid port"), ("127.0.0.1", "Invalid address"),
        ("[::1]", "Invalid address"), ("[::1]80", "Invalid address"),
    ]:
        with pytest.raises(ValueError, match=message):
            gs.open(address)
    assert gs.netstat() == []


def test_open_refused_raises_connection_error() -> None:
    port = closed_port()
    with pytest.raises(ConnectionRefusedError):
        gs.open("127.0.0.1", port)
    with pytest.raises(ConnectionError):
        gs.open(f"127.0.0.1:{port}", timeout=5)
    assert gs.netstat() == []


def test_open_unresolvable_host_raises_os_error() -> None:
    with pytest.raises(OSError):
        gs.open("no-such-host.invalid", 80, timeout=10)
    assert gs.netstat() == []


def test_open_timeout_raises_timeout_error() -> None:
    # A listener whose accept queue is full drops further SYNs: connect hangs.
    backlog = stdlib_socket.socket()
    fillers = []
    try:
        backlog.bind(("127.0.0.1", 0))
        backlog.listen(0)
        port = backlog.getsockname()[1]
        for _ in range(4):
            filler = stdlib_socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        gevent.sleep(0.1)
        for _ in range(2):   # repeatable, and nothing is left behind
            with pytest.raises(TimeoutError):
                gs.open("127.0.0.1", port, timeout=0.2)
            assert gs.netstat() == []
    finally:
        for filler in fillers:
            filler.close()
        backlog.close()


# ---------------------------------------------------------------------- listen / start / accept

def test_listen_port_zero_and_address() -> None:
    listen_id = gs.listen("127.0.0.1", 0)
    host, port = gs.address(listen_id)
    assert host == "127.0.0.1" and port > 0
    info = row(listen_id)
    assert info.type == "LISTEN" and info.name == f"127.0.0.1:{port}"
    gs.close(listen_id)
    assert gs.address(listen_id) is None
    assert row(listen_id) is None


def test_listen_empty_host_binds_any() -> None:
    listen_id = gs.listen("", 0)
    assert gs.address(listen_id)[0] == "0.0.0.0"
    gs.close(listen_id)


def test_listen_on_a_busy_port_raises() -> None:
    listen_id = gs.listen("127.0.0.1", 0)
    port = gs.address(listen_id)[1]
    with pytest.raises(OSError):
        gs.listen("127.0.0.1", port)
    gs.close(listen_id)


def test_no_accept_until_start_then_data_after_start_conn() -> None:
    listen_id = gs.listen("127.0.0.1", 0)
    port = gs.address(listen_id)[1]
    client = gevent.socket.create_connection(("127.0.0.1", port))  # handshake via backlog
    try:
        client.sendall(b"abc")
        accepted: gevent.queue.Queue = gevent.queue.Queue()
        gevent.sleep(0.1)
        assert [r.type for r in gs.netstat()] == ["LISTEN"]   # nothing accepted yet
        in_dispatcher = []

        def on_accept(socket_id: int, address: str) -> None:
            in_dispatcher.append(gs._pool().driver.in_dispatcher())
            accepted.put((socket_id, address))

        assert gs.start(listen_id, on_accept) == listen_id
        socket_id, address = accepted.get(timeout=5)
        assert address == "127.0.0.1:%d" % client.getsockname()[1]
        assert in_dispatcher == [True]
        gevent.sleep(0.05)
        assert row(socket_id).read == 0          # not reading before start
        assert gs.start(socket_id) == socket_id  # synchronous
        assert gs.read(socket_id, 3, timeout=5) == b"abc"
        assert gs.address(socket_id) == ("127.0.0.1", client.getsockname()[1])
    finally:
        client.close()
        gs.close(listen_id)


def test_accepted_id_handed_unstarted_to_another_greenlet(unstarted_pair: Pair) -> None:
    p = unstarted_pair
    p.client.sendall(b"before ")

    def agent(socket_id: int) -> bytes:
        gs.start(socket_id)
        return gs.readall(socket_id)

    worker = gevent.spawn(agent, p.id)
    reader_waits(p.id)
    p.client.sendall(b"and after")
    p.client.shutdown(stdlib_socket.SHUT_WR)
    assert worker.get(timeout=5) == b"before and after"


def test_write_before_start_is_sent(unstarted_pair: Pair) -> None:
    # deliberate difference 5: skynet drops it, gsocket sends it
    assert gs.write(unstarted_pair.id, b"early") is True
    assert recv_exactly(unstarted_pair.client, 5) == b"early"


def test_start_gone_id_raises_connection_error() -> None:
    with pytest.raises(ConnectionError):
        gs.start(424242)
    p = make_pair()
    try:
        gs.close(p.id)
        with pytest.raises(ConnectionError):
            gs.start(p.id)
    finally:
        p.client.close()


def test_start_listener_without_callback_is_refused(driver) -> None:
    listen_id = gs.listen("127.0.0.1", 0)
    gs.start(listen_id, lambda *a: None)
    with pytest.raises(ValueError):
        gs.start(listen_id)
    with pytest.raises(TypeError):
        gs.start(listen_id, "not callable")  # type: ignore[arg-type]
    gs.close(listen_id)


def test_accept_callback_exception_is_logged_and_accepting_goes_on(caplog) -> None:
    accepted: gevent.queue.Queue = gevent.queue.Queue()
    calls = []

    def on_accept(socket_id: int, address: str) -> None:
        calls.append(socket_id)
        if len(calls) == 1:
            gs.close_fd(socket_id)
            raise RuntimeError("boom in accept")
        accepted.put(socket_id)

    listen_id = gs.listen("127.0.0.1", 0)
    gs.start(listen_id, on_accept)
    port = gs.address(listen_id)[1]
    first = gevent.socket.create_connection(("127.0.0.1", port))
    second = gevent.socket.create_connection(("127.0.0.1", port))
    try:
        socket_id = accepted.get(timeout=5)
        gs.start(socket_id)
        second.sendall(b"ok")
        assert gs.read(socket_id, 2, timeout=5) == b"ok"
        assert first.recv(10) == b""     # the first was closed by its callback
        records = [r for r in caplog.records if r.exc_info and "boom in accept" in str(r.exc_info[1])]
        assert len(records) == 1
    finally:
        first.close()
        second.close()
        gs.close(listen_id)


def test_closing_a_listener_stops_accepting() -> None:
    accepted = []
    listen_id = gs.listen("127.0.0.1", 0)
    port = gs.address(listen_id)[1]
    gs.start(listen_id, lambda socket_id, address: accepted.append(socket_id))
    gs.close(listen_id)
    assert gs.invalid(listen_id)
    with pytest.raises(ConnectionRefusedError):
        gevent.socket.create_connection(("127.0.0.1", port)).close()
    assert accepted == []


# ---------------------------------------------------------------------- close

def test_close_is_graceful_and_does_not_wait_for_the_drain(pair: Pair) -> None:
    data = random.Random(11).randbytes(10 << 20)
    assert gs.write(pair.id, data) is True
    gs.close(pair.id)
    # close returned although the client has not read a byte yet: the tail
    # is still queued in the server, which keeps flushing it.
    assert gs.invalid(pair.id)
    assert gs.write(pair.id, b"more") is False
    info = row(pair.id)
    assert info is not None and info.type == "CLOSING" and info.wbuffer > 0
    received, reset = read_until_eof_or_reset(pair.client)
    assert not reset and received == data
    wait_for(lambda: row(pair.id) is None)


def test_close_wakes_a_blocked_reader_with_none_first(pair: Pair) -> None:
    order: List[Any] = []
    pair.client.sendall(b"0123456789")

    def reader() -> None:
        order.append(("read", gs.read(pair.id, 100)))

    greenlet = gevent.spawn(reader)
    reader_waits(pair.id)
    gs.close(pair.id)
    order.append("closed")
    greenlet.get(timeout=5)
    assert order == [("read", None), "closed"]
    assert gs.invalid(pair.id)
    assert gs.read(pair.id, 1) is None
    assert pair.client.recv(10) == b""


def test_close_of_a_peer_closed_socket_still_flushes(pair: Pair) -> None:
    # deliberate difference 8
    pair.client.shutdown(stdlib_socket.SHUT_WR)
    assert gs.read(pair.id) is None
    data = random.Random(12).randbytes(8 << 20)
    assert gs.write(pair.id, data) is True
    gs.close(pair.id)
    received, reset = read_until_eof_or_reset(pair.client)
    assert not reset and received == data
    wait_for(lambda: row(pair.id) is None)   # no CLOSE_WAIT left behind


def test_close_twice_and_close_unknown_are_noops(pair: Pair) -> None:
    closes = []
    gs.onclose(pair.id, closes.append)
    gs.close(pair.id)
    gs.close(pair.id)
    gs.close(999999)
    gevent.sleep(0.05)
    assert closes == [pair.id]


def test_close_from_inside_the_reading_greenlet(pair: Pair) -> None:
    def handler() -> bytes:
        line = gs.readline(pair.id)
        gs.write(pair.id, line.upper())
        gs.close(pair.id)
        return line

    worker = gevent.spawn(handler)
    pair.client.sendall(b"shout\n")
    assert worker.get(timeout=5) == b"shout"
    assert recv_until_eof(pair.client) == b"SHOUT"


def test_two_closers_and_a_reader_all_return(pair: Pair) -> None:
    reader = gevent.spawn(gs.read, pair.id, 100)
    reader_waits(pair.id)
    closers = [gevent.spawn(gs.close, pair.id) for _ in range(2)]
    assert reader.get(timeout=5) is None
    gevent.joinall(closers, timeout=5, raise_error=True)
    assert all(closer.successful() for closer in closers)
    assert gs.invalid(pair.id)
    assert pair.client.recv(10) == b""


def test_close_from_a_callback_wakes_a_reader(driver) -> None:
    # close() inside onclose runs in the dispatcher: it must hand over
    # instead of blocking the events that wake the reader.
    a, b = make_pair(), make_pair()
    try:
        reader = gevent.spawn(gs.read, b.id, 10)
        reader_waits(b.id)
        gs.onclose(a.id, lambda socket_id: gs.close(b.id))
        a.client.close()
        assert reader.get(timeout=5) is None
        wait_for(lambda: gs.invalid(b.id))
        assert b.client.recv(10) == b""
    finally:
        a.client.close()
        b.client.close()


def test_peer_half_close_then_reply(pair: Pair) -> None:
    # scenario 38: the peer half-closes; we can still answer, then close
    closes = []
    gs.onclose(pair.id, closes.append)
    pair.client.sendall(b"req")
    pair.client.shutdown(stdlib_socket.SHUT_WR)
    assert gs.read(pair.id, 3) == b"req"
    assert gs.read(pair.id) is None
    assert gs.write(pair.id, b"resp") is True
    assert recv_exactly(pair.client, 4) == b"resp"
    gs.close(pair.id)
    assert pair.client.recv(10) == b""
    gevent.sleep(0.05)
    assert closes == [pair.id]


def test_peer_reset_wakes_reader_and_closes_once(pair: Pair, caplog) -> None:
    # scenario 40: RST while we write: ERROR then one CLOSE, reader gets None
    caplog.set_level(logging.INFO)
    closes = []
    gs.onclose(pair.id, closes.append)
    gs.write(pair.id, b"w" * (8 << 20))
    reader = gevent.spawn(gs.read, pair.id, 100)
    reader_waits(pair.id)
    pair.client.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_LINGER,
                           struct.pack("ii", 1, 0))
    pair.client.close()
    assert reader.get(timeout=5) is None
    wait_for(lambda: closes)
    gevent.sleep(0.05)
    assert closes == [pair.id]
    assert row(pair.id) is None
    assert gs.write(pair.id, b"x") is False
    assert any("reset" in r.getMessage().lower() for r in caplog.records)
    gs.close(pair.id)
    assert gs.invalid(pair.id)


# ---------------------------------------------------------------------- shutdown

def test_shutdown_is_forceful_but_keeps_buffered_input(pair: Pair) -> None:
    pair.client.sendall(b"bye")
    wait_for(lambda: row(pair.id).read == 3)
    routed()
    data = b"x" * (10 << 20)
    gs.write(pair.id, data)
    gs.shutdown(pair.id)
    assert row(pair.id) is None                 # the fd is gone at once
    assert not gs.invalid(pair.id)              # the entry stays until close
    assert gs.disconnected(pair.id) is True
    assert gs.read(pair.id) == b"bye"
    assert gs.read(pair.id) is None
    received, _ = read_until_eof_or_reset(pair.client)
    assert len(received) < len(data)            # the queued tail was dropped
    gs.close(pair.id)
    assert gs.invalid(pair.id)


def test_shutdown_wakes_a_blocked_reader(pair: Pair) -> None:
    reader = gevent.spawn(gs.readline, pair.id)
    reader_waits(pair.id)
    gs.shutdown(pair.id)
    assert reader.get(timeout=5) is None


# ---------------------------------------------------------------------- close_fd

def test_close_fd_closes_an_unstarted_id(unstarted_pair: Pair) -> None:
    gs.close_fd(unstarted_pair.id)
    assert unstarted_pair.client.recv(10) == b""
    assert row(unstarted_pair.id) is None


def test_close_fd_refuses_a_started_id(pair: Pair) -> None:
    with pytest.raises(RuntimeError):
        gs.close_fd(pair.id)
    assert row(pair.id) is not None


# ---------------------------------------------------------------------- abandon / start handover

def test_abandon_then_start_keeps_buffered_bytes(pair: Pair) -> None:
    pair.client.sendall(b"part1")
    wait_for(lambda: row(pair.id).read == 5)
    reader = gevent.spawn(gs.read, pair.id, 100)      # a reader in the old owner
    reader_waits(pair.id)
    gs.abandon(pair.id)
    assert reader.get(timeout=5) is None              # wakes with None
    assert gs.invalid(pair.id)
    pair.client.sendall(b"-mid")                      # arrives between abandon and start
    wait_for(lambda: row(pair.id).read == 9)
    routed()

    def new_owner() -> bytes:
        assert gs.start(pair.id) == pair.id
        first = gs.read(pair.id, 9)
        gs.write(pair.id, b"ack")
        return first + gs.readall(pair.id)

    worker = gevent.spawn(new_owner)
    assert recv_exactly(pair.client, 3) == b"ack"
    pair.client.sendall(b"-part2")
    pair.client.shutdown(stdlib_socket.SHUT_WR)
    assert worker.get(timeout=5) == b"part1-mid-part2"


@pytest.mark.usefixtures("leak_check")
def test_abandoned_reader_cannot_take_bytes_meant_for_the_new_owner() -> None:
    # The old reader is woken by abandon() but runs later; DATA that the
    # dispatcher handles in between belongs to whoever start()s the id next.
    # A driver routed by hand (no dispatcher) makes that order exact, with
    # the bytes coming from a real peer.
    from gevent import get_hub

    from gsocket import driver as driver_module

    hub = get_hub()
    drv = driver_module.Driver(start=False)
    previous = driver_module.install_default(drv, hub)

    def route_until(predicate: Any) -> None:
        with gevent.Timeout(5, AssertionError("event not routed")):
            while not predicate():
                assert drv.poll(5) == 1

    def route_next_now(data: bytes) -> None:
        # The peer's bytes have reached the server (queued as DATA) before
        # this greenlet yields again: route them before anyone else runs.
        wait_for(lambda: drv.server.pending_events > 0)
        message = drv.server.poll(0)
        assert message is not None and message.data == data
        drv.route(message)

    client = None
    try:
        listen_id = gs.listen("127.0.0.1", 0)
        accepted: List[int] = []
        gs.start(listen_id, lambda socket_id, address: accepted.append(socket_id))
        client = gevent.socket.create_connection(gs.address(listen_id))
        route_until(lambda: accepted)
        socket_id = accepted[0]
        gs.start(socket_id)
        client.sendall(b"abc")
        route_until(lambda: row(socket_id).read == 3 and drv.server.pending_events == 0)
        old_reader = gevent.spawn(gs.read, socket_id, 5)
        reader_waits(socket_id)                           # for 2 more bytes
        client.sendall(b"de")
        wait_for(lambda: drv.server.pending_events > 0)
        gs.abandon(socket_id)                             # old_reader: wake scheduled
        route_next_now(b"de")                             # DATA "de" meanwhile
        assert not old_reader.dead
        assert gs.start(socket_id) == socket_id           # the new owner takes over
        assert old_reader.get(timeout=5) is None
        assert gs.read(socket_id, 5, timeout=5) == b"abcde"
        route_until(lambda: drv.server.pending_events == 0)   # OPEN "transfer"
        # the same for read() without a size
        any_reader = gevent.spawn(gs.read, socket_id)
        reader_waits(socket_id)
        client.sendall(b"fgh")
        wait_for(lambda: drv.server.pending_events > 0)
        gs.abandon(socket_id)
        route_next_now(b"fgh")
        assert not any_reader.dead
        gs.start(socket_id)
        assert any_reader.get(timeout=5) is None
        assert gs.read(socket_id, 3, timeout=5) == b"fgh"
    finally:
        if client is not None:
            client.close()
        drv.free()
        driver_module.install_default(previous, hub)


def test_abandon_drops_onclose_and_start_after_peer_closed(pair: Pair) -> None:
    closes = []
    gs.onclose(pair.id, closes.append)
    pair.client.sendall(b"last words")
    wait_for(lambda: row(pair.id).read == 10)
    routed()
    gs.abandon(pair.id)
    pair.client.close()
    gevent.sleep(0.05)
    assert closes == []
    assert gs.start(pair.id) == pair.id          # still there: closed by the peer
    assert gs.readall(pair.id, timeout=5) == b"last words"
    gs.close(pair.id)
    assert closes == []


def test_abandon_unknown_is_noop(pair: Pair) -> None:
    before = gs.netstat()
    gs.abandon(31337)
    assert gs.netstat() == before                  # nothing closed, nothing made
    assert gs.invalid(31337)
    with pytest.raises(ConnectionError):
        gs.start(31337)                            # and nothing kept for it
    pair.client.sendall(b"ok")                     # the others are untouched
    assert gs.read(pair.id, 2, timeout=5) == b"ok"


# ---------------------------------------------------------------------- onclose

def test_onclose_runs_once_when_peer_closes(pair: Pair) -> None:
    calls = []
    gs.onclose(pair.id, calls.append)
    pair.client.close()
    wait_for(lambda: calls)
    assert gs.read(pair.id) is None
    gs.close(pair.id)
    gevent.sleep(0.05)
    assert calls == [pair.id]


def test_onclose_runs_once_when_we_close(pair: Pair) -> None:
    calls = []
    gs.onclose(pair.id, lambda socket_id: calls.append(("cb", socket_id)))
    gs.close(pair.id)
    wait_for(lambda: calls)
    gevent.sleep(0.05)
    assert calls == [("cb", pair.id)]


def test_onclose_runs_once_on_shutdown(pair: Pair) -> None:
    calls = []
    gs.onclose(pair.id, calls.append)
    gs.shutdown(pair.id)
    gs.close(pair.id)
    wait_for(lambda: calls)
    gevent.sleep(0.05)
    assert calls == [pair.id]


def test_onclose_exception_is_logged(pair: Pair, caplog) -> None:
    def bad(socket_id: int) -> None:
        raise ValueError("onclose boom")

    gs.onclose(pair.id, bad)
    pair.client.close()
    wait_for(lambda: any(r.exc_info and "onclose boom" in str(r.exc_info[1]) for r in caplog.records))
    # the dispatcher still works
    other = make_pair()
    try:
        other.client.sendall(b"alive")
        assert gs.read(other.id, 5, timeout=5) == b"alive"
    finally:
        other.client.close()


def test_onclose_requires_callable(pair: Pair) -> None:
    with pytest.raises(TypeError):
        gs.onclose(pair.id, None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- warning

def _big_write_then_drain(p: Pair) -> bytes:
    data = random.Random(21).randbytes(16 << 20)
    assert gs.write(p.id, data) is True
    return data


def test_warning_callback_gets_kib_then_zero(pair: Pair) -> None:
    calls: List[Tuple[int, int]] = []
    gs.warning(pair.id, lambda socket_id, kib: calls.append((socket_id, kib)))
    data = _big_write_then_drain(pair)
    wait_for(lambda: calls)
    assert calls[0][0] == pair.id and calls[0][1] >= 1024
    assert recv_exactly(pair.client, len(data)) == data
    wait_for(lambda: calls[-1] == (pair.id, 0))
    assert all(kib > 0 for _, kib in calls[:-1])
    assert len(calls) < 10          # one per doubling, not one per write


def test_warning_default_logs(pair: Pair, caplog) -> None:
    caplog.set_level(logging.WARNING)
    data = _big_write_then_drain(pair)
    wait_for(lambda: any("K bytes need to send out" in r.getMessage() for r in caplog.records))
    assert recv_exactly(pair.client, len(data)) == data


def test_warning_callback_exception_is_logged(pair: Pair, caplog) -> None:
    calls: List[int] = []

    def callback(socket_id: int, kib: int) -> None:
        calls.append(kib)
        if len(calls) == 1:
            raise RuntimeError("warning boom")

    gs.warning(pair.id, callback)
    data = _big_write_then_drain(pair)
    wait_for(lambda: calls)
    assert recv_exactly(pair.client, len(data)) == data
    wait_for(lambda: calls[-1] == 0)       # later warnings still arrive
    assert any(r.exc_info and "warning boom" in str(r.exc_info[1]) for r in caplog.records)


def test_warning_on_unknown_id_raises() -> None:
    with pytest.raises(ConnectionError):
        gs.warning(55555, lambda *a: None)


# ---------------------------------------------------------------------- invalid / disconnected

def test_invalid_and_disconnected(pair: Pair) -> None:
    assert gs.invalid(777777) is True
    assert gs.disconnected(777777) is True          # unknown: a bool too
    assert gs.invalid(pair.id) is False
    assert gs.disconnected(pair.id) is False
    pair.client.close()
    assert gs.read(pair.id) is None
    assert gs.invalid(pair.id) is False
    assert gs.disconnected(pair.id) is True
    gs.close(pair.id)
    assert gs.invalid(pair.id) is True
    assert gs.disconnected(pair.id) is True          # closed and forgotten
    assert gs.disconnected(0) is True and gs.disconnected(-5) is True
    with pytest.raises(TypeError):
        gs.disconnected("2")


# ---------------------------------------------------------------------- limit

def test_limit_closes_a_socket_with_too_much_unread(pair: Pair, caplog) -> None:
    gs.limit(pair.id, 8192)
    reader = gevent.spawn(gs.readline, pair.id)
    data = b"z" * 10000
    pair.client.sendall(data)
    assert reader.get(timeout=5) is None
    assert recv_until_eof(pair.client) == b""               # closed by us
    kept = gs.readall(pair.id)
    assert 8192 < len(kept) <= 10000 and data.startswith(kept)
    assert any("overflow" in r.getMessage() for r in caplog.records)


def test_limit_reached_in_one_burst_of_reads_closes_cleanly(pair: Pair, caplog) -> None:
    # The reader's callback reads again at once while reads fill the buffer;
    # the DATA handler closing the socket in the middle must end that loop.
    gs.limit(pair.id, 4096)
    reader = gevent.spawn(gs.readline, pair.id)
    reader_waits(pair.id)
    try:
        pair.client.sendall(b"x" * 300_000)
    except OSError:
        pass                                    # reset: we closed with bytes unread
    assert reader.get(timeout=5) is None
    assert gs.invalid(pair.id) is False and gs.disconnected(pair.id) is True
    noise = [r.getMessage() for r in caplog.records
             if r.levelno >= logging.ERROR or "unknown" in r.getMessage()]
    assert noise == []


def test_limit_without_reader(pair: Pair) -> None:
    gs.limit(pair.id, 100)
    pair.client.sendall(b"y" * 50)
    wait_for(lambda: row(pair.id).read == 50)
    routed()                                    # the pool has seen the 50 bytes
    assert gs.disconnected(pair.id) is False
    pair.client.sendall(b"y" * 60)
    wait_for(lambda: gs.disconnected(pair.id))
    assert pair.client.recv(10) == b""


def test_limit_not_checked_while_a_sized_read_waits(pair: Pair) -> None:
    gs.limit(pair.id, 100)
    reader = gevent.spawn(gs.read, pair.id, 1000)
    reader_waits(pair.id)
    data = bytes(range(250)) * 4
    pair.client.sendall(data)
    assert reader.get(timeout=5) == data
    assert gs.disconnected(pair.id) is False


def test_limit_arguments(pair: Pair) -> None:
    with pytest.raises(ValueError):
        gs.limit(pair.id, -1)
    with pytest.raises(ConnectionError):
        gs.limit(888888, 10)


# ---------------------------------------------------------------------- pause

def test_pause_holds_reading_until_a_reader_waits(pair: Pair) -> None:
    gs.pause(pair.id)
    assert row(pair.id).reading is False
    pair.client.sendall(b"held")
    gevent.sleep(0.1)
    assert row(pair.id).read == 0
    assert gs.read(pair.id, timeout=5) == b"held"
    assert row(pair.id).reading is True
    gs.pause(424242)   # unknown: no-op


# ---------------------------------------------------------------------- header

def test_header() -> None:
    cases = [(b"\x05", 5), (b"\x01\x02", 0x0102), (b"\x00\x01\x00", 256),
             (b"\xff\xff\xff\xff", 0xFFFFFFFF), ("\x00\x07", 7), (bytearray(b"\x02\x00"), 512)]
    assert [gs.header(data) for data, _ in cases] == [value for _, value in cases]
    for bad in (b"", b"12345"):
        with pytest.raises(ValueError):
            gs.header(bad)


# ---------------------------------------------------------------------- netstat

def test_netstat_listener_and_connection(pair: Pair) -> None:
    pair.client.sendall(b"abc")
    wait_for(lambda: row(pair.id).read == 3)
    cport = pair.client.getsockname()[1]
    port = gs.address(pair.listen_id)[1]
    listener, conn = row(pair.listen_id), row(pair.id)
    assert (listener.type, listener.read, listener.name) == ("LISTEN", 1, f"127.0.0.1:{port}")
    assert (conn.type, conn.read, conn.name) == ("TCP", 3, f"127.0.0.1:{cport}")
    assert conn.reading is True and conn.writing is False and conn.wbuffer == 0
    gs.write(pair.id, b"12345")
    assert recv_exactly(pair.client, 5) == b"12345"
    assert row(pair.id).write == 5
    pair.client.close()
    wait_for(lambda: row(pair.id).type == "CLOSING")   # peer closed, fd kept until close
    gs.close(pair.id)
    assert row(pair.id) is None


# ---------------------------------------------------------------------- resolve

def test_resolve() -> None:
    assert gs.resolve("127.0.0.1") == ["127.0.0.1"]
    assert gs.resolve("::1") == ["::1"]
    addresses = gs.resolve("localhost")
    assert "127.0.0.1" in addresses or "::1" in addresses
    assert len(addresses) == len(set(addresses))
    with pytest.raises(OSError):
        gs.resolve("no-such-host.invalid")
    with pytest.raises(TypeError):
        gs.resolve(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- bind / stdin

def test_bind_a_pipe() -> None:
    r, w = os.pipe()
    try:
        socket_id = gs.bind(r)
        assert row(socket_id).type == "BIND"
        os.write(w, b"hello\nwor")
        assert gs.readline(socket_id, timeout=5) == b"hello"
        os.write(w, b"ld")
        os.close(w)
        w = -1
        assert gs.readall(socket_id, timeout=5) == b"world"
        assert gs.disconnected(socket_id) is True
        gs.close(socket_id)
        assert gs.invalid(socket_id)
        os.fstat(r)          # the fd was not closed by gsocket
        assert os.get_blocking(r) is True
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_stdin_reads_fd_0() -> None:
    r, w = os.pipe()
    try:
        saved = os.dup(0)
    except OSError:      # CI may run us with fd 0 closed
        saved = -1
    try:
        os.dup2(r, 0)
        socket_id = gs.stdin()
        os.write(w, b"typed line\n")
        assert gs.readline(socket_id, timeout=5) == b"typed line"
        gs.close(socket_id)
    finally:
        if saved >= 0:
            os.dup2(saved, 0)
            os.close(saved)
        else:
            os.close(0)
        for fd in (r, w):
            os.close(fd)


# ---------------------------------------------------------------------- UDP

def test_udp_v4_echo_between_two_gsocket_sockets() -> None:
    server_got: List[Tuple[bytes, Tuple[str, int]]] = []
    client_got: gevent.queue.Queue = gevent.queue.Queue()

    def on_server(data: bytes, address: Tuple[str, int]) -> None:
        server_got.append((data, address))
        gs.sendto(server_id, address, b"OK " + data)

    server_id = gs.udp(on_server, "127.0.0.1", 0)
    host, port = gs.address(server_id)
    assert host == "127.0.0.1" and port > 0
    client_id = gs.udp(lambda data, address: client_got.put((data, address)))
    gs.udp_connect(client_id, "127.0.0.1", port)
    for i in range(20):
        assert gs.write(client_id, b"hello %d" % i) is True
    replies = [client_got.get(timeout=5) for _ in range(20)]
    assert sorted(data for data, _ in replies) == sorted(b"OK hello %d" % i for i in range(20))
    assert all(address == ("127.0.0.1", port) for _, address in replies)
    client_port = gs.address(client_id)[1]
    assert {gs.udp_address(address) for _, address in server_got} == {("127.0.0.1", client_port)}
    assert row(server_id).type == "UDP"
    gs.close(client_id)
    gs.close(server_id)


def test_udp_v6_listen_and_dial() -> None:
    got: gevent.queue.Queue = gevent.queue.Queue()
    replies: gevent.queue.Queue = gevent.queue.Queue()

    def on_server(data: bytes, address: Tuple[str, int]) -> None:
        got.put((data, address))
        gs.sendto(server_id, address, data[::-1])

    server_id = gs.udp_listen("::1", 0, on_server)
    port = gs.address(server_id)[1]
    client_id = gs.udp_dial("::1", port, lambda data, address: replies.put((data, address)))
    assert gs.write(client_id, b"abc") is True
    data, address = got.get(timeout=5)
    assert data == b"abc" and gs.udp_address(address)[0] == "::1"
    assert replies.get(timeout=5) == (b"cba", ("::1", port))
    gs.close(client_id)
    gs.close(server_id)


def test_udp_with_a_stdlib_peer_and_callback_errors(caplog) -> None:
    received: gevent.queue.Queue = gevent.queue.Queue()

    def on_datagram(data: bytes, address: Tuple[str, int]) -> None:
        if data == b"raise":
            raise RuntimeError("udp callback boom")
        received.put((data, address))

    server_id = gs.udp(on_datagram, "127.0.0.1", 0)
    port = gs.address(server_id)[1]
    peer = gevent.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM)
    try:
        peer.bind(("127.0.0.1", 0))
        peer.sendto(b"raise", ("127.0.0.1", port))
        peer.sendto(b"after", ("127.0.0.1", port))
        data, address = received.get(timeout=5)
        assert data == b"after" and address == peer.getsockname()
        assert any(r.exc_info and "udp callback boom" in str(r.exc_info[1]) for r in caplog.records)
        assert gs.sendto(server_id, address, b"back") is True
        peer.settimeout(5)
        assert peer.recvfrom(100) == (b"back", ("127.0.0.1", port))
    finally:
        peer.close()
        gs.close(server_id)


def test_udp_without_destination_and_wrong_family() -> None:
    udp_id = gs.udp(lambda *a: None)
    assert gs.write(udp_id, b"nowhere") is False              # no default destination
    assert gs.sendto(udp_id, ("::1", 9), b"v6 on v4") is False  # family mismatch
    with pytest.raises(ValueError):
        gs.udp_address(b"\x03garbage")
    peer = gevent.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM)
    try:
        peer.bind(("127.0.0.1", 0))
        port = peer.getsockname()[1]
        peer.settimeout(5)
        gs.udp_connect(udp_id, "127.0.0.1", port, callback=lambda *a: None)
        assert gs.write(udp_id, b"now somewhere") is True      # a default destination now
        assert peer.recv(100) == b"now somewhere"
    finally:
        peer.close()
    gs.close(udp_id)
    assert gs.write(udp_id, b"closed") is False
    assert gs.sendto(udp_id, ("127.0.0.1", 9), b"closed") is False


def test_udp_connect_replaces_callback() -> None:
    first, second = [], gevent.queue.Queue()
    a = gs.udp(first.append, "127.0.0.1", 0)
    b = gs.udp(lambda data, address: None, "127.0.0.1", 0)
    gs.udp_connect(a, "127.0.0.1", gs.address(b)[1], lambda data, address: second.put(data))
    gs.udp_connect(b, "127.0.0.1", gs.address(a)[1])
    gs.write(b, b"to a")
    assert second.get(timeout=5) == b"to a"
    assert first == []
    gs.close(a)
    gs.close(b)


def test_write_and_lwrite_return_values(pair: Pair) -> None:
    assert gs.write(pair.id, b"hi") is True
    assert gs.lwrite(pair.id, b" there") is True
    assert recv_exactly(pair.client, 8) == b"hi there"
    assert gs.write(123456, b"x") is False
    assert gs.lwrite(123456, b"x") is False
    gs.close(pair.id)
    assert gs.write(pair.id, b"x") is False
