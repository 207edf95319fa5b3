"""SocketServer writes: data types, direct writes, ordering, high/low
priority, a partly written low buffer finishing first, WARNING thresholds
and the drained WARNING, slow readers, caller buffers changed after send."""

from __future__ import annotations

import array
import math
import time

import gevent
import pytest

from gsocket.events import SOCKET_CLOSE, SOCKET_WARNING

pytest_plugins = ["helpers"]                # fixtures: events, closer

from helpers import (  # noqa: E402
    InThread, gevent_pair, info_row, listen_started, pattern, recv_exact, recv_to_eof,
    runs, thread_pair, wait_until,
)


SMALL_RCVBUF = 16 * 1024
KIB = 1024
MIB = 1024 * 1024


def fill_kernel(server, socket_id, chunk=b"A" * 65536, minimum=256 * KIB):
    """Send high-priority chunks to a peer that does not read until at least
    ``minimum`` bytes wait in our queue; returns how many bytes were sent."""
    total = 0
    while info_row(server, socket_id).wbuffer < minimum:
        assert server.send(socket_id, chunk) is True
        total += len(chunk)
        assert total < 64 * MIB
    return total


def warnings(messages, socket_id):
    return [m.ud for m in messages if m.type == SOCKET_WARNING and m.id == socket_id]


def settle(server, socket_id, quiet=0.1, timeout=10.0):
    """Wait until the socket's written-byte counter stops moving."""
    deadline = gevent.get_hub().loop.now() + timeout
    last = -1
    while True:
        now = info_row(server, socket_id).write
        if now == last:
            return now
        assert gevent.get_hub().loop.now() < deadline, "writes never settled"
        last = now
        gevent.sleep(quiet)


# ---------------------------------------------------------------- data types

