"""gsocket.netpack: length-prefixed framing, sans-I/O (no sockets here).

skynet scenarios 62-65 at the decoder level, the 4-byte header mode, the
hostile-length guard, and hypothesis: any chunking of any packet sequence
gives the same packets; arbitrary bytes never raise anything but
PacketTooLarge."""

from __future__ import annotations

import struct
from typing import List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsocket import netpack
from gsocket.netpack import Decoder, PacketTooLarge, pack

# Pure CPU tests: the suite-wide gevent marker is not needed, but harmless.
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed_all(decoder: Decoder, chunks: List[bytes]) -> List[bytes]:
    out: List[bytes] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out


def split_at(data: bytes, cuts: List[int]) -> List[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points + [len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


# ---------------------------------------------------------------------- pack

def test_pack_two_byte_header() -> None:
    assert pack(b"hello") == b"\x00\x05hello"
    assert pack(b"") == b"\x00\x00"
    assert pack("é") == b"\x00\x02\xc3\xa9"                  # str goes out as UTF-8
    assert pack(bytearray(b"ab")) == b"\x00\x02ab"
    assert pack(memoryview(b"abc")[1:]) == b"\x00\x02bc"


def test_pack_limits() -> None:
    assert pack(b"x" * 65535)[:2] == b"\xff\xff"              # scenario 65
    with pytest.raises(ValueError, match="too long"):
        pack(b"x" * 65536)
    big = b"y" * 70000
    assert pack(big, header=4) == struct.pack(">I", 70000) + big
    for header in (0, 1, 3, 8, True):
        with pytest.raises(ValueError, match="header"):
            pack(b"x", header=header)
    with pytest.raises(TypeError):
        pack(12)   # type: ignore[arg-type]


# ---------------------------------------------------------------------- decoder: skynet scenarios

def test_split_inside_header() -> None:
    # scenario 62: 00 | 05 he | llo -> one message
    decoder = Decoder()
    assert decoder.feed(b"\x00") == []
    assert decoder.pending_bytes == 1
    assert decoder.feed(b"\x05he") == []
    assert decoder.feed(b"llo") == [b"hello"]
    assert decoder.pending_bytes == 0


def test_three_frames_plus_one_header_byte() -> None:
    # scenario 63: three whole frames and the first byte of a fourth's header
    decoder = Decoder()
    wire = pack(b"one") + pack(b"two") + pack(b"three") + pack(b"four")
    cut = len(pack(b"one") + pack(b"two") + pack(b"three")) + 1
    assert decoder.feed(wire[:cut]) == [b"one", b"two", b"three"]
    assert decoder.feed(wire[cut:]) == [b"four"]


def test_empty_frames_are_frames() -> None:
    # scenario 64
    decoder = Decoder()
    assert decoder.feed(b"\x00\x00") == [b""]
    assert decoder.feed(b"\x00\x00\x00\x00\x00\x01z\x00") == [b"", b"", b"z"]
    assert decoder.feed(b"\x00") == [b""]
    assert decoder.feed(b"") == []


def test_largest_two_byte_frame_byte_by_byte() -> None:
    # scenario 65, fed one byte at a time
    payload = bytes(range(256)) * 255 + b"end" * 85
    assert len(payload) == 65535
    decoder = Decoder()
    wire = pack(payload)
    out = [p for i in range(len(wire)) for p in decoder.feed(wire[i:i + 1])]
    assert out == [payload]


def test_bytes_like_inputs() -> None:
    decoder = Decoder()
    assert decoder.feed(bytearray(b"\x00\x02a")) == []
    assert decoder.feed(memoryview(b"xbz")[1:2]) == [b"ab"]
    assert all(type(p) is bytes for p in Decoder().feed(bytearray(pack(b"q") * 3)))
    with pytest.raises(TypeError):
        decoder.feed("text")   # type: ignore[arg-type]


def test_four_byte_header() -> None:
    decoder = Decoder(header=4)
    payload = b"z" * 100_000
    wire = pack(payload, header=4) + pack(b"", header=4) + pack(b"tail", header=4)
    assert decoder.feed(wire[:3]) == []
    assert decoder.feed(wire[3:50_000]) == []
    assert decoder.feed(wire[50_000:]) == [payload, b"", b"tail"]
    assert decoder.max_packet == netpack.DEFAULT_MAX_PACKET[4] == 16 * 1024 * 1024 - 1


# ---------------------------------------------------------------------- decoder: hostile lengths

def test_hostile_four_gib_length_raises_before_buffering() -> None:
    decoder = Decoder(header=4)
    with pytest.raises(PacketTooLarge) as info:
        decoder.feed(b"\xff\xff\xff\xff" + b"x" * 1000)
    assert isinstance(info.value, ValueError)
    assert info.value.size == 0xFFFFFFFF and info.value.limit == decoder.max_packet
    assert decoder.pending_bytes == 0
    # the stream is desynchronised for good
    with pytest.raises(PacketTooLarge):
        decoder.feed(pack(b"ok", header=4))


def test_hostile_length_split_across_feeds() -> None:
    decoder = Decoder(header=4, max_packet=1024)
    assert decoder.feed(b"\x00\x00") == []
    with pytest.raises(PacketTooLarge) as info:
        decoder.feed(b"\x04\x01")
    assert info.value.size == 1025 and info.value.packets == []
    assert decoder.pending_bytes == 0


def test_packets_before_the_bad_header_are_handed_over() -> None:
    decoder = Decoder(max_packet=10)
    wire = pack(b"a") + pack(b"bb") + b"\x00\x0b" + b"x" * 11
    with pytest.raises(PacketTooLarge) as info:
        decoder.feed(wire)
    assert info.value.packets == [b"a", b"bb"]
    # after a completed partial packet too
    decoder = Decoder(max_packet=10)
    assert decoder.feed(b"\x00\x03ab") == []
    with pytest.raises(PacketTooLarge) as info:
        decoder.feed(b"c\x00\x63")
    assert info.value.packets == [b"abc"] and info.value.size == 0x63


def test_max_packet_is_inclusive() -> None:
    decoder = Decoder(max_packet=3)
    assert decoder.feed(pack(b"abc")) == [b"abc"]
    with pytest.raises(PacketTooLarge):
        decoder.feed(pack(b"abcd"))


def test_decoder_arguments() -> None:
    assert Decoder().max_packet == 65535
    assert Decoder(max_packet=0).feed(b"\x00\x00") == [b""]
    for bad in (-1, 65536, 1.5, True, "10"):
        with pytest.raises(ValueError):
            Decoder(max_packet=bad)   # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Decoder(header=3)
    assert Decoder(header=4, max_packet=0xFFFFFFFF).max_packet == 0xFFFFFFFF
    assert "pending=0" in repr(Decoder())


# ---------------------------------------------------------------------- hypothesis

payloads = st.lists(st.binary(max_size=300), max_size=30)


@SETTINGS
@given(packets=payloads, cuts=st.lists(st.integers(min_value=0), max_size=40),
       header=st.sampled_from([2, 4]))
def test_any_chunking_gives_the_same_packets(packets: List[bytes], cuts: List[int], header: int) -> None:
    wire = b"".join(pack(p, header) for p in packets)
    decoder = Decoder(header)
    assert feed_all(decoder, split_at(wire, cuts)) == packets
    assert decoder.pending_bytes == 0


@SETTINGS
@given(packets=payloads, header=st.sampled_from([2, 4]))
def test_byte_at_a_time(packets: List[bytes], header: int) -> None:
    wire = b"".join(pack(p, header) for p in packets)
    decoder = Decoder(header)
    assert feed_all(decoder, [wire[i:i + 1] for i in range(len(wire))]) == packets


@SETTINGS
@given(packets=payloads, tail=st.binary(min_size=1, max_size=20), cuts=st.lists(st.integers(0), max_size=10))
def test_partial_tail_is_kept(packets: List[bytes], tail: bytes, cuts: List[int]) -> None:
    whole = b"".join(pack(p) for p in packets)
    last = pack(tail)
    decoder = Decoder()
    got = feed_all(decoder, split_at(whole + last[:-1], cuts))
    assert got == packets and decoder.pending_bytes == len(last) - 1
    assert decoder.feed(last[-1:]) == [tail]


def reference_decode(data: bytes, header: int, limit: int) -> List[bytes]:
    """A slow, obviously correct parse; PacketTooLarge like the decoder."""
    out, pos = [], 0
    while len(data) - pos >= header:
        size = int.from_bytes(data[pos:pos + header], "big")
        if size > limit:
            raise PacketTooLarge(size, limit, out)
        if pos + header + size > len(data):
            break
        out.append(data[pos + header:pos + header + size])
        pos += header + size
    return out


@SETTINGS
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0), max_size=20),
       header=st.sampled_from([2, 4]), limit=st.integers(0, 200))
def test_arbitrary_bytes_only_raise_packet_too_large(data: bytes, cuts: List[int], header: int,
                                                     limit: int) -> None:
    decoder = Decoder(header, max_packet=limit)
    got: List[bytes] = []
    try:
        expected = reference_decode(data, header, limit)
        failed = False
    except PacketTooLarge as exc:
        expected, failed = exc.packets, True
    try:
        for chunk in split_at(data, cuts):
            got += decoder.feed(chunk)
    except PacketTooLarge as exc:
        got += exc.packets
        assert failed, "raised where the reference did not"
        assert decoder.pending_bytes == 0
    else:
        assert not failed, "the reference raised, the decoder did not"
        assert decoder.pending_bytes <= header + limit
    assert got == expected
