"""Read backpressure (skynet socket.lua BUFFER_LIMIT = 128 KiB): a socket
with more than 128 KiB unread and nobody waiting to read it is paused, so
the peer's sends block; a reader that has to wait resumes it. A peer
streaming 100 MB into a slow reader keeps the process RSS bounded, and every
byte arrives intact (skynet-socket-semantics.md 4.3, scenario 25)."""

from __future__ import annotations

import hashlib
import logging
import random
import socket as stdlib_socket
from typing import Any, Callable, Iterator

import gevent
import pytest

from gsocket import socket as gs


from _peers import Pair, ThreadPeer, row, vm_rss, wait_for  # noqa: E402

pytestmark = pytest.mark.usefixtures("driver")

BUFFER_LIMIT = 128 * 1024
BLOCK = 1 << 20
BASE = random.Random(99).randbytes(BLOCK)


def block(i: int) -> bytes:
    """The i-th MiB of the stream: BASE rotated, so no two blocks match."""
    k = (i * 7919) % BLOCK
    return BASE[k:] + BASE[:k]


def expected(nbytes: int) -> bytes:
    return b"".join(block(i) for i in range((nbytes + BLOCK - 1) // BLOCK))[:nbytes]


class StreamingPeer:
    """An OS-thread peer that connects and sends ``nbytes`` of the block
    stream in 64 KiB sendall calls, counting progress and hashing it all."""

    def __init__(self, port: int, nbytes: int) -> None:
        self.nbytes = nbytes
        self.sent = 0
        self.digest = hashlib.blake2b()
        self.peer = ThreadPeer(port, self._run)

    def _run(self, sock: stdlib_socket.socket) -> str:
        remaining = self.nbytes
        i = 0
        while remaining:
            data = memoryview(block(i))[:remaining]
            i += 1
            self.digest.update(data)
            for offset in range(0, len(data), 65536):
                piece = data[offset:offset + 65536]
                sock.sendall(piece)
                self.sent += len(piece)
            remaining -= len(data)
        sock.shutdown(stdlib_socket.SHUT_WR)
        assert sock.recv(1) == b""   # wait for our close
        return self.digest.hexdigest()


def stalled(peer: StreamingPeer) -> bool:
    before = peer.sent
    gevent.sleep(0.2)
    return peer.sent == before


def accept_streaming_peer(nbytes: int) -> tuple:
    import gevent.queue
    listen_id = gs.listen("127.0.0.1", 0)
    accepted: gevent.queue.Queue = gevent.queue.Queue()
    gs.start(listen_id, lambda socket_id, address: accepted.put(socket_id))
    peer = StreamingPeer(gs.address(listen_id)[1], nbytes)
    socket_id = accepted.get(timeout=5)
    gs.start(socket_id)
    return listen_id, socket_id, peer


def test_unread_data_pauses_socket_and_blocks_the_peer(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="gsocket.socket")
    total = 32 << 20
    listen_id, socket_id, peer = accept_streaming_peer(total)
    # nobody reads: more than 128 KiB unread pauses reading
    wait_for(lambda: not row(socket_id).reading)
    unread = row(socket_id).read
    assert BUFFER_LIMIT < unread < 4 << 20
    # the peer's send blocks once the kernel buffers are full, and we read
    # nothing more while nobody reads
    wait_for(lambda: stalled(peer), timeout=10, step=0)
    gevent.sleep(0.2)
    assert peer.sent < total and not peer.peer.done.is_set()
    assert row(socket_id).read == unread
    assert not row(socket_id).reading
    assert any("pause" in r.getMessage().lower() for r in caplog.records)
    # reading: the first MiB, exactly, in order
    first = gs.read(socket_id, BLOCK, timeout=10)
    assert first == block(0)
    # later reads have to wait, which resumes the socket: they get the rest,
    # in order (far more than was buffered when it paused)
    digest = hashlib.blake2b(first)
    received = len(first)
    while received < total:
        data = gs.read(socket_id, min(3 * BLOCK + 17, total - received), timeout=10)
        assert data is not None
        digest.update(data)
        received += len(data)
    assert gs.read(socket_id, timeout=10) is None     # the peer half-closed
    gs.close(socket_id)
    assert peer.peer.result() == digest.hexdigest()
    gs.close(listen_id)


def test_waiting_reader_resumes_a_paused_socket(pair_factory: Callable[[], Pair]) -> None:
    p = pair_factory()
    data = random.Random(5).randbytes(3_000_000)
    sender = gevent.spawn(p.client.sendall, data)
    wait_for(lambda: not row(p.id).reading)
    gevent.sleep(0.05)
    assert not sender.ready()            # blocked: we stopped reading
    read_so_far = row(p.id).read
    # read() returns only what is buffered (no resume needed for that)...
    head = gs.read(p.id)
    assert head == data[:len(head)] and len(head) == read_so_far
    # ...the next read has to wait, and waiting resumes the socket
    rest = gs.read(p.id, len(data) - len(head), timeout=10)
    assert head + rest == data
    sender.get(timeout=5)
    # a reader waiting on an idle socket keeps it reading
    waiting = gevent.spawn(gs.read, p.id, 4)
    gevent.sleep(0.02)
    assert row(p.id).reading is True
    p.client.sendall(b"tail")
    assert waiting.get(timeout=5) == b"tail"


def test_paused_socket_resumes_for_readline(pair_factory: Callable[[], Pair]) -> None:
    p = pair_factory()
    body = b"x" * 3_000_000
    sender = gevent.spawn(p.client.sendall, body + b"\nnext line\n")
    wait_for(lambda: not row(p.id).reading)
    assert gs.readline(p.id, timeout=10) == body
    assert gs.readline(p.id, timeout=10) == b"next line"
    sender.get(timeout=5)


def test_100mb_into_a_slow_reader_keeps_rss_bounded() -> None:
    total = 100 * BLOCK
    listen_id, socket_id, peer = accept_streaming_peer(total)
    gevent.sleep(0.05)
    baseline = vm_rss()
    peak = baseline
    digest = hashlib.blake2b()
    received = 0
    reads = 0
    sizes = [65536, 1000, 131072, 7, 250_000]
    while received < total:
        data = gs.read(socket_id, min(sizes[reads % len(sizes)], total - received), timeout=10)
        assert data is not None
        digest.update(data)
        received += len(data)
        reads += 1
        if reads % 16 == 0:
            gevent.sleep(0.001)       # a slow reader: the sender is far ahead
            peak = max(peak, vm_rss())
    assert gs.read(socket_id, timeout=10) is None
    gs.close(socket_id)
    assert peer.peer.result() == digest.hexdigest()
    assert received == total
    assert peak - baseline < 16 << 20, f"RSS grew by {(peak - baseline) >> 20} MiB"
    gs.close(listen_id)


@pytest.fixture
def pair_factory(driver: Any) -> Iterator[Callable[[], Pair]]:
    """Pairs whose client socket has a small send buffer (no autotuning), so
    that a few MB are more than the kernels can absorb."""
    import gevent.queue
    import gevent.socket
    clients = []

    def make() -> Pair:
        listen_id = gs.listen("127.0.0.1", 0)
        accepted: gevent.queue.Queue = gevent.queue.Queue()
        gs.start(listen_id, lambda socket_id, address: accepted.put((socket_id, address)))
        client = gevent.socket.socket()
        clients.append(client)
        client.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, 65536)
        client.connect(gs.address(listen_id))
        socket_id, address = accepted.get(timeout=5)
        gs.start(socket_id)
        return Pair(listen_id, socket_id, client, address)

    yield make
    for client in clients:
        client.close()
