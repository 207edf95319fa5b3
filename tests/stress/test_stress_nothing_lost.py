"""Nothing lost, as a property: random write sequences through the socket
API (0..1 MiB in all, ``write`` and ``lwrite``, every data type, yields to
the hub in between) ended by ``close`` or ``shutdown_write`` at a random
point, followed by more writes that must be refused, are checked byte for
byte at the peer, over TCP and unix sockets.

Every write carries a header (priority, index, length), so the peer can
check that the stream is an interleaving of whole writes in which each
priority keeps its own order (API.md: a partly written buffer is finished
before anything else), that every write made before the close arrived,
and that nothing after it did.

The transports come from ``_stress.TRANSPORTS``: TCP, unix sockets, and TLS
(a certificate made at test time; the peer a gevent ssl socket)."""

from __future__ import annotations

import socket as stdlib_socket
import ssl
import struct
from pathlib import Path
from typing import Any, List, Tuple

import gevent
import gevent.queue
import gevent.socket
import gevent.ssl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gsocket.driver
from gsocket import socket as gs
from _stress import TRANSPORTS
from _tls_support import make_certs

pytestmark = [pytest.mark.stress, pytest.mark.usefixtures("driver"),
              pytest.mark.gsocket(timeout=90), pytest.mark.timeout(120)]

HEADER = struct.Struct(">cII")          # b"H" / b"L", index, body length
TOTAL = 1 << 20                         # bytes per sequence, at most
WAIT = 10.0

write_op = st.tuples(st.sampled_from("HL"),
                     st.one_of(st.integers(0, 64), st.integers(0, 64 * 1024), st.integers(0, TOTAL)),
                     st.sampled_from(["bytes", "bytearray", "memoryview", "list"]),
                     st.booleans())     # yield to the hub after it
sequence = st.tuples(st.lists(write_op, max_size=24),
                     st.integers(0, 24),                           # where the end comes
                     st.sampled_from(["close", "shutdown_write"]),
                     st.sampled_from([0, 4096, 65536]),            # the peer's SO_RCVBUF (0: default)
                     st.sampled_from([0.0, 0.0, 0.01, 0.05]))      # the peer starts reading after


def body(kind: str, index: int, size: int) -> bytes:
    seed = (index * 131 + (7 if kind == "H" else 61)) % 251
    return bytes((seed + i) % 251 for i in range(min(size, 251))) * (size // 251 + 1)


def encoded(kind: str, index: int, size: int, form: str) -> Any:
    data = HEADER.pack(kind.encode(), index, size) + body(kind, index, size)[:size]
    if form == "bytearray":
        return bytearray(data)
    if form == "memoryview":
        return memoryview(data)
    if form == "list":
        cut = len(data) // 3
        return [data[:cut], bytearray(data[cut:2 * cut]), memoryview(data[2 * cut:])]
    return data


def check_stream(stream: bytes, written: dict) -> None:
    """``stream`` is an interleaving of the whole writes in ``written``
    (kind -> list of sizes), each kind in order, all of them present."""
    position = 0
    expected_next = {"H": 0, "L": 0}
    while position < len(stream):
        assert len(stream) - position >= HEADER.size, f"torn header at {position}"
        raw_kind, index, size = HEADER.unpack_from(stream, position)
        kind = raw_kind.decode()
        assert kind in written, f"garbage at {position}"
        assert index == expected_next[kind], f"{kind}{index} arrived when {kind}{expected_next[kind]} was due"
        assert size == written[kind][index]
        start = position + HEADER.size
        assert stream[start:start + size] == body(kind, index, size)[:size], f"{kind}{index} corrupted"
        position = start + size
        expected_next[kind] += 1
    assert expected_next == {kind: len(sizes) for kind, sizes in written.items()}, "writes missing"


class Listener:
    """A started listener over ``transport``; accepted ids come out of ``accepted``."""

    def __init__(self, transport: str, tmp: Path) -> None:
        self.transport = transport
        self.client_context = None
        if transport == "unix":
            self.path = str(tmp / "lost.sock")
            self.listen_id = gs.listen(f"unix:{self.path}")
        else:
            ssl_context = None
            if transport == "tls":
                certs = make_certs(tmp)
                ssl_context = certs.server_context()
                self.client_context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                self.client_context.load_verify_locations(certs.ca)
            self.listen_id = gs.listen("127.0.0.1", 0, ssl_context=ssl_context)
            self.port = gs.address(self.listen_id)[1]
        self.accepted: "gevent.queue.Queue[int]" = gevent.queue.Queue()
        gs.start(self.listen_id, self._accept)

    def _accept(self, socket_id: int, peer: str) -> None:
        gs.start(socket_id)
        self.accepted.put(socket_id)

    def peer(self, rcvbuf: int) -> Tuple[gevent.socket.socket, int]:
        family = stdlib_socket.AF_UNIX if self.transport == "unix" else stdlib_socket.AF_INET
        sock = gevent.socket.socket(family, stdlib_socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(WAIT)
        sock.connect(self.path if self.transport == "unix" else ("127.0.0.1", self.port))
        if self.client_context is not None:          # TLS: a clean end is close_notify
            sock = self.client_context.wrap_socket(sock, server_hostname="localhost",
                                                   suppress_ragged_eofs=False)
        socket_id = self.accepted.get(timeout=WAIT)
        # The writes are under test, not a close racing the handshake (a
        # close with nothing queued before the session exists aborts it).
        server = gsocket.driver.current().server
        with gevent.Timeout(WAIT):
            while server.handshaking(socket_id):
                gevent.sleep(0.001)
        return sock, socket_id

    def close(self) -> None:
        gs.close(self.listen_id)


def read_to_eof(sock: gevent.socket.socket, delay: float) -> bytes:
    gevent.sleep(delay)
    chunks: List[bytes] = []
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_random_write_sequences_arrive_byte_for_byte(transport: str, tmp_path: Path) -> None:
    listener = Listener(transport, tmp_path)

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(sequence)
    def run(case: Tuple[list, int, str, int, float]) -> None:
        ops, end_at, ending, rcvbuf, delay = case
        peer, conn = listener.peer(rcvbuf)
        try:
            reader = gevent.spawn(read_to_eof, peer, delay)
            written: dict = {"H": [], "L": []}
            budget = TOTAL
            end_at = min(end_at, len(ops))
            for position in range(len(ops) + 1):
                if position == end_at:
                    (gs.close if ending == "close" else gs.shutdown_write)(conn)
                if position == len(ops):
                    break
                kind, size, form, pause = ops[position]
                size = min(size, budget)
                budget -= size
                send = gs.write if kind == "H" else gs.lwrite
                after_end = position >= end_at
                if size == 0 and not after_end:
                    assert send(conn, b"") is True
                    continue
                accepted = send(conn, encoded(kind, len(written[kind]), size, form))
                if after_end:
                    assert accepted is False, "a write after the end was taken"
                else:
                    assert accepted is True
                    written[kind].append(size)
                if pause:
                    gevent.sleep(0)
            stream = reader.get(timeout=WAIT)
            check_stream(stream, written)
            if ending == "shutdown_write":          # reading goes on after the half-close
                peer.sendall(b"after FIN\n")
                assert gs.readline(conn, timeout=WAIT) == b"after FIN"
                peer.close()
                assert gs.read(conn, timeout=WAIT) is None
            gs.close(conn)
        finally:
            reader.kill()
            peer.close()
            gs.close(conn)

    try:
        run()
    finally:
        listener.close()

