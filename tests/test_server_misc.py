"""SocketServer: bind of a pipe, info(), ids and stale ids, the max_sockets
limit, calls from other OS threads, bad arguments, unknown ids, poll/exit
and release."""

from __future__ import annotations

import os
import threading

import gevent
import gevent.socket
import pytest

from gsocket.events import (
    SOCKET_ACCEPT, SOCKET_CLOSE, SOCKET_ERROR, SOCKET_EXIT, SOCKET_OPEN,
    SocketMessage,
)
from gsocket.server import SocketServer

pytest_plugins = ["helpers"]                # fixtures: events, closer

from helpers import (  # noqa: E402
    Events, InThread, accept, closed_port, gevent_pair, info_row, listen_started, pattern,
    recv_exact, recv_to_eof, recv_to_end, thread_client,
)


# ---------------------------------------------------------------- bind

def test_bind_pipe_reads_until_eof_and_leaves_fd_open(server, events, closer):
    r, w = os.pipe()
    closer(r)           # w is closed by the test itself (EOF)
    assert os.get_blocking(r) is True
    bind_id = server.bind(r, opaque=3)
    message = events.expect(SOCKET_OPEN, bind_id, data="binding")
    assert message.opaque == 3 and message.ud == 0
    row = info_row(server, bind_id)
    assert row.type == "BIND" and row.reading is True
    os.write(w, b"hello ")
    assert events.data(bind_id, 6) == b"hello "
    os.write(w, b"pipe")
    assert events.data(bind_id, 4) == b"pipe"
    os.close(w)
    events.expect(SOCKET_CLOSE, bind_id)
    server.start(bind_id)
    events.expect(SOCKET_ERROR, bind_id, data="socket closed")
    server.close(bind_id)
    events.assert_none(0.1)                       # no second CLOSE
    assert info_row(server, bind_id) is None
    os.fstat(r)                                   # still open: not ours to close
    assert os.get_blocking(r) is True             # blocking mode given back


def test_bind_pipe_bulk_data_in_order(server, events, closer):
    r, w = os.pipe()
    closer(r)
    payload = pattern(20, 2 << 20)

    def writer():
        with os.fdopen(w, "wb", buffering=0) as f:
            view = memoryview(payload)
            while view:
                n = f.write(view[:100000])
                view = view[n:]

    bind_id = server.bind(r)
    events.expect(SOCKET_OPEN, bind_id, data="binding")
    thread = InThread(writer)
    assert events.data(bind_id, len(payload), timeout=20) == payload
    thread.result()
    events.expect(SOCKET_CLOSE, bind_id)
    assert info_row(server, bind_id).read == len(payload)
    server.close(bind_id)             # before the closer closes r


def test_release_leaves_bound_fd_open(leak_check):
    r, w = os.pipe()
    try:
        srv = SocketServer()
        try:
            bind_id = srv.bind(r)
            ev = Events(srv)
            ev.expect(SOCKET_OPEN, bind_id, data="binding")
        finally:
            srv.release()
        os.fstat(r)
        os.write(w, b"x")
        assert os.read(r, 1) == b"x"
    finally:
        os.close(r)
        os.close(w)


# ---------------------------------------------------------------- info

