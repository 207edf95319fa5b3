"""SocketServer robustness: a datagram flood neither starves the hub nor
grows the event queue without bound; calls from real OS threads raise bad
arguments in that thread, resolve names there and get consistent answers;
bind(fd) gives the blocking flag back on release; poll() after release()."""

from __future__ import annotations

import logging
import os
import socket as stdlib_socket
import threading

import gevent
import pytest

from gsocket._event_channel import CROWDED
from gsocket._udp import MAX_DATAGRAMS_PER_WAKEUP
from gsocket.events import SOCKET_CLOSE, SOCKET_DATA, SOCKET_EXIT, SOCKET_OPEN, SOCKET_UDP
from gsocket.server import SocketServer

pytest_plugins = ["helpers"]                # fixtures: events, closer

from helpers import Events, InThread, gevent_pair, info_row, recv_exact, wait_until  # noqa: E402

#: The most events a flood may leave queued: the crowd mark, plus one wake-up's worth.
QUEUE_BOUND = CROWDED + MAX_DATAGRAMS_PER_WAKEUP + 16


class Flood:
    """A real OS thread sending small datagrams to a port until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0
        self.stopped = threading.Event()
        self.thread = InThread(self._run)

    def _run(self) -> None:
        sock = stdlib_socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM)
        try:
            while not self.stopped.is_set():
                try:
                    sock.sendto(b"f" * 32, ("127.0.0.1", self.port))
                except OSError:      # ENOBUFS and friends: a flood may lose some
                    continue
                self.sent += 1
        finally:
            sock.close()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.result()


def test_udp_flood_is_bounded_while_tcp_echo_answers(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    closer(client)
    client.settimeout(5)
    udp_id = server.udp("127.0.0.1", 0)
    flood = Flood(server.address(udp_id)[1])
    try:
        # Nobody polls: the reader stops at the crowd mark instead of
        # queueing the whole flood.
        wait_until(lambda: server.pending_events >= CROWDED, what="flood reached the crowd mark")
        sent = flood.sent
        wait_until(lambda: flood.sent >= sent + 20000, what="20000 more datagrams sent")
        assert server.pending_events <= QUEUE_BOUND
        assert info_row(server, udp_id).reading is False

        # A TCP echo keeps answering while the flood goes on and the
        # poller works through it.
        datagrams = 0
        most_queued = 0
        answered = []

        def echo_client():
            for i in range(20):
                ping = b"ping %02d\n" % i
                client.sendall(ping)
                assert recv_exact(client, len(ping)) == ping
                answered.append(i)

        pinger = gevent.spawn(echo_client)
        while not pinger.dead:
            message = server.poll(0.01)
            most_queued = max(most_queued, server.pending_events)
            if message is None:
                continue
            if message.type == SOCKET_UDP:
                datagrams += 1
            elif message.type == SOCKET_DATA and message.id == socket_id:
                assert server.send(socket_id, message.data)
        pinger.get()
        assert answered == list(range(20))
        assert most_queued <= QUEUE_BOUND
        # the reader resumed once the poller caught up: more than one queue's worth arrived
        wait_until(lambda: _count_udp(server) + datagrams > QUEUE_BOUND,
                   what="datagrams after the throttle")
    finally:
        flood.stop()


def _count_udp(server: SocketServer) -> int:
    count = 0
    while True:
        message = server.poll(0)
        if message is None:
            return count
        count += message.type == SOCKET_UDP


# ---------------------------------------------------------------- other OS threads

def test_bad_arguments_from_a_thread_raise_in_that_thread(server, events, closer, caplog):
    socket_id, client, listen_id = gevent_pair(server, events)
    closer(client)
    udp_id = server.udp("127.0.0.1", 0)

    def misuse():
        raised = []
        for call in (
            lambda: server.send("1", b"x"),
            lambda: server.send(socket_id, 12),
            lambda: server.close(None),
            lambda: server.start(1.5),
            lambda: server.udp_send(udp_id, "127.0.0.1:9", b"x"),
            lambda: server.udp_send(udp_id, ("127.0.0.1", "port"), b"x"),
            lambda: server.udp_send(socket_id, ("127.0.0.1", 9), b"x"),
            lambda: server.udp_connect(socket_id, "127.0.0.1", 9),
            lambda: server.udp_connect(udp_id, None, 9),
            lambda: server.listen(123, 0),
        ):
            try:
                call()
            except (TypeError, ValueError) as err:
                raised.append(type(err))
        return raised

    with caplog.at_level(logging.WARNING, logger="gsocket.server"):
        raised = InThread(misuse).result()
        assert raised == [TypeError, TypeError, TypeError, TypeError, TypeError, TypeError,
                          ValueError, ValueError, ValueError, TypeError]
        # the hub is fine and ran nothing that failed
        assert server.send(socket_id, b"still here")
        assert recv_exact(client, 10) == b"still here"
    assert not [r for r in caplog.records if "another thread failed" in r.getMessage()]


def test_udp_host_names_are_resolved_in_the_calling_thread(server, events, closer):
    receiver = closer(gevent.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM))
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    udp_id = server.udp("127.0.0.1", 0)

    def sender():
        assert server.udp_send(udp_id, ("localhost", port), b"by name") is True
        server.udp_connect(udp_id, "localhost", port)
        assert server.udp_send(udp_id, None, b"by default") is True

    InThread(sender).result()
    got = {receiver.recvfrom(100)[0], receiver.recvfrom(100)[0]}
    assert got == {b"by name", b"by default"}
    assert info_row(server, udp_id).name == f"127.0.0.1:{port}"


def test_sockets_made_from_a_thread_belong_to_the_hub(server, events, closer):
    def maker():
        listen_id = server.listen("localhost", 0)
        port = server.address(listen_id)[1]
        server.start(listen_id)
        connect_id = server.connect("127.0.0.1", port)
        blocked_id = server.block_connect("127.0.0.1", port)
        return listen_id, connect_id, blocked_id

    listen_id, connect_id, blocked_id = InThread(maker).result()
    events.expect(SOCKET_OPEN, listen_id, data="start")
    rows = {row.id: row.type for row in server.info()}
    assert rows[listen_id] == "LISTEN"
    assert rows[connect_id] == rows[blocked_id] == "TCP"
    opened = {events.wait_for(SOCKET_OPEN, where=lambda m: m.id in (connect_id, blocked_id)).id
              for _ in range(2)}
    assert opened == {connect_id, blocked_id}


def test_info_from_a_thread_is_one_consistent_snapshot(server, events):
    stop = threading.Event()
    snapshots = []

    def reader():
        while not stop.is_set() and len(snapshots) < 200:
            snapshots.append(server.info())

    thread = InThread(reader)
    churned = 0
    try:
        while not thread.done.is_set() and churned < 5000:
            ids = [server.udp() for _ in range(5)]
            for socket_id in ids:
                server.close(socket_id)
            churned += 1
            gevent.sleep(0)
    finally:
        stop.set()
        thread.result()
    assert snapshots
    for rows in snapshots:
        ids = [row.id for row in rows]
        assert ids == sorted(set(ids))
        # taken in the hub's thread between two operations: never a row of a
        # socket already closed, never a KeyError half way through
        assert len(ids) <= 5
        assert all(row.type == "UDP" and row.name == "" for row in rows)
    assert InThread(server.info).result() == server.info() == []


def test_release_from_a_thread_and_calls_after_it(leak_check):
    srv = SocketServer()
    udp_id = srv.udp()
    InThread(srv.release).result()
    assert srv.poll().type == SOCKET_EXIT
    assert InThread(srv.send, udp_id, b"x").result() is False
    assert InThread(srv.info).result() == []
    with pytest.raises(RuntimeError):
        InThread(srv.udp).result()


# ---------------------------------------------------------------- bind, release, poll

def test_release_gives_back_the_blocking_flag_of_a_bound_fd(leak_check):
    r, w = os.pipe()
    try:
        assert os.get_blocking(r) is True
        srv = SocketServer()
        try:
            bind_id = srv.bind(r)
            Events(srv).expect(SOCKET_OPEN, bind_id, data="binding")
            assert os.get_blocking(r) is False
        finally:
            srv.release()
        assert os.get_blocking(r) is True
        os.set_blocking(w, False)
        srv = SocketServer()
        try:
            bind_id = srv.bind(w)
            srv.close(bind_id)
            assert os.get_blocking(w) is False      # it was non-blocking before: left so
        finally:
            srv.release()
    finally:
        os.close(r)
        os.close(w)


def test_poll_after_release_returns_at_once(leak_check):
    srv = SocketServer()
    srv.udp()
    srv.exit()
    waiter = None
    other = SocketServer()
    try:
        waiter = gevent.spawn(other.poll)
        gevent.idle()
        other.release()                        # a blocked poller is let go
        assert waiter.get(timeout=5).type == SOCKET_EXIT
    finally:
        other.release()
    srv.release()
    with gevent.Timeout(5):
        assert srv.poll().type == SOCKET_EXIT
        assert srv.poll(0).type == SOCKET_EXIT
        assert srv.poll(10).type == SOCKET_EXIT
    srv.exit()                                 # after release: nothing queues up
    assert srv.pending_events == 0


def test_release_of_a_paused_socket_with_unread_bytes(leak_check):
    # release() reads at most one bounded chunk per socket: it returns with
    # megabytes unread, and the peer sees the connection end.
    srv = SocketServer()
    ev = Events(srv)
    try:
        socket_id, client, _ = gevent_pair(srv, ev)
        srv.pause(socket_id)
        client.setblocking(False)
        sent = 0
        chunk = b"u" * 65536
        while sent < 64 << 20:
            try:
                sent += client.send(chunk)
            except BlockingIOError:
                break
        assert sent > 128 * 1024
    finally:
        srv.release()
    client.settimeout(5)
    with pytest.raises(OSError):
        while True:
            if not client.recv(65536):
                raise ConnectionResetError("EOF")
    client.close()
    assert SOCKET_CLOSE not in [m.type for m in ev.seen[3:]]


def test_peer_closed_sees_a_fin_behind_unread_bytes(server, events):
    # A paused socket reads nothing: peer_closed() is how its owner learns
    # that the peer went away (the socket pool uses it for abandoned ids).
    socket_id, client, listen_id = gevent_pair(server, events)
    server.pause(socket_id)
    assert server.peer_closed(socket_id) is False
    client.sendall(b"unread" * 1000)
    gevent.sleep(0.02)
    assert server.peer_closed(socket_id) is False      # data alone is no close
    client.close()
    wait_until(lambda: server.peer_closed(socket_id))
    assert info_row(server, socket_id).read == 0        # nothing was read to learn it
    assert server.peer_closed(listen_id) is False       # not a connection
    assert server.peer_closed(987654) is False          # unknown
    server.close(socket_id)
    assert server.peer_closed(socket_id) is False       # gone
