"""gsocket.websocket_protocol, sans I/O, both roles: hypothesis properties.

- arbitrary bytes, and random frames (any opcode, RSV bits, masking, lying
  lengths, close payloads) split at random points, never make feed/events
  raise: the peer's errors come as Failed then Closed, in that order, once;
  what we write back always parses for an independent peer (wsproto);
- a message never holds more than ``max_message`` bytes (``pending``), and
  real memory (tracemalloc) stays bounded for streams of empty, one-byte
  and never-ending fragments;
- fragmented messages split at random points (text split inside UTF-8
  sequences too), with pings between the fragments and the wire cut at
  random, reassemble identically, and every ping gets its pong;
- feeding in chunks gives the same events as feeding everything at once.
"""

from __future__ import annotations

import struct
import tracemalloc
from typing import List, Optional, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, event as note_event, given, settings, strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection, BytesMessage, CloseConnection, Ping, Pong, Request, TextMessage,
)

from gsocket.websocket_protocol import (
    BINARY, TEXT, Closed, Failed, MessageReceived, PingReceived, PongReceived, ProtocolEvent,
    WebSocketError, WebSocketProtocol,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROLES = ("server", "client")

Opcode = int
CONT, TEXT_OP, BINARY_OP, CLOSE_OP, PING_OP, PONG_OP = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def opened(role: str, max_message: int = 1 << 20) -> Tuple[WebSocketProtocol, Connection]:
    """A WebSocketProtocol in ``role`` after an in-memory handshake, and the
    peer's wsproto Connection (to read what the protocol writes)."""
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="example", target="/")))
    assert any(isinstance(e, Request) for e in server.events())
    client.receive_data(server.send(AcceptConnection()))
    assert any(isinstance(e, AcceptConnection) for e in client.events())
    assert client.connection is not None and server.connection is not None
    if role == "server":
        return WebSocketProtocol(server.connection, max_message=max_message), client.connection
    return WebSocketProtocol(client.connection, max_message=max_message), server.connection


def frame(opcode: Opcode, payload: bytes = b"", *, fin: bool = True, mask: Optional[bytes] = None,
          rsv: int = 0, declared: Optional[int] = None, wide: int = 0) -> bytes:
    """One raw frame. ``mask``: a 4-byte key (None: unmasked); ``declared``:
    a length field that may lie; ``wide``: 1/2 forces the 16/64-bit length form."""
    n = len(payload) if declared is None else declared
    head = bytes([(0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0x0F])
    bit = 0x80 if mask is not None else 0
    if wide == 2 or n >= 65536:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    elif wide == 1 or n >= 126:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | n])
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def client_mask(role: str) -> Optional[bytes]:
    """The mask a correct peer of ``role`` uses: clients mask, servers don't."""
    return b"\x37\xfa\x21\x3d" if role == "server" else None


