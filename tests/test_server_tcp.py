"""SocketServer TCP: listen, start, accept, pause, connect, block_connect,
nodelay, IPv6, reading (order, adaptive read size) over real loopback
sockets with peers independent of gsocket."""

from __future__ import annotations

import socket as stdlib_socket
import threading

import gevent
import gevent.socket
import pytest

import gsocket._stream
from gsocket._accelerate import code_module

from gsocket.events import (
    SOCKET_ACCEPT, SOCKET_CLOSE, SOCKET_DATA, SOCKET_ERROR, SOCKET_OPEN,
)

pytest_plugins = ["helpers"]                # fixtures: events, closer

from helpers import (  # noqa: E402
    bound_gevent_socket, InThread, accept, closed_port, gevent_pair, info_row, listen_started, os_socket,
    pattern, recv_exact, thread_client, thread_pair,
)


def gevent_listener(closer, host="127.0.0.1"):
    sock, port = bound_gevent_socket(closer, stdlib_socket.SOCK_STREAM, host)
    sock.listen(16)
    return sock, port


# ---------------------------------------------------------------- listen / start / accept

def test_listen_is_silent_and_accepts_only_after_start(server, events, closer):
    listen_id = server.listen("127.0.0.1", 0, opaque=7)
    assert isinstance(listen_id, int) and listen_id > 0
    host, port = server.address(listen_id)
    assert host == "127.0.0.1" and port > 0
    events.assert_none(0.1)                       # listen emits nothing

    # The port is listening already: the kernel completes the handshake.
    client = closer(gevent.socket.create_connection(("127.0.0.1", port), timeout=5))
    events.assert_none(0.2)                       # ...but no ACCEPT before start

    server.start(listen_id)
    events.expect(SOCKET_OPEN, listen_id, data="start", ud=0)
    message = events.expect(SOCKET_ACCEPT, listen_id)
    assert message.opaque == 7
    assert message.ud > 0 and message.ud != listen_id
    cport = client.getsockname()[1]
    assert message.data == f"127.0.0.1:{cport}"


def test_accepted_socket_reads_only_after_start(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events, start=False)
    closer(client)
    client.sendall(b"abc")
    events.assert_none(0.2)
    assert info_row(server, socket_id).reading is False
    server.start(socket_id)
    events.expect(SOCKET_OPEN, socket_id, data="start")
    assert events.data(socket_id, 3) == b"abc"
    assert info_row(server, socket_id).reading is True


def test_write_to_accepted_but_unstarted_socket_is_sent(server, events, closer):
    # Deliberate difference 5: skynet drops these; gsocket sends them.
    socket_id, client, _ = gevent_pair(server, events, start=False)
    closer(client)
    assert server.send(socket_id, b"early ") is True
    assert server.send_lowpriority(socket_id, b"bird") is True
    client.settimeout(5)
    assert recv_exact(client, 10) == b"early bird"
    # and nothing was read from our side meanwhile
    client.sendall(b"x")
    events.assert_none(0.1)


def test_start_keeps_or_changes_owner_and_transfer(server, events, closer):
    listen_id = server.listen("127.0.0.1", 0, opaque=7)
    server.start(listen_id)
    assert events.expect(SOCKET_OPEN, listen_id, data="start").opaque == 7
    client = closer(gevent.socket.create_connection(server.address(listen_id), timeout=5))
    socket_id = accept(events, listen_id).ud
    server.start(socket_id)            # keeps the listener's owner
    assert events.expect(SOCKET_OPEN, socket_id, data="start").opaque == 7
    server.start(socket_id, opaque=9)  # already started: a transfer
    assert events.expect(SOCKET_OPEN, socket_id, data="transfer").opaque == 9
    client.sendall(b"hi")
    message = events.expect(SOCKET_DATA, socket_id, data=b"hi", ud=2)
    assert message.opaque == 9
    assert info_row(server, socket_id).opaque == 9
    server.close(socket_id)
    assert events.expect(SOCKET_CLOSE, socket_id).opaque == 9


