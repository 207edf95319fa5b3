"""SocketServer close semantics: graceful close, shutdown, peer half-close,
peer reset (RST) mid-write and while reading, write errors, exactly one
CLOSE per socket. Peers are stdlib sockets in OS threads where timing
independence matters."""

from __future__ import annotations

import socket as stdlib_socket

import gevent
import gevent.socket
import pytest

from gsocket.events import (
    SOCKET_CLOSE, SOCKET_DATA, SOCKET_ERROR, SOCKET_OPEN, SOCKET_WARNING,
)

pytest_plugins = ["helpers"]                # fixtures: events, closer

from helpers import (  # noqa: E402
    InThread, gevent_pair, info_row, pattern, recv_exact, recv_to_end, recv_to_eof,
    set_linger_zero, thread_pair, wait_until,
)


#: Peer receive buffer for "slow reader" tests: keeps the kernel from
#: absorbing everything we send, so our queue really fills.
SMALL_RCVBUF = 16 * 1024


def closes(events, socket_id):
    return [m for m in events.of(socket_id) if m.type == SOCKET_CLOSE]


def queue_until_pending(server, socket_id, chunk, minimum, limit=64 << 20):
    """send chunk after chunk until at least ``minimum`` bytes are queued
    (the peer is not reading); returns everything sent."""
    sent = []
    total = 0
    while True:
        assert server.send(socket_id, chunk) is True
        sent.append(chunk)
        total += len(chunk)
        if info_row(server, socket_id).wbuffer >= minimum:
            return b"".join(sent)
        assert total < limit, "the kernel absorbed everything"


# ---------------------------------------------------------------- close