def split_at(data: bytes, cuts: Sequence[int]) -> List[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for point in points:
        chunks.append(data[last:point])
        last = point
    chunks.append(data[last:])
    return chunks


def run(protocol: WebSocketProtocol, chunks: Sequence[bytes], *, drop: bool = False
        ) -> Tuple[List[ProtocolEvent], bytes]:
    """Feed the chunks one at a time (then None with ``drop``), draining the
    events after each; checks ``pending`` against ``max_message`` as it goes.
    Returns the events and everything the protocol wrote."""
    events: List[ProtocolEvent] = []
    out = bytearray()
    for chunk in list(chunks) + ([None] if drop else []):   # type: ignore[list-item]
        events += protocol.receive(chunk)
        out += protocol.take_output()
        assert protocol.pending <= protocol.max_message
    return events, bytes(out)


def check_grammar(events: Sequence[ProtocolEvent], protocol: WebSocketProtocol) -> None:
    """At most one Failed, before the one Closed, which comes last."""
    failed = [i for i, e in enumerate(events) if isinstance(e, Failed)]
    closed = [i for i, e in enumerate(events) if isinstance(e, Closed)]
    assert len(failed) <= 1 and len(closed) <= 1, events
    if closed:
        assert closed[0] == len(events) - 1, events
        assert protocol.closed == events[-1]
        assert not protocol.open
        assert 1000 <= events[-1].code < 5000
    if failed:
        error = events[failed[0]].error
        assert isinstance(error, WebSocketError) and error.code in (1002, 1007, 1009), error
        assert not closed or failed[0] < closed[0]
    for event in events:
        assert isinstance(event, (MessageReceived, PingReceived, PongReceived, Failed, Closed)), event


def plain(events: Sequence[ProtocolEvent]) -> list:
    """Events made comparable: exceptions compare by identity, and the text
    of a failure may name an offset within the chunk (so codes only)."""
    return [("failed", e.error.code) if isinstance(e, Failed) else ("closed", e.code)
            if isinstance(e, Closed) else e for e in events]


def peer_reads(peer: Connection, data: bytes) -> list:
    """What the independent peer (wsproto) makes of our output; asserts it
    parses (a parse failure is a CloseConnection that leaves the state OPEN)."""
    if not data:
        return []
    peer.receive_data(data)
    events = list(peer.events())
    for event in events:
        if isinstance(event, CloseConnection):
            assert peer.state is not ConnectionState.OPEN, f"peer could not parse our output: {event}"
    return events


# ---------------------------------------------------------------------- nothing the peer sends raises

@FAST
@given(role=st.sampled_from(ROLES),
       chunks=st.lists(st.binary(max_size=200), max_size=8),
       drop=st.booleans())
def test_arbitrary_bytes_never_raise(role: str, chunks: List[bytes], drop: bool) -> None:
    protocol, peer = opened(role, max_message=256)
    events, out = run(protocol, chunks, drop=drop)
    check_grammar(events, protocol)
    peer_reads(peer, out)
    if drop:
        assert isinstance(events[-1], Closed) and protocol.done


CLOSE_CODES = st.sampled_from([0, 999, 1000, 1001, 1002, 1004, 1005, 1006, 1007, 1009, 1011,
                               1015, 2999, 3000, 4999, 5000, 65535])


@st.composite
def random_frame(draw: st.DrawFn, role: str) -> bytes:
    """Mostly well-formed frames (so messages, pings and closes are reached)
    and, one time in five, anything: any opcode, RSV bits, the wrong masking,
    a lying or non-minimal length."""
    wild = draw(st.integers(0, 4)) == 0
    opcodes = st.sampled_from([TEXT_OP, BINARY_OP, BINARY_OP, CONT, PING_OP, PONG_OP, CLOSE_OP])
    opcode = draw(st.integers(0, 15) if wild else opcodes)
    payload = draw(st.binary(max_size=150))
    if opcode in (TEXT_OP, CONT) and draw(st.integers(0, 3)) > 0:
        payload = draw(st.text(max_size=60)).encode("utf-8")
    if opcode in (PING_OP, PONG_OP) and not wild:
        payload = payload[:125]
    if opcode == CLOSE_OP and draw(st.integers(0, 3)) > 0:
        payload = struct.pack("!H", draw(CLOSE_CODES)) + draw(st.text(max_size=30)).encode("utf-8")
    mask = client_mask(role)
    if wild and draw(st.booleans()):
        mask = b"\x01\x02\x03\x04" if mask is None else None
    fin = draw(st.booleans()) if wild or opcode in (TEXT_OP, BINARY_OP, CONT) else True
    return frame(opcode, payload, fin=fin or draw(st.booleans()), mask=mask,
                 rsv=draw(st.integers(0, 7)) if wild and draw(st.booleans()) else 0,
                 declared=draw(st.integers(0, 1 << 20)) if wild and draw(st.booleans()) else None,
                 wide=draw(st.sampled_from([0, 1, 2])) if wild else 0)


@settings(FAST, max_examples=300)
@given(data=st.data(), role=st.sampled_from(ROLES), cuts=st.lists(st.integers(0, 1 << 16), max_size=10),
       drop=st.booleans())
def test_random_frames_never_raise_and_chunking_does_not_matter(data: st.DataObject, role: str,
                                                                cuts: List[int], drop: bool) -> None:
    wire = b"".join(data.draw(st.lists(random_frame(role), max_size=12)))
    protocol, peer = opened(role, max_message=300)
    events, out = run(protocol, split_at(wire, cuts), drop=drop)
    check_grammar(events, protocol)
    for name in sorted({type(e).__name__ for e in events}):
        note_event(name)                           # --hypothesis-show-statistics: what was reached
    peer_reads(peer, out)
    whole, _ = run(opened(role, max_message=300)[0], [wire], drop=drop)
    assert plain(events) == plain(whole)
    if protocol.closed is not None:                          # input after the end is ignored
        assert protocol.receive(frame(PING_OP, b"late", mask=client_mask(role))) == []
        assert protocol.take_output() == b""


# ---------------------------------------------------------------------- fragments reassemble

@st.composite
def message(draw: st.DrawFn) -> Tuple[str, bytes]:
    """(kind, UTF-8 or binary payload)."""
    if draw(st.booleans()):
        return TEXT, draw(st.text(max_size=200)).encode("utf-8")
    return BINARY, draw(st.binary(max_size=300))


@st.composite
def fragmented(draw: st.DrawFn, role: str) -> Tuple[List[Tuple[str, bytes]], List[bytes], bytes]:
    """Messages, the ping payloads sent between their fragments, and the
    wire: each message cut at random byte offsets (empty fragments
    included), pings interleaved."""
    mask = client_mask(role)
    messages = draw(st.lists(message(), min_size=1, max_size=4))
    pings: List[bytes] = []
    wire = bytearray()
    for kind, payload in messages:
        cuts = draw(st.lists(st.integers(0, len(payload)), max_size=6))
        pieces = split_at(payload, cuts) if cuts else [payload]
        for i, piece in enumerate(pieces):
            opcode = (TEXT_OP if kind == TEXT else BINARY_OP) if i == 0 else CONT
            wire += frame(opcode, piece, fin=i == len(pieces) - 1, mask=mask)
            if draw(st.integers(0, 3)) == 0:
                ping = draw(st.binary(max_size=125))
                pings.append(ping)
                wire += frame(PING_OP, ping, mask=mask)
    return messages, pings, bytes(wire)


@FAST
@given(data=st.data(), role=st.sampled_from(ROLES), cuts=st.lists(st.integers(0, 1 << 12), max_size=20))
def test_fragmented_messages_reassemble_identically(data: st.DataObject, role: str,
                                                    cuts: List[int]) -> None:
    messages, pings, wire = data.draw(fragmented(role))
    protocol, peer = opened(role)
    events, out = run(protocol, split_at(wire, cuts))
    got = [(e.kind, e.data) for e in events if isinstance(e, MessageReceived)]
    expected = [(kind, payload.decode("utf-8") if kind == TEXT else payload) for kind, payload in messages]
    assert got == expected
    assert all(isinstance(data, str if kind == TEXT else bytes) for kind, data in got)
    assert [e.data for e in events if isinstance(e, PingReceived)] == pings
    assert not any(isinstance(e, (Failed, Closed)) for e in events)
    assert protocol.pending == 0 and protocol.open
    answers = peer_reads(peer, out)
    assert [bytes(e.payload) for e in answers if isinstance(e, Pong)] == pings
    assert len(answers) == len(pings)


def test_byte_at_a_time_reassembly_and_pong() -> None:
    text = "ünïcödé ✓ " * 30
    payload = text.encode("utf-8")
    mask = client_mask("server")
    wire = (frame(TEXT_OP, payload[:7], fin=False, mask=mask) + frame(PING_OP, b"p", mask=mask)
            + frame(CONT, b"", fin=False, mask=mask) + frame(CONT, payload[7:], mask=mask))
    protocol, peer = opened("server")
    events, out = run(protocol, [wire[i:i + 1] for i in range(len(wire))])
    assert events == [PingReceived(b"p"), MessageReceived(text, TEXT)]
    assert [type(e) for e in peer_reads(peer, out)] == [Pong]


@FAST
@given(role=st.sampled_from(ROLES), sizes=st.lists(st.integers(0, 120), min_size=2, max_size=12),
       cuts=st.lists(st.integers(0, 1 << 12), max_size=8))
def test_fragments_over_max_message_close_1009(role: str, sizes: List[int], cuts: List[int]) -> None:
    limit = 200
    mask = client_mask(role)
    wire = b"".join(frame(BINARY_OP if i == 0 else CONT, b"x" * n, fin=i == len(sizes) - 1, mask=mask)
                    for i, n in enumerate(sizes))
    protocol, peer = opened(role, max_message=limit)
    events, out = run(protocol, split_at(wire, cuts))
    messages = [e for e in events if isinstance(e, MessageReceived)]
    if sum(sizes) <= limit:
        assert messages == [MessageReceived(b"x" * sum(sizes), BINARY)] and events == messages
        return
    assert messages == [] and len(events) == 1 and isinstance(events[0], Failed)
    assert events[0].error.code == 1009
    closes = [e for e in peer_reads(peer, out) if isinstance(e, CloseConnection)]
    assert [c.code for c in closes] == [1009]
    assert not protocol.done                      # waits for the peer's close reply
    events, _ = run(protocol, [peer.send(closes[0].response())])
    assert events == [Closed(1009, f"message over {limit} bytes")] and protocol.done


# ---------------------------------------------------------------------- real memory stays bounded

def peak_while_feeding(protocol: WebSocketProtocol, chunks) -> int:
    """Peak memory (tracemalloc, bytes) allocated while feeding the chunks."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for chunk in chunks:
            for event in protocol.receive(chunk):
                assert not isinstance(event, MessageReceived)
            protocol.take_output()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("opcode", [TEXT_OP, BINARY_OP])
def test_endless_empty_fragments_hold_no_memory(opcode: int) -> None:
    mask = client_mask("server")
    protocol, _ = opened("server", max_message=1024)
    protocol.receive(frame(opcode, b"a", fin=False, mask=mask))
    block = frame(CONT, b"", fin=False, mask=mask) * 1000          # 6 kB on the wire
    peak = peak_while_feeding(protocol, (block for _ in range(30)))    # 30 000 fragments
    assert protocol.pending == 1 and protocol.open
    assert peak < 64 * 1024, peak


@pytest.mark.parametrize("opcode,unit", [(TEXT_OP, "é".encode()), (BINARY_OP, b"z")])
def test_tiny_fragments_cost_about_the_message(opcode: int, unit: bytes) -> None:
    limit = 32 * 1024
    mask = client_mask("server")
    protocol, _ = opened("server", max_message=limit)
    protocol.receive(frame(opcode, unit, fin=False, mask=mask))
    block = frame(CONT, unit, fin=False, mask=mask) * 1024
    count = limit // len(unit) // 1024 - 1
    peak = peak_while_feeding(protocol, (block for _ in range(count)))
    assert protocol.pending > limit - 1024 * len(unit) * 2
    assert peak < 2 * limit, peak                 # one byte per byte, plus bytearray slack


def test_huge_declared_frame_is_refused_as_it_streams() -> None:
    limit = 64 * 1024
    mask = client_mask("server")
    protocol, peer = opened("server", max_message=limit)
    header = frame(BINARY_OP, b"", mask=mask, declared=1 << 40)       # a terabyte, declared
    events = protocol.receive(header)
    assert events == []
    chunk = bytes(16 * 1024)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        failed: List[ProtocolEvent] = []
        for _ in range(64):                        # 1 MiB streamed: refused at 64 KiB, rest ignored
            failed += protocol.receive(chunk)
            assert protocol.pending <= limit
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert [type(e) for e in failed] == [Failed] and failed[0].error.code == 1009
    assert peak < 4 * limit, peak
    closes = [e for e in peer_reads(peer, protocol.take_output()) if isinstance(e, CloseConnection)]
    assert [c.code for c in closes] == [1009]


# ---------------------------------------------------------------------- what we send, the peer reads

@FAST
@given(role=st.sampled_from(ROLES), items=st.lists(st.text(max_size=50) | st.binary(max_size=50), max_size=6))
def test_sent_messages_read_back_by_wsproto(role: str, items: list) -> None:
    protocol, peer = opened(role)
    for item in items:
        assert protocol.send(item)
    assert protocol.ping(b"hi")
    got = peer_reads(peer, protocol.take_output())
    assert [(type(e), e.data) for e in got[:-1]] == [
        (TextMessage if isinstance(i, str) else BytesMessage, i) for i in items]
    assert isinstance(got[-1], Ping) and got[-1].payload == b"hi"
    with pytest.raises(ValueError):
        protocol.ping(b"x" * 126)
    with pytest.raises(ValueError):
        protocol.send(b"x", "neither")