def test_info_rows(server, events, closer):
    listen_id, port = listen_started(server, events, opaque=11)
    client = closer(thread_client(port))
    socket_id = accept(events, listen_id).ud
    server.start(socket_id, opaque=12)
    events.expect(SOCKET_OPEN, socket_id, data="start")
    client.sendall(b"abc")
    assert events.data(socket_id, 3) == b"abc"
    assert server.send(socket_id, b"12345")
    assert recv_exact(client, 5) == b"12345"
    udp_id = server.udp("127.0.0.1", 0, opaque=13)
    r, w = os.pipe()
    closer(r)
    closer(w)
    bind_id = server.bind(r, opaque=14)

    rows = server.info()
    assert [row.id for row in rows] == sorted([listen_id, socket_id, udp_id, bind_id])
    by_id = {row.id: row for row in rows}
    lrow = by_id[listen_id]
    assert (lrow.type, lrow.opaque, lrow.read, lrow.name) == ("LISTEN", 11, 1, f"127.0.0.1:{port}")
    crow = by_id[socket_id]
    assert (crow.type, crow.opaque, crow.read, crow.write) == ("TCP", 12, 3, 5)
    assert crow.name == "127.0.0.1:%d" % client.getsockname()[1]
    assert crow.reading is True and crow.writing is False and crow.wbuffer == 0
    assert crow.rtime > 0 and crow.wtime > 0
    urow = by_id[udp_id]
    assert (urow.type, urow.opaque, urow.read, urow.write) == ("UDP", 13, 0, 0)
    brow = by_id[bind_id]
    assert (brow.type, brow.opaque) == ("BIND", 14)

    server.pause(socket_id)
    assert info_row(server, socket_id).reading is False
    client.close()
    server.start(socket_id)
    events.wait_for(SOCKET_CLOSE, socket_id)
    assert info_row(server, socket_id).type == "CLOSING"
    server.close(socket_id)
    assert info_row(server, socket_id) is None
    server.close(bind_id)             # before the closer closes the pipe
    assert [row.id for row in server.info()] == [listen_id, udp_id]


# ---------------------------------------------------------------- ids

def test_ids_increase_and_are_not_reused(server, events):
    seen = []
    for _ in range(5):
        udp_id = server.udp()
        seen.append(udp_id)
        server.close(udp_id)
        events.expect(SOCKET_CLOSE, udp_id)
    assert all(i > 0 for i in seen)
    assert seen == sorted(seen) and len(set(seen)) == 5


def test_stale_id_never_reaches_a_newer_socket(leak_check):
    srv = SocketServer(max_sockets=2)
    try:
        ev = Events(srv)
        keep = srv.udp()
        old = srv.udp()
        srv.close(old)
        ev.expect(SOCKET_CLOSE, old)
        new = srv.udp()                  # takes the freed place
        assert new not in (keep, old) and new > old
        assert srv.send(old, b"x") is False
        assert srv.udp_send(old, ("127.0.0.1", 9), b"x") is False
        srv.close(old)
        srv.shutdown(old)
        srv.pause(old)
        srv.nodelay(old)
        srv.start(old)
        ev.expect(SOCKET_ERROR, old, data="invalid socket")
        ev.assert_none(0.05)
        assert {row.id for row in srv.info()} == {keep, new}
        assert info_row(srv, new).reading is True
    finally:
        srv.release()


def test_ids_wrap_in_31_bits_skipping_zero_and_live_ids(leak_check):
    srv = SocketServer()
    try:
        first = srv.udp()
        second = srv.udp()
        srv._host.last_id = 0x7FFFFFFE   # white-box: jump to the end of the range
        top = srv.udp()
        assert top == 0x7FFFFFFF
        wrapped = srv.udp()
        assert wrapped > 0 and wrapped not in (first, second)
        assert wrapped == second + 1
    finally:
        srv.release()


def test_max_sockets_limits_live_sockets(leak_check):
    srv = SocketServer(max_sockets=3)
    try:
        ev = Events(srv)
        ids = [srv.udp() for _ in range(3)]
        with pytest.raises(OSError):
            srv.udp()
        with pytest.raises(OSError):
            srv.listen("127.0.0.1", 0)
        with pytest.raises(OSError):
            srv.connect("127.0.0.1", closed_port())
        assert len(srv.info()) == 3
        srv.close(ids[1])
        ev.expect(SOCKET_CLOSE, ids[1])
        again = srv.udp()
        assert again > max(ids)
        assert len(srv.info()) == 3
    finally:
        srv.release()


def test_default_table_holds_65536_live_sockets(leak_check):
    # The fd limit here (20,000, and no right to raise it) is below the
    # table size, so this fills the id allocator itself with fd-less slots
    # (the state a connect has while it resolves): the default server takes
    # MAX_SOCKET live ids, refuses the next, and after one is freed hands
    # out a new, larger id.
    from gsocket._connecting import ConnectingSlot
    from gsocket.server import MAX_SOCKET

    srv = SocketServer()
    host = srv._host

    def new_slot() -> ConnectingSlot:
        return host.register(ConnectingSlot(host, 0))

    try:
        assert MAX_SOCKET == 65536
        slots = [new_slot() for _ in range(MAX_SOCKET)]
        assert len({slot.id for slot in slots}) == MAX_SOCKET
        with pytest.raises(OSError, match="socket number limit"):
            new_slot()
        slots[100].force_close(report=False)
        again = new_slot()
        assert again.id > slots[-1].id
        assert not srv.send(slots[100].id, b"x")     # the freed id stays gone
    finally:
        srv.release()