def test_start_with_opaque_on_unstarted_socket_hands_it_over(server, events, closer):
    listen_id, port = listen_started(server, events, opaque=0)
    client = closer(gevent.socket.create_connection(("127.0.0.1", port), timeout=5))
    socket_id = accept(events, listen_id).ud
    server.start(socket_id, opaque=42)
    assert events.expect(SOCKET_OPEN, socket_id, data="start").opaque == 42
    client.sendall(b"z")
    assert events.expect(SOCKET_DATA, socket_id).opaque == 42


def test_start_unknown_id_reports_invalid_socket(server, events):
    server.start(12345)
    message = events.expect(SOCKET_ERROR, 12345, data="invalid socket")
    assert message.ud == 0
    server.start(12346, opaque=5)
    assert events.expect(SOCKET_ERROR, 12346, data="invalid socket").opaque == 5


def test_start_on_peer_closed_socket_reports_socket_closed(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    client.close()
    events.expect(SOCKET_CLOSE, socket_id)
    server.start(socket_id)
    events.expect(SOCKET_ERROR, socket_id, data="socket closed")
    events.assert_none(0.1)


def test_pause_stops_reading_until_start(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    closer(client)
    client.sendall(b"one")
    assert events.data(socket_id, 3) == b"one"
    server.pause(socket_id)
    assert info_row(server, socket_id).reading is False
    client.sendall(b"two")
    events.assert_none(0.2)
    server.start(socket_id)
    events.expect(SOCKET_OPEN, socket_id, data="transfer")
    assert events.data(socket_id, 3) == b"two"


def test_pause_listener_holds_accepts(server, events, closer):
    listen_id, port = listen_started(server, events)
    server.pause(listen_id)
    client = closer(gevent.socket.create_connection(("127.0.0.1", port), timeout=5))
    events.assert_none(0.2)
    server.start(listen_id)
    message = events.wait_for(SOCKET_ACCEPT, listen_id)
    assert message.data == "127.0.0.1:%d" % client.getsockname()[1]


def test_many_accepts_get_distinct_increasing_ids(server, events, closer):
    listen_id, port = listen_started(server, events, backlog=64)
    clients = [closer(gevent.socket.create_connection(("127.0.0.1", port), timeout=5))
               for _ in range(40)]
    accepted = [accept(events, listen_id) for _ in clients]
    ids = [m.ud for m in accepted]
    assert ids == sorted(ids) and len(set(ids)) == 40 and listen_id not in ids
    assert {m.data for m in accepted} == {"127.0.0.1:%d" % c.getsockname()[1] for c in clients}
    assert info_row(server, listen_id).read == 40      # accept count


def test_listen_port_in_use_raises_oserror(server, events, closer):
    holder = closer(stdlib_socket.socket())
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    with pytest.raises(OSError):
        server.listen("127.0.0.1", port)
    assert server.info() == []
    events.assert_none(0.05)


def test_listen_empty_host_binds_any_address(server, events, closer):
    listen_id = server.listen("", 0)
    host, port = server.address(listen_id)
    assert host == "0.0.0.0"
    assert info_row(server, listen_id).name == f"0.0.0.0:{port}"
    server.start(listen_id)
    events.expect(SOCKET_OPEN, listen_id, data="start")
    closer(gevent.socket.create_connection(("127.0.0.1", port), timeout=5))
    accept(events, listen_id)


def test_close_listener_stops_listening(server, events, closer):
    listen_id, port = listen_started(server, events)
    server.close(listen_id)
    events.expect(SOCKET_CLOSE, listen_id)
    assert info_row(server, listen_id) is None
    with pytest.raises(ConnectionRefusedError):
        closer(gevent.socket.create_connection(("127.0.0.1", port), timeout=5))
    events.assert_none(0.1)


def test_ipv6_listen_accept_and_connect(server, events, closer):
    listen_id, port = listen_started(server, events, host="::1")
    assert server.address(listen_id) == ("::1", port)
    assert info_row(server, listen_id).name == f"[::1]:{port}"
    socket_id = server.connect("::1", port)
    got = {m.type: m for m in (events.next(), events.next())}   # any order
    accepted, opened = got[SOCKET_ACCEPT], got[SOCKET_OPEN]
    assert accepted.id == listen_id and opened.id == socket_id
    assert opened.data == f"[::1]:{port}"
    server.start(accepted.ud)
    events.wait_for(SOCKET_OPEN, accepted.ud)
    # accepted peer address is the connecting socket's local address
    local_port = int(accepted.data.rsplit(":", 1)[1])
    assert accepted.data == f"[::1]:{local_port}"
    assert server.send(socket_id, b"over v6")
    assert events.data(accepted.ud, 7) == b"over v6"
    assert server.send(accepted.ud, b"back")
    assert events.data(socket_id, 4) == b"back"


# ---------------------------------------------------------------- connect / block_connect

def test_connect_returns_at_once_then_open_with_peer_address(server, events, closer):
    lsock, port = gevent_listener(closer)
    socket_id = server.connect("127.0.0.1", port, opaque=3)
    assert isinstance(socket_id, int) and socket_id > 0
    conn, _ = lsock.accept()
    closer(conn)
    message = events.expect(SOCKET_OPEN, socket_id, data=f"127.0.0.1:{port}", ud=0)
    assert message.opaque == 3
    # reads without start()
    conn.sendall(b"ping")
    assert events.data(socket_id, 4) == b"ping"
    assert server.send(socket_id, b"pong")
    conn.settimeout(5)
    assert recv_exact(conn, 4) == b"pong"
    row = info_row(server, socket_id)
    assert row.type == "TCP" and row.name == f"127.0.0.1:{port}"
    assert row.name == "%s:%d" % conn.getsockname()[:2]


def test_connect_refused_reports_error_and_no_close(server, events):
    port = closed_port()
    socket_id = server.connect("127.0.0.1", port, opaque=4)
    message = events.expect(SOCKET_ERROR, socket_id, data="Connection refused")
    assert message.opaque == 4
    events.assert_none(0.2)                  # no CLOSE after a failed connect
    assert server.send(socket_id, b"x") is False
    assert info_row(server, socket_id) is None


def test_data_sent_before_open_is_delivered(server, events, closer):
    lsock, port = gevent_listener(closer)
    socket_id = server.connect("127.0.0.1", port)
    assert server.send(socket_id, b"hello") is True
    assert server.send_lowpriority(socket_id, b" wor") is True
    assert server.send(socket_id, [b"l", "d"]) is True
    conn, _ = lsock.accept()
    closer(conn)
    conn.settimeout(5)
    events.expect(SOCKET_OPEN, socket_id)
    # queued before OPEN: the later high-priority send overtakes the low one
    assert recv_exact(conn, 11) == b"hellold wor"


def test_connect_by_name_tries_every_address(server, events, closer):
    # "localhost" goes through the resolver; whichever family comes first,
    # the connect ends on the IPv4 listener.
    lsock, port = gevent_listener(closer)
    socket_id = server.connect("localhost", port)
    conn, _ = lsock.accept()
    closer(conn)
    opened = events.wait_for(SOCKET_OPEN, socket_id)
    assert opened.data == f"127.0.0.1:{port}"


def test_pause_before_connect_completes_is_kept(server, events, closer):
    lsock, port = gevent_listener(closer)
    socket_id = server.connect("127.0.0.1", port)
    server.pause(socket_id)
    conn, _ = lsock.accept()
    closer(conn)
    conn.sendall(b"held")
    events.expect(SOCKET_OPEN, socket_id, data=f"127.0.0.1:{port}")
    events.assert_none(0.2)                      # still paused: no DATA
    assert info_row(server, socket_id).reading is False
    server.start(socket_id)
    events.expect(SOCKET_OPEN, socket_id, data="transfer")
    assert events.data(socket_id, 4) == b"held"


def test_block_connect_returns_connected_id(server, events, closer):
    lsock, port = gevent_listener(closer)
    socket_id = server.block_connect("127.0.0.1", port, opaque=6)
    assert socket_id > 0
    row = info_row(server, socket_id)
    assert row is not None and row.type == "TCP" and row.reading
    message = events.expect(SOCKET_OPEN, socket_id, data=f"127.0.0.1:{port}")
    assert message.opaque == 6
    conn, _ = lsock.accept()
    closer(conn)
    conn.sendall(b"data")
    assert events.data(socket_id, 4) == b"data"


def test_block_connect_refused_raises(server, events):
    with pytest.raises(ConnectionRefusedError):
        server.block_connect("127.0.0.1", closed_port())
    assert server.info() == []
    events.assert_none(0.1)


def test_block_connect_blocks_only_the_calling_greenlet(server, events, closer):
    # A listener whose accept queue is full (backlog 0 holds one) drops our
    # SYN: block_connect waits for the retransmission, in its greenlet only.
    lsock, port = bound_gevent_socket(closer, stdlib_socket.SOCK_STREAM, "127.0.0.1")
    lsock.listen(0)
    filler = gevent.socket.create_connection(("127.0.0.1", port))
    closer(filler)
    other_id, other_client, _ = gevent_pair(server, events)
    closer(other_client)
    connecting = gevent.spawn(server.block_connect, "127.0.0.1", port)
    gevent.sleep(0.05)
    # While it waits, this greenlet runs and another socket is served.
    assert not connecting.dead
    other_client.sendall(b"meanwhile")
    assert events.data(other_id, 9) == b"meanwhile"
    assert not connecting.dead
    conn, _ = lsock.accept()              # room in the queue: the retry gets in
    closer(conn)
    socket_id = connecting.get(timeout=10)
    assert socket_id > 0 and info_row(server, socket_id).type == "TCP"


def test_nodelay_sets_tcp_nodelay(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    closer(client)

    def server_side_nodelay():
        with os_socket(client.getpeername()[:2], client.getsockname()[:2]) as probe:
            return probe.getsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY)

    assert server_side_nodelay() == 0
    server.nodelay(socket_id)
    assert server_side_nodelay() != 0
    server.nodelay(987654)        # unknown id: ignored
    client.sendall(b"still fine")
    assert events.data(socket_id, 10) == b"still fine"


# ---------------------------------------------------------------- reading

def test_peer_bytes_arrive_in_order_then_close(server, events, closer):
    socket_id, client, _ = thread_pair(server, events)
    expected = b"".join(b"%d," % i for i in range(5000))

    def peer():
        with client:
            for i in range(0, len(expected), 777):
                client.sendall(expected[i:i + 777])

    thread = InThread(peer)
    data = events.data(socket_id, len(expected))
    thread.result()
    assert data == expected
    events.expect(SOCKET_CLOSE, socket_id)
    events.assert_none(0.1)
    kinds = [m.type for m in events.of(socket_id)]
    assert kinds[0] == SOCKET_OPEN and kinds[-1] == SOCKET_CLOSE
    assert set(kinds[1:-1]) == {SOCKET_DATA}
    assert info_row(server, socket_id).read == len(expected)


def read_size_model(chunks, start=64, cap=64 * 1024):
    """Check each chunk against the adaptive read size; returns the final size."""
    size = start
    for n in chunks:
        assert 0 < n <= size, f"chunk of {n} with read size {size}: {chunks[:20]}"
        if n == size:
            size = min(size * 2, cap)
        elif size > start and n * 2 < size:
            size //= 2
    return size


def test_adaptive_read_size_grows_and_shrinks(server, events, closer, monkeypatch):
    # The real cap (1 MiB) needs more than the kernel queues; a 64 KiB cap
    # shows the same rule within 1 MiB.
    monkeypatch.setattr(code_module(gsocket._stream), "MAX_READ_BUFFER", 64 * 1024)
    listen_id, port = listen_started(server, events)
    # a roomy receive buffer (inherited from the listener) keeps the reads full
    with os_socket(("127.0.0.1", port)) as listener:
        listener.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 1 << 20)
    client = closer(thread_client(port))
    socket_id = accept(events, listen_id).ud
    total = 1 << 20
    payload = pattern(1, total)
    sent = [0]

    def pump():
        view = memoryview(payload)
        while sent[0] < total:
            sent[0] += client.send(view[sent[0]:sent[0] + 65536])

    thread = InThread(pump)
    # let the kernel queue it all (loopback buffers hold MiBs) before reading
    thread.result()
    server.start(socket_id)
    events.expect(SOCKET_OPEN, socket_id, data="start")
    chunks = []
    got = 0
    while got < total:
        message = events.expect(SOCKET_DATA, socket_id)
        chunks.append(message.data)
        got += message.ud
    assert b"".join(chunks) == payload
    sizes = [len(c) for c in chunks]
    assert sizes[:11] == [64 << k for k in range(11)]       # 64 ... 65536
    assert max(sizes) == 64 * 1024          # reached, never exceeded
    read_size_model(sizes)

    # Short reads shrink it again: one byte at a time, ten halvings to 64...
    for i in range(12):
        client.sendall(b"%d" % (i % 10))
        events.expect(SOCKET_DATA, socket_id, ud=1)
    # ...then 1000 bytes in one segment are read as 64, 128, 256, 512, 40.
    client.sendall(pattern(2, 1000))
    small = [events.expect(SOCKET_DATA, socket_id).ud for _ in range(5)]
    assert small == [64, 128, 256, 512, 40]
    events.assert_none(0.05)


def test_data_of_unstarted_socket_waits_in_kernel(server, events, closer):
    socket_id, client, listen_id = thread_pair(server, events, start=False)
    closer(client)
    client.sendall(b"queued before start")
    client.shutdown(stdlib_socket.SHUT_WR)
    events.assert_none(0.2)
    server.start(socket_id)
    events.expect(SOCKET_OPEN, socket_id, data="start")
    assert events.data(socket_id, 19) == b"queued before start"
    events.expect(SOCKET_CLOSE, socket_id)


def test_events_of_interleaved_sockets_stay_in_per_socket_order(server, events, closer):
    listen_id, port = listen_started(server, events, backlog=64)
    clients = [closer(thread_client(port)) for _ in range(8)]
    ids = []
    for _ in clients:
        ids.append(accept(events, listen_id).ud)
    for socket_id in ids:
        server.start(socket_id)
    # map client -> id by the peer address in info()
    by_name = {info_row(server, i).name: i for i in ids}
    order = {by_name["127.0.0.1:%d" % c.getsockname()[1]]: c for c in clients}
    barrier = threading.Barrier(len(clients))

    def peer(sock, tag):
        barrier.wait(5)
        for i in range(200):
            sock.sendall(b"%s%04d;" % (tag, i))
        sock.close()

    threads = [InThread(peer, sock, b"%03d" % socket_id) for socket_id, sock in order.items()]
    closed = set()
    while len(closed) < len(ids):
        message = events.next()
        if message.type == SOCKET_CLOSE:
            closed.add(message.id)
    for t in threads:
        t.result()
    for socket_id in ids:
        msgs = events.of(socket_id)
        assert [m.type for m in msgs][:1] == [SOCKET_OPEN]
        assert msgs[-1].type == SOCKET_CLOSE
        stream = b"".join(m.data for m in msgs if m.type == SOCKET_DATA)
        assert stream == b"".join(b"%03d%04d;" % (socket_id, i) for i in range(200))
