"""Slow consumer and fast producer, through the socket API in this process.

* Slow consumer: 200 MB written to a peer that never reads. WARNING comes
  at 1, 2, 4, ... MiB pending; twenty other connections keep doing echo
  round trips meanwhile (their p99 is measured and must stay far from the
  seconds a blocked hub would cost); shutting the id frees the memory.
* Fast producer: a peer thread streams 200 MB into a handler that reads
  slowly (it sleeps between reads): read backpressure keeps RSS bounded and
  every byte arrives intact, in order.

The fast producer runs plain and over TLS (``ssl_context`` on the listener,
a wrapped stdlib peer)."""

from __future__ import annotations

import ctypes
import gc
import socket as stdlib_socket
import ssl
import threading
import time
from typing import Any, List, Optional

import gevent
import gevent.queue
import gevent.socket
import pytest

from gsocket import socket as gs
from _tls_support import make_certs
from _peers import vm_rss

pytestmark = [pytest.mark.stress, pytest.mark.usefixtures("driver"),
              pytest.mark.gsocket(timeout=90), pytest.mark.timeout(120)]

TOTAL = 200 * 1000 * 1000
CHUNK = 256 * 1024
MIB = 1024 * 1024
CYCLE = 251
#: one CHUNK of the pattern from any offset: PATTERN[offset:offset + CHUNK]
PATTERN = bytes(i % CYCLE for i in range(CHUNK + CYCLE))
WAIT = 20.0
#: generous: a hub blocked by the slow peer would cost seconds
P99_LIMIT = 0.25


class Listener:
    def __init__(self, ssl_context: Any = None) -> None:
        self.listen_id = gs.listen("127.0.0.1", 0, ssl_context=ssl_context)
        self.port = gs.address(self.listen_id)[1]
        self.accepted: "gevent.queue.Queue[int]" = gevent.queue.Queue()
        gs.start(self.listen_id, self._accept)

    def _accept(self, socket_id: int, peer: str) -> None:
        gs.start(socket_id)
        self.accepted.put(socket_id)

    def pair(self, rcvbuf: int = 0) -> "tuple[gevent.socket.socket, int]":
        sock = gevent.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", self.port))
        return sock, self.accepted.get(timeout=WAIT)


def echo(socket_id: int) -> None:
    while (data := gs.read(socket_id)) is not None:
        gs.write(socket_id, data)
    gs.close(socket_id)


def pingpong(sock: gevent.socket.socket, rounds: int, latencies: List[float]) -> None:
    for n in range(rounds):
        message = b"%08d" % n
        started = time.perf_counter()
        sock.sendall(message)
        got = b""
        while len(got) < len(message):
            chunk = sock.recv(64)
            assert chunk
            got += chunk
        latencies.append(time.perf_counter() - started)
        assert got == message
        gevent.sleep(0.001)


def p99(latencies: List[float]) -> float:
    ordered = sorted(latencies)
    return ordered[int(len(ordered) * 0.99)]