def test_every_data_type_is_sent_as_bytes(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    closer(client)
    pieces = [
        (b"bytes|", b"bytes|"),
        (bytearray(b"bytearray|"), b"bytearray|"),
        (memoryview(b"xmemoryview|")[1:], b"memoryview|"),
        ("h\u00e9llo|", "h\u00e9llo|".encode("utf-8")),
        ([b"li", bytearray(b"st"), memoryview(b"|of"), "|parts|"], b"list|of|parts|"),
        ((b"tu", "ple|"), b"tuple|"),
        (memoryview(array.array("H", [0x4142, 0x4344])),
         array.array("H", [0x4142, 0x4344]).tobytes()),
        (memoryview(b"n.o.n.c.o.n.t.i.g.|")[::2], b"noncontig|"),
        (b"", b""),
        ([], b""),
    ]
    for data, _ in pieces:
        assert server.send(socket_id, data) is True
    for data, _ in pieces:
        assert server.send_lowpriority(socket_id, data) is True
    want = b"".join(w for _, w in pieces) * 2
    client.settimeout(5)
    assert recv_exact(client, len(want)) == want
    assert info_row(server, socket_id).write == len(want)
    server.close(socket_id)
    assert recv_to_eof(client) == b""


def test_odd_memoryviews_keep_byte_accounting_under_backpressure(server, events, closer):
    # Queued (not direct) writes of memoryviews whose len() counts items or
    # whose memory is not contiguous: every byte must still be delivered
    # and the close must complete (pending-byte accounting stays exact).
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    sent = fill_kernel(server, socket_id)
    items = array.array("I", range(50000))
    grid = memoryview(bytes(range(256)) * 64).cast("B", (64, 256))
    server.send(socket_id, memoryview(items))
    server.send(socket_id, memoryview(b"0123456789" * 1000)[::3])
    server.send_lowpriority(socket_id, [memoryview(items)[10:20], grid])
    want = (items.tobytes() + (b"0123456789" * 1000)[::3]
            + items[10:20].tobytes() + grid.tobytes())
    server.close(socket_id)
    received = InThread(recv_to_eof, client).result(20)
    assert len(received) == sent + len(want)
    assert received[sent:] == want
    wait_until(lambda: info_row(server, socket_id) is None, what="fd closed after flush")


def test_list_of_more_parts_than_iov_max(server, events, closer):
    # sendmsg takes at most IOV_MAX (1024) buffers: longer lists must still
    # go out whole, on the direct path and from the queue.
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    direct = [b"%05d" % i for i in range(3000)]
    assert server.send(socket_id, direct) is True
    assert events.quiet(0.05) == []                       # no ERROR, no CLOSE
    sent = fill_kernel(server, socket_id)
    queued = [b"%05d" % i for i in range(3000, 7000)]
    assert server.send_lowpriority(socket_id, queued) is True
    server.close(socket_id)
    received = InThread(recv_to_eof, client).result(20)
    assert received == b"".join(direct) + b"A" * sent + b"".join(queued)


def test_caller_may_reuse_its_buffer_after_send(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    # direct path with a leftover: one big bytearray
    big = bytearray(pattern(10, 8 * MIB))
    original_big = bytes(big)
    assert server.send(socket_id, big) is True
    assert info_row(server, socket_id).wbuffer > 0
    big[:] = b"\0" * len(big)
    # queued path: bytearray, memoryview of a bytearray, list items
    small = bytearray(b"queued bytearray|")
    view_target = bytearray(b"queued view|")
    part = bytearray(b"list part|")
    server.send(socket_id, small)
    server.send(socket_id, memoryview(view_target))
    server.send_lowpriority(socket_id, [part, b"end"])
    for buf in (small, view_target, part):
        buf[:] = b"#" * len(buf)
    server.close(socket_id)
    received = InThread(recv_to_eof, client).result(20)
    assert received == original_big + b"queued bytearray|queued view|list part|end"


def test_bad_send_data_raises_type_error(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    closer(client)
    for bad in (None, 12, 1.5, object(), {"a": 1}, [b"ok", 3], [None], array.array("B", b"x")):
        with pytest.raises(TypeError):
            server.send(socket_id, bad)
        with pytest.raises(TypeError):
            server.send_lowpriority(socket_id, bad)
    # nothing of the bad calls went out, the socket still works
    server.send(socket_id, b"fine")
    client.settimeout(5)
    assert recv_exact(client, 4) == b"fine"


# ---------------------------------------------------------------- order and priority

def test_many_small_sends_arrive_in_call_order(server, events, closer):
    # While nothing is queued every send is a direct write, high or low
    # priority alike: the stream is exactly the call order. (~15 KB into a
    # 1 MiB receive buffer: nothing is ever queued, checked after each send.)
    socket_id, client, _ = thread_pair(server, events, rcvbuf=1 << 20)
    closer(client)
    reader = InThread(recv_to_eof, client)
    expected = []
    for i in range(3000):
        piece = b"%d," % i
        expected.append(piece)
        send = server.send if i % 3 else server.send_lowpriority
        assert send(socket_id, piece)
        assert info_row(server, socket_id).wbuffer == 0, f"queued at piece {i}"
        if i % 500 == 0:
            gevent.sleep(0)
    server.close(socket_id)
    assert reader.result(20) == b"".join(expected)


def test_low_priority_with_empty_queues_is_written_directly(server, events, closer):
    socket_id, client, _ = gevent_pair(server, events)
    closer(client)
    assert server.send(socket_id, b"1") is True
    assert server.send_lowpriority(socket_id, b"2") is True
    row = info_row(server, socket_id)
    assert row.wbuffer == 0 and row.write == 2 and row.writing is False
    assert server.send(socket_id, b"3") is True
    client.settimeout(5)
    assert recv_exact(client, 3) == b"123"


def test_high_queue_goes_before_low_queue(server, events, closer):
    # skynet test 31: A (fills the kernel), B high, L1 low, H2 high -> A B H2 L1
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    a_len = fill_kernel(server, socket_id)
    server.send(socket_id, b"B" * 1000)
    server.send_lowpriority(socket_id, b"L" * 100000)
    server.send(socket_id, b"H" * 1000)
    server.close(socket_id)
    received = InThread(recv_to_eof, client).result(20)
    assert runs(received) == [(ord("A"), a_len), (ord("B"), 1000), (ord("H"), 1000),
                              (ord("L"), 100000)]


def test_low_priority_behind_a_direct_write_leftover(server, events, closer):
    # The leftover of a direct write is high priority; a low send queued
    # behind it is overtaken by a later high send: A, H2, L1.
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    big = b"A" * (16 * MIB)
    server.send(socket_id, big)
    assert info_row(server, socket_id).wbuffer > 0
    server.send_lowpriority(socket_id, b"L" * 5000)
    server.send(socket_id, b"H" * 5000)
    server.close(socket_id)
    received = InThread(recv_to_eof, client).result(20)
    assert runs(received) == [(ord("A"), len(big)), (ord("H"), 5000), (ord("L"), 5000)]


def test_partly_written_low_buffer_finishes_before_later_high(server, events, closer):
    # skynet test 32: once a low-priority buffer has started to go out, a
    # later high-priority send must not split it.
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    a_len = fill_kernel(server, socket_id)
    low = b"L" * (12 * MIB)
    server.send_lowpriority(socket_id, low)
    # the peer reads all of A; the writer then starts on the low buffer
    reader = InThread(recv_exact, client, a_len)
    assert reader.result(20) == b"A" * a_len
    written = settle(server, socket_id)
    assert a_len < written < a_len + len(low), "the low buffer must be partly written"
    server.send(socket_id, b"H" * 3000)
    server.close(socket_id)
    rest = InThread(recv_to_eof, client).result(20)
    assert runs(rest) == [(ord("L"), len(low)), (ord("H"), 3000)]


def test_send_to_listener_or_unknown_id_is_false(server, events):
    listen_id, _ = listen_started(server, events)
    assert server.send(listen_id, b"x") is False
    assert server.send_lowpriority(listen_id, b"x") is False
    assert server.send(424242, b"x") is False
    assert server.send_lowpriority(424242, b"x") is False
    assert server.send(-1, b"x") is False


# ---------------------------------------------------------------- slow reader, info

def test_slow_reader_gets_everything_and_queue_drains(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    payload = pattern(11, 16 * MIB)
    assert server.send(socket_id, payload)
    row = info_row(server, socket_id)
    assert row.wbuffer > 0 and row.writing is True

    def slow_reader():
        parts = []
        got = 0
        while got < len(payload):
            chunk = client.recv(64 * KIB)
            assert chunk
            parts.append(chunk)
            got += len(chunk)
            if len(parts) % 16 == 0:
                time.sleep(0.002)      # a real OS thread: a plain sleep
        return b"".join(parts)

    assert InThread(slow_reader).result(25) == payload
    wait_until(lambda: info_row(server, socket_id).wbuffer == 0, what="queue drained")
    row = info_row(server, socket_id)
    assert row.write == len(payload) and row.writing is False and row.wtime > 0
    assert row.type == "TCP"


# ---------------------------------------------------------------- WARNING

def test_warning_once_per_doubling_and_drained(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    chunk = pattern(12, 64 * KIB)
    for _ in range(320):                       # 20 MiB, no yield in between
        assert server.send(socket_id, chunk)
    pending_kib = info_row(server, socket_id).wbuffer / KIB
    assert pending_kib > 8 * 1024, "expected more than 8 MiB queued"
    got = warnings(events.quiet(0.1), socket_id)
    thresholds = [1024 << k for k in range(20) if (1024 << k) <= pending_kib]
    assert len(got) == len(thresholds), (got, pending_kib)     # not one per write
    for ud, threshold in zip(got, thresholds):
        assert threshold <= ud <= threshold + 64

    received = InThread(recv_exact, client, 320 * len(chunk)).result(25)
    assert received == chunk * 320
    drained = events.wait_for(SOCKET_WARNING, socket_id)
    assert drained.ud == 0
    assert warnings(events.quiet(0.1), socket_id) == []

    # a second burst starts again at the 1 MiB threshold
    for _ in range(160):
        server.send(socket_id, chunk)
    assert info_row(server, socket_id).wbuffer > MIB
    again = warnings(events.quiet(0.1), socket_id)
    assert again and 1024 <= again[0] <= 1024 + 64
    assert InThread(recv_exact, client, 160 * len(chunk)).result(25) == chunk * 160
    assert events.wait_for(SOCKET_WARNING, socket_id).ud == 0


def test_warning_counts_the_leftover_of_one_direct_write(server, events, closer):
    # Deliberate difference 1: one huge send to a slow peer warns by itself.
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    payload = pattern(13, 12 * MIB)
    assert server.send(socket_id, payload)
    pending = info_row(server, socket_id).wbuffer
    assert pending > MIB
    message = server.poll(0)
    assert message is not None and message.type == SOCKET_WARNING
    assert message.id == socket_id and message.ud == math.ceil(pending / KIB)
    assert InThread(recv_exact, client, len(payload)).result(25) == payload
    events.expect(SOCKET_WARNING, socket_id, ud=0)
    server.close(socket_id)
    events.expect(SOCKET_CLOSE, socket_id)


def test_no_warning_below_one_mib(server, events, closer):
    socket_id, client, _ = thread_pair(server, events, rcvbuf=SMALL_RCVBUF)
    closer(client)
    sent = fill_kernel(server, socket_id, minimum=512 * KIB)
    assert info_row(server, socket_id).wbuffer < MIB
    assert warnings(events.quiet(0.1), socket_id) == []
    assert InThread(recv_exact, client, sent).result(20) == b"A" * sent
    wait_until(lambda: info_row(server, socket_id).wbuffer == 0, what="drained")
    assert warnings(events.quiet(0.1), socket_id) == []       # no "drained" either