def test_close_idle_socket_reports_close_once(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    closer(client)
    server.close(socket_id)
    # reported at once: no need to wait for the loop
    message = server.poll(0)
    assert message is not None and message.type == SOCKET_CLOSE and message.id == socket_id
    assert message.ud == 0 and message.data is None
    events.seen.append(message)
    client.settimeout(5)
    assert client.recv(10) == b""                       # FIN
    server.close(socket_id)
    server.shutdown(socket_id)
    assert server.send(socket_id, b"x") is False
    assert server.send_lowpriority(socket_id, b"x") is False
    assert info_row(server, socket_id) is None
    events.assert_none(0.1)
    assert len(closes(events, socket_id)) == 1


def test_close_flushes_every_queued_byte_then_fin(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    payload = pattern(3, 10 << 20)
    assert server.send(socket_id, payload) is True
    assert info_row(server, socket_id).wbuffer > 0       # the peer is not reading
    server.close(socket_id)
    # CLOSE comes first, before a single queued byte has drained
    first = [m for m in events.quiet(0.05) if m.id == socket_id and m.type != SOCKET_WARNING]
    assert [m.type for m in first] == [SOCKET_CLOSE]
    assert server.send(socket_id, b"late") is False
    assert server.send_lowpriority(socket_id, b"late") is False
    row = info_row(server, socket_id)
    assert row is not None and row.type == "CLOSING" and row.wbuffer > 0

    reader = InThread(recv_to_eof, client)
    received = reader.result(timeout=20)
    assert len(received) == len(payload)
    assert received == payload                           # nothing lost, no "late"
    wait_until(lambda: info_row(server, socket_id) is None, what="fd closed after flush")
    later = events.quiet(0.1)
    assert not [m for m in later if m.id == socket_id and m.type != SOCKET_WARNING]
    assert len(closes(events, socket_id)) == 1


def test_close_with_pending_data_reports_no_event_after_close(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    # big enough to raise a WARNING: its "drained" WARNING must not follow CLOSE
    payload = pattern(4, 6 << 20)
    server.send(socket_id, payload)
    events.wait_for(SOCKET_WARNING, socket_id)
    server.close(socket_id)
    events.expect(SOCKET_CLOSE, socket_id)
    assert InThread(recv_to_eof, client).result(20) == payload
    wait_until(lambda: info_row(server, socket_id) is None, what="fd closed")
    events.assert_none(0.1)


def test_close_discards_incoming_data(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    queue_until_pending(server, socket_id, b"q" * 65536, 1 << 20)
    server.close(socket_id)
    events.wait_for(SOCKET_CLOSE, socket_id)
    client.sendall(b"ignored after close")
    assert not [m for m in events.quiet(0.2) if m.type == SOCKET_DATA]


def test_close_of_unstarted_accepted_socket(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events, start=False)
    closer(client)
    server.close(socket_id)
    events.expect(SOCKET_CLOSE, socket_id)
    client.settimeout(5)
    assert client.recv(1) == b""
    events.assert_none(0.1)


def test_close_while_connecting_flushes_and_never_opens(server, events, closer):
    lsock = closer(gevent.socket.socket())
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    socket_id = server.connect("127.0.0.1", lsock.getsockname()[1])
    assert server.send(socket_id, b"queued while connecting") is True
    server.close(socket_id)
    events.expect(SOCKET_CLOSE, socket_id)
    conn, _ = lsock.accept()
    closer(conn)
    conn.settimeout(5)
    assert recv_to_eof(conn) == b"queued while connecting"
    wait_until(lambda: info_row(server, socket_id) is None, what="fd closed")
    # CLOSE was the last word: no OPEN after it
    events.assert_none(0.1)
    assert [m.type for m in events.of(socket_id)] == [SOCKET_CLOSE]


def test_close_while_connecting_without_data(server, events, closer):
    lsock = closer(gevent.socket.socket())
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    socket_id = server.connect("127.0.0.1", lsock.getsockname()[1])
    server.close(socket_id)
    events.expect(SOCKET_CLOSE, socket_id)
    assert info_row(server, socket_id) is None
    events.assert_none(0.1)


# ---------------------------------------------------------------- shutdown

def test_shutdown_drops_queued_bytes(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    payload = pattern(5, 32 << 20)
    assert server.send(socket_id, payload) is True
    assert info_row(server, socket_id).wbuffer > 0
    server.shutdown(socket_id)
    at_once = events.quiet(0)                            # without running the loop
    assert [m.type for m in at_once if m.id == socket_id and m.type != SOCKET_WARNING] \
        == [SOCKET_CLOSE]
    assert info_row(server, socket_id) is None          # closed now, not later
    assert server.send(socket_id, b"x") is False
    received, _ = InThread(recv_to_end, client).result(20)
    assert len(received) < len(payload)
    assert received == payload[:len(received)]          # a prefix, in order
    server.shutdown(socket_id)
    server.close(socket_id)
    events.assert_none(0.1)
    assert len(closes(events, socket_id)) == 1


def test_shutdown_after_graceful_close_stops_the_flush(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    sent = queue_until_pending(server, socket_id, pattern(6, 65536), 4 << 20)
    server.close(socket_id)
    server.shutdown(socket_id)
    assert info_row(server, socket_id) is None
    received, _ = InThread(recv_to_end, client).result(20)
    assert len(received) < len(sent) and received == sent[:len(received)]
    events.quiet(0.1)
    assert len(closes(events, socket_id)) == 1


# ---------------------------------------------------------------- peer closes

def test_peer_half_close_then_we_answer_and_close(server, events, closer):
    socket_id, client, _ = thread_pair(server, events)
    closer(client)
    client.sendall(b"req")
    client.shutdown(stdlib_socket.SHUT_WR)
    assert events.data(socket_id, 3) == b"req"
    events.expect(SOCKET_CLOSE, socket_id)
    row = info_row(server, socket_id)
    assert row is not None and row.type == "CLOSING"     # fd kept: still writable
    server.start(socket_id)
    events.expect(SOCKET_ERROR, socket_id, data="socket closed")
    assert server.send(socket_id, b"resp") is True
    assert recv_exact(client, 4) == b"resp"
    server.close(socket_id)
    assert InThread(recv_to_eof, client).result() == b""
    assert info_row(server, socket_id) is None
    events.assert_none(0.1)
    assert len(closes(events, socket_id)) == 1


def test_peer_half_close_still_flushes_our_queue(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    sent = queue_until_pending(server, socket_id, pattern(7, 65536), 2 << 20)
    client.shutdown(stdlib_socket.SHUT_WR)
    events.wait_for(SOCKET_CLOSE, socket_id)
    row = info_row(server, socket_id)
    assert row.type == "CLOSING" and row.wbuffer > 0
    assert server.send(socket_id, b"tail") is True       # still writable
    server.close(socket_id)                              # flush, then close
    received = InThread(recv_to_eof, client).result(20)
    assert received == sent + b"tail"
    wait_until(lambda: info_row(server, socket_id) is None, what="fd closed")
    events.quiet(0.1)
    assert len(closes(events, socket_id)) == 1
    assert not events.of(socket_id, SOCKET_ERROR)


def test_peer_close_leaves_fd_until_owner_closes(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    client.close()
    events.expect(SOCKET_CLOSE, socket_id)
    gevent.sleep(0.1)
    assert info_row(server, socket_id).type == "CLOSING"
    server.close(socket_id)
    assert info_row(server, socket_id) is None
    events.assert_none(0.1)


def test_exactly_one_close_whoever_closes_first(server, events, closer):
    # peer first, then close + shutdown
    a, client_a, _ = gevent_pair(server, events)
    client_a.close()
    events.wait_for(SOCKET_CLOSE, a)
    server.close(a)
    server.shutdown(a)
    # we first, then the peer
    b, client_b, _ = gevent_pair(server, events)
    closer(client_b)
    server.shutdown(b)
    client_b.close()
    server.close(b)
    events.quiet(0.2)
    assert len(closes(events, a)) == 1
    assert len(closes(events, b)) == 1


def test_write_to_peer_that_closed_ends_quietly_once(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    client.close()
    events.expect(SOCKET_CLOSE, socket_id)

    def writes_fail():
        return not server.send(socket_id, b"x" * 65536) or None

    # The first write succeeds (the peer answers RST), a later one fails:
    # the socket is closed and freed, and no second CLOSE is reported.
    wait_until(lambda: writes_fail() or gevent.sleep(0.01), what="write error")
    assert info_row(server, socket_id) is None
    events.quiet(0.1)
    assert len(closes(events, socket_id)) == 1


# ---------------------------------------------------------------- resets

def test_peer_reset_mid_write_reports_error_then_one_close(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    queue_until_pending(server, socket_id, pattern(8, 65536), 4 << 20)
    assert info_row(server, socket_id).writing is True

    def reset():
        client.recv(1000)            # read a little, then abort
        set_linger_zero(client)
        client.close()

    InThread(reset).result()
    error = events.wait_for(SOCKET_ERROR, socket_id)
    assert error.data in ("Connection reset by peer", "Broken pipe")
    events.expect(SOCKET_CLOSE, socket_id)
    assert info_row(server, socket_id) is None           # closed, queue freed
    assert server.send(socket_id, b"x") is False
    events.assert_none(0.2)
    kinds = [m.type for m in events.of(socket_id)]
    assert kinds.count(SOCKET_CLOSE) == 1 and kinds.count(SOCKET_ERROR) == 1
    assert kinds.index(SOCKET_ERROR) < kinds.index(SOCKET_CLOSE)


def test_peer_reset_while_reading(server, events, closer):
    socket_id, client, _ = thread_pair(server, events)
    closer(client)
    client.sendall(b"last words")
    assert events.data(socket_id, 10) == b"last words"
    set_linger_zero(client)
    client.close()
    events.expect(SOCKET_ERROR, socket_id, data="Connection reset by peer")
    events.expect(SOCKET_CLOSE, socket_id)
    assert info_row(server, socket_id) is None
    events.assert_none(0.1)


def test_peer_reset_of_unstarted_socket_reported_on_start(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, start=False)
    set_linger_zero(client)
    client.close()
    gevent.sleep(0.05)
    server.start(socket_id)
    events.expect(SOCKET_OPEN, socket_id, data="start")
    events.expect(SOCKET_ERROR, socket_id, data="Connection reset by peer")
    events.expect(SOCKET_CLOSE, socket_id)
    events.assert_none(0.1)


@pytest.mark.parametrize("priority", ["high", "low"])
def test_send_after_close_is_refused_while_flushing(server, events, closer, priority):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    sent = queue_until_pending(server, socket_id, pattern(9, 65536), 1 << 20)
    server.close(socket_id)
    send = server.send if priority == "high" else server.send_lowpriority
    assert send(socket_id, b"NEVER") is False
    received = InThread(recv_to_eof, client).result(20)
    assert received == sent