def test_slow_consumer_warnings_latency_and_memory() -> None:
    listener = Listener()
    others = [listener.pair() for _ in range(20)]
    echoes = [gevent.spawn(echo, conn) for _, conn in others]
    baseline: List[float] = []
    gevent.joinall([gevent.spawn(pingpong, sock, 50, baseline) for sock, _ in others], raise_error=True)

    slow, conn = listener.pair(rcvbuf=4096)
    warnings: List[int] = []
    gs.warning(conn, lambda socket_id, kib: warnings.append(kib))
    gc.collect()
    rss_before = vm_rss()
    congested: List[float] = []
    talkers = [gevent.spawn(pingpong, sock, 100, congested) for sock, _ in others]
    written = 0
    index = 0
    while written < TOTAL:
        offset = index % CYCLE
        chunk = bytearray(PATTERN[offset:offset + CHUNK])   # a new buffer each time: real memory
        assert gs.write(conn, chunk) is True
        written += len(chunk)
        index += 1
        if index % 4 == 0:
            gevent.sleep(0)                                  # let the echo connections run
    gevent.joinall(talkers, raise_error=True)
    # and with all 200 MB queued for the slow peer
    full: List[float] = []
    gevent.joinall([gevent.spawn(pingpong, sock, 50, full) for sock, _ in others], raise_error=True)
    rss_full = vm_rss()
    # 1, 2, 4, ... MiB: one WARNING per doubling, each within a write of its threshold
    assert len(warnings) >= 7, warnings
    for step, kib in enumerate(warnings):
        threshold = 1024 << step
        assert threshold <= kib < threshold + CHUNK // 1024 + 1, (step, warnings)
    assert (1024 << (len(warnings) - 1)) <= TOTAL // 1024 < (1024 << len(warnings)) + 1024, warnings
    # the queue really is held (RSS cannot tell: earlier tests may have left
    # freed heap that these buffers reuse)
    queued = next(row.wbuffer for row in gs.netstat() if row.id == conn)
    assert queued > TOTAL - 16 * MIB, queued

    gs.shutdown(conn)                                        # give up on the slow peer
    slow.close()
    del chunk
    gc.collect()
    gevent.sleep(0.1)
    rss_after = vm_rss()
    # every queued buffer is gone; the allocator may hold on to the pages
    # until asked (glibc keeps freed heap), so ask before measuring
    assert not [o for o in gc.get_objects() if isinstance(o, bytearray) and len(o) == CHUNK]
    trim_heap()
    rss_after = vm_rss()
    assert rss_after - rss_before < 48 * MIB, f"{(rss_after - rss_before) / 1e6:.0f} MB kept"

    base_p99, congested_p99, full_p99 = p99(baseline), p99(congested), p99(full)
    assert full_p99 < P99_LIMIT, f"p99 {full_p99 * 1e3:.1f} ms with 200 MB queued"
    assert congested_p99 < 4 * P99_LIMIT, f"p99 {congested_p99 * 1e3:.1f} ms while writing 200 MB"
    for sock, _ in others:
        sock.close()
    gevent.joinall(echoes, timeout=WAIT)
    gs.close(listener.listen_id)
    print(f"slow consumer: warnings={warnings} rss_full_mb={(rss_full - rss_before) / 1e6:.0f} "
          f"rss_after_mb={(rss_after - rss_before) / 1e6:.0f} p99_ms base={base_p99 * 1e3:.2f} "
          f"while_writing={congested_p99 * 1e3:.2f} queue_full={full_p99 * 1e3:.2f}")


def trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc's malloc_trim; elsewhere a no-op)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def stream_pattern(port: int, total: int, errors: List[BaseException],
                   client_context: Optional[ssl.SSLContext] = None) -> None:
    try:
        raw = stdlib_socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        sock = raw if client_context is None else client_context.wrap_socket(
            raw, server_hostname="localhost")
        with sock:
            sent = 0
            view = memoryview(PATTERN)
            while sent < total:
                offset = sent % CYCLE
                size = min(CHUNK, total - sent)
                sock.sendall(view[offset:offset + size])
                sent += size
            if client_context is None:
                sock.shutdown(stdlib_socket.SHUT_WR)
                sock.recv(1)
            else:
                sock.unwrap()                     # close_notify both ways
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_fast_producer_into_a_slow_reader_bounded_and_intact(transport: str, tmp_path) -> None:
    server_context = client_context = None
    if transport == "tls":
        certs = make_certs(tmp_path)
        server_context, client_context = certs.server_context(), certs.client_context()
    listener = Listener(server_context)
    errors: List[BaseException] = []
    gc.collect()
    rss_before = vm_rss()
    peak = [rss_before]

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], vm_rss())
            gevent.sleep(0.02)

    sampler = gevent.spawn(sample)
    producer = threading.Thread(target=stream_pattern, daemon=True,
                                args=(listener.port, TOTAL, errors, client_context))
    producer.start()
    conn = listener.accepted.get(timeout=WAIT)
    received = 0
    reads = 0
    while True:
        data = gs.read(conn, 65536) or gs.readall(conn)
        if not data:
            break
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            piece = view[start:start + CHUNK]
            position = (received + start) % CYCLE
            assert piece == PATTERN[position:position + len(piece)], f"corrupt at {received + start}"
        received += len(data)
        reads += 1
        if reads % 8 == 0:
            gevent.sleep(0.001)                              # the slow part
    gs.close(conn)
    producer.join(WAIT)
    sampler.kill()
    assert not errors, errors
    assert received == TOTAL
    grown = peak[0] - rss_before
    assert grown < 96 * MIB, f"RSS peaked {grown / 1e6:.0f} MB over the start"
    gs.close(listener.listen_id)
    print(f"fast producer: {received} bytes in {reads} reads, rss_peak_growth_mb={grown / 1e6:.1f}")