def test_accept_beyond_max_sockets_drops_the_connection(leak_check):
    srv = SocketServer(max_sockets=2)
    clients = []
    try:
        ev = Events(srv)
        listen_id, port = listen_started(srv, ev)
        clients.append(gevent.socket.create_connection(("127.0.0.1", port), timeout=5))
        first = ev.expect(SOCKET_ACCEPT, listen_id).ud
        srv.start(first)
        ev.expect(SOCKET_OPEN, first)
        extra = gevent.socket.create_connection(("127.0.0.1", port), timeout=5)
        clients.append(extra)
        extra.settimeout(5)
        data, how = recv_to_end(extra)           # dropped: EOF or reset
        assert data == b""
        ev.assert_none(0.1)                      # and no ACCEPT for it
        srv.close(first)
        ev.expect(SOCKET_CLOSE, first)
        clients.append(gevent.socket.create_connection(("127.0.0.1", port), timeout=5))
        assert ev.expect(SOCKET_ACCEPT, listen_id).ud > first
    finally:
        for c in clients:
            c.close()
        srv.release()


# ---------------------------------------------------------------- other threads

def test_send_and_close_from_another_thread(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    closer(client)
    client.settimeout(10)
    reader = gevent.spawn(recv_to_eof, client)
    expected = b"".join(b"%d;" % i for i in range(3000))

    def worker():
        for i in range(3000):
            assert server.send(socket_id, b"%d;" % i) is True
        server.close(socket_id)

    InThread(worker).result()
    assert reader.get(timeout=10) == expected
    events.wait_for(SOCKET_CLOSE, socket_id)
    events.assert_none(0.1)
    assert info_row(server, socket_id) is None


def test_sends_from_many_threads_to_many_sockets(server, events, closer):
    listen_id, port = listen_started(server, events, backlog=64)
    clients = [closer(gevent.socket.create_connection(("127.0.0.1", port), timeout=5))
               for _ in range(4)]
    ids = [accept(events, listen_id).ud for _ in clients]
    names = {info_row(server, i).name: i for i in ids}
    pairs = [(names["127.0.0.1:%d" % c.getsockname()[1]], c) for c in clients]
    barrier = threading.Barrier(len(pairs))

    def worker(socket_id):
        barrier.wait(5)
        for i in range(500):
            send = server.send if i % 2 else server.send_lowpriority
            send(socket_id, [b"%d" % socket_id, ":%d;" % i])
        server.close(socket_id)

    readers = [gevent.spawn(recv_to_eof, c) for _, c in pairs]
    threads = [InThread(worker, socket_id) for socket_id, _ in pairs]
    for t in threads:
        t.result()
    for (socket_id, _), reader in zip(pairs, readers):
        received = reader.get(timeout=10)
        items = received.split(b";")[:-1]
        assert len(items) == 500 and all(x.startswith(b"%d:" % socket_id) for x in items)
        assert sorted(int(x.split(b":")[1]) for x in items) == list(range(500))


def test_shutdown_from_another_thread(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    closer(client)
    InThread(server.shutdown, socket_id).result()
    events.wait_for(SOCKET_CLOSE, socket_id)
    client.settimeout(5)
    assert recv_to_end(client)[0] == b""
    assert info_row(server, socket_id) is None
    assert InThread(server.send, socket_id, b"x").result() is False


def test_buffer_changed_by_sending_thread_after_send(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    closer(client)

    def worker():
        buf = bytearray(b"original")
        server.send(socket_id, buf)
        buf[:] = b"MUTATED!"
        server.send_lowpriority(socket_id, [buf, memoryview(buf)[:3]])
        buf[:] = b"changed2"

    InThread(worker).result()
    client.settimeout(5)
    assert recv_exact(client, 19) == b"originalMUTATED!MUT"


# ---------------------------------------------------------------- arguments, unknown ids

def test_bad_arguments_raise(server, events):
    bad_calls = [
        (TypeError, lambda: server.listen(123, 0)),
        (TypeError, lambda: server.listen("127.0.0.1", "abc")),
        (TypeError, lambda: server.listen("127.0.0.1", 1.5)),
        (ValueError, lambda: server.listen("127.0.0.1", -1)),
        (ValueError, lambda: server.listen("127.0.0.1", 65536)),
        (TypeError, lambda: server.listen("127.0.0.1", 0, opaque="x")),
        (TypeError, lambda: server.listen("127.0.0.1", 0, opaque=True)),
        (ValueError, lambda: server.listen("127.0.0.1", 0, backlog=0)),
        (ValueError, lambda: server.connect(None, 80)),
        (TypeError, lambda: server.connect("127.0.0.1", None)),
        (TypeError, lambda: server.connect(b"127.0.0.1", 80)),
        (ValueError, lambda: server.block_connect("", 80)),
        (TypeError, lambda: server.start(1, opaque="owner")),
        (TypeError, lambda: server.start("1")),
        (TypeError, lambda: server.send("1", b"x")),
        (TypeError, lambda: server.close(None)),
        (TypeError, lambda: server.bind("0")),
        (TypeError, lambda: server.bind(1.0)),
        (ValueError, lambda: SocketServer(max_sockets=0)),
        (ValueError, lambda: SocketServer(max_sockets="10")),
    ]
    for error, call in bad_calls:
        with pytest.raises(error):
            call()
    with pytest.raises(OSError):
        server.bind(closed_fd())
    assert server.info() == []             # nothing half-made was left behind
    events.assert_none(0.05)


def closed_fd():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    return r


def test_calls_on_unknown_ids_never_raise(server, events):
    for socket_id in (0, 7, 99999, -3, 2 ** 40):
        assert server.send(socket_id, b"x") is False
        assert server.send_lowpriority(socket_id, b"x") is False
        assert server.udp_send(socket_id, None, b"x") is False
        server.close(socket_id)
        server.shutdown(socket_id)
        server.pause(socket_id)
        server.nodelay(socket_id)
        server.udp_connect(socket_id, "127.0.0.1", 9)
        assert server.address(socket_id) is None
    events.assert_none(0.05)
    server.start(99999)
    events.expect(SOCKET_ERROR, 99999, data="invalid socket")


# ---------------------------------------------------------------- poll / exit / release

def test_poll_timeout_and_exit(server):
    assert server.poll(0) is None
    assert server.poll(0.05) is None
    server.exit()
    assert server.poll(1) == SocketMessage(SOCKET_EXIT, 0, 0, 0, None)
    assert server.poll(0) is None


def test_poll_wakes_when_another_greenlet_causes_an_event(server):
    gevent.spawn_later(0.05, server.exit)
    message = server.poll(5)
    assert message is not None and message.type == SOCKET_EXIT


def test_only_one_greenlet_may_poll(server):
    waiter = gevent.spawn(server.poll, 5)
    gevent.sleep(0.01)
    with pytest.raises(RuntimeError):
        server.poll(1)
    server.exit()
    assert waiter.get(timeout=5).type == SOCKET_EXIT


def test_release_closes_everything_and_is_final(leak_check):
    srv = SocketServer()
    ev = Events(srv)
    client = None
    try:
        socket_id, client, listen_id = gevent_pair(srv, ev)
        srv.send(socket_id, b"bye")
        srv.udp()
        srv.connect("localhost", closed_port())     # still resolving maybe
        srv.release()
        srv.release()                               # twice is fine
        client.settimeout(5)
        assert recv_to_end(client)[0] == b"bye"     # then EOF
        assert srv.info() == []
        assert srv.send(socket_id, b"x") is False
        # queued events dropped; every later poll answers EXIT at once
        assert srv.poll(0).type == SOCKET_EXIT
        assert srv.poll().type == SOCKET_EXIT
        assert srv.pending_events == 0
        with pytest.raises(RuntimeError):
            srv.listen("127.0.0.1", 0)
    finally:
        if client is not None:
            client.close()
        srv.release()
