"""Length-prefixed framing (skynet's netpack), sans-I/O.

Wire format: a big-endian unsigned length, 2 bytes by default (skynet's
``netpack``, payloads up to 65535 bytes) or 4 bytes (``header=4``, like
skynet's C gate in ``L`` mode), then that many payload bytes. An empty
payload (``00 00``) is a packet too.

    >>> from gsocket import netpack
    >>> wire = netpack.pack(b"hello") + netpack.pack(b"")
    >>> decoder = netpack.Decoder()
    >>> decoder.feed(wire[:3]), decoder.feed(wire[3:])
    ([], [b'hello', b''])

Theory of operation
-------------------
The decoder keeps at most one partial packet, in a ``bytearray`` it only
ever appends to. A feed first completes that partial packet with just the
bytes it still needs, then cuts whole packets straight out of the chunk
and keeps the trailing partial one. So every byte fed is copied a bounded
number of times: a million small packets in one chunk, or one 60 KiB packet
fed a byte at a time, cost time linear in their size (see
``benchmarks/bench_netpack.py``). A length over ``max_packet`` raises
:class:`PacketTooLarge` as soon as its header is complete, before any of
its payload is buffered, so memory per decoder stays under
``header + max_packet`` bytes whatever a peer sends.
"""

from __future__ import annotations

import struct
from typing import List, Optional, Union

__all__ = ["pack", "Decoder", "PacketTooLarge", "HEADER_LIMITS", "DEFAULT_MAX_PACKET"]

#: Largest payload each header size can express (skynet netpack: 65535).
HEADER_LIMITS = {2: 0xFFFF, 4: 0xFFFFFFFF}

#: Default ``max_packet`` of a decoder: everything a 2-byte header can say;
#: for 4-byte headers 16 MiB, the limit of skynet's C gate (service_gate.c
#: closes a connection announcing a frame of 16 MiB or more).
DEFAULT_MAX_PACKET = {2: 0xFFFF, 4: 0xFFFFFF}

_STRUCTS = {2: struct.Struct(">H"), 4: struct.Struct(">I")}

BytesLike = Union[bytes, bytearray, memoryview]


class PacketTooLarge(ValueError):
    """A packet header announced more than the decoder's ``max_packet``.

    ``size`` is the announced length, ``limit`` the decoder's maximum, and
    ``packets`` the whole packets that preceded the bad header in the same
    ``feed`` (deliver them before closing the connection, if you like).
    The stream cannot be resynchronised: the decoder raises this again on
    every later feed.
    """

    def __init__(self, size: int, limit: int, packets: Optional[List[bytes]] = None) -> None:
        super().__init__(f"packet of {size} bytes announced, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit
        self.packets: List[bytes] = packets if packets is not None else []


def _check_header(header: int) -> int:
    if isinstance(header, bool) or header not in HEADER_LIMITS:
        raise ValueError(f"header must be 2 or 4 bytes, got {header!r}")
    return header


def pack(data: Union[BytesLike, str], header: int = 2) -> bytes:
    """``data`` (bytes-like, or str sent as UTF-8) with its length header
    in front: the bytes to write to a socket. Raises ValueError when the
    payload does not fit the header (over 65535 bytes with ``header=2``),
    TypeError for other types. Never blocks."""
    _check_header(header)
    if isinstance(data, str):
        data = data.encode()
    elif isinstance(data, memoryview):
        data = data.tobytes()
    elif not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"netpack.pack needs bytes-like data or str, not {type(data).__name__}")
    size = len(data)
    if size > HEADER_LIMITS[header]:
        raise ValueError(f"Invalid size (too long) of data: {size} bytes, "
                         f"a {header}-byte header holds at most {HEADER_LIMITS[header]}")
    return _STRUCTS[header].pack(size) + data


class Decoder:
    """Splits a byte stream into packets: feed it chunks as they arrive.

    ``header`` is 2 (default) or 4; ``max_packet`` the largest payload
    accepted (default :data:`DEFAULT_MAX_PACKET`; at most what the header
    can express). A longer announced length raises :class:`PacketTooLarge`.
    """

    __slots__ = ("header", "max_packet", "_struct", "_partial", "_size", "_failure")

    def __init__(self, header: int = 2, max_packet: Optional[int] = None) -> None:
        self.header = _check_header(header)
        if max_packet is None:
            max_packet = DEFAULT_MAX_PACKET[header]
        if isinstance(max_packet, bool) or not isinstance(max_packet, int) \
                or not 0 <= max_packet <= HEADER_LIMITS[header]:
            raise ValueError(f"max_packet must be an int in 0..{HEADER_LIMITS[header]} "
                             f"for a {header}-byte header, got {max_packet!r}")
        self.max_packet = max_packet
        self._struct = _STRUCTS[header]
        # The partial packet, header included; its payload size once known.
        self._partial = bytearray()
        self._size = -1
        self._failure: Optional[PacketTooLarge] = None

    @property
    def pending_bytes(self) -> int:
        """Bytes of the partial packet kept for the next feed."""
        return len(self._partial)

    def feed(self, chunk: BytesLike) -> List[bytes]:
        """The packets completed by ``chunk`` (bytes-like), in order; a
        trailing partial packet is kept for the next call. Raises
        PacketTooLarge (see there) and TypeError for non-bytes input.
        Never blocks."""
        if self._failure is not None:
            raise PacketTooLarge(self._failure.size, self._failure.limit)
        if not isinstance(chunk, bytes):
            if not isinstance(chunk, (bytearray, memoryview)):
                raise TypeError(f"Decoder.feed needs bytes-like data, not {type(chunk).__name__}")
            chunk = bytes(chunk)
        packets: List[bytes] = []
        length = len(chunk)
        header = self.header
        pos = 0
        partial = self._partial
        if partial:
            # Complete the partial packet with only the bytes it needs.
            if self._size < 0:
                take = min(header - len(partial), length)
                partial += chunk[:take]
                pos = take
                if len(partial) < header:
                    return packets
                self._size = self._struct.unpack(partial)[0]
                if self._size > self.max_packet:
                    return self._fail(self._size, packets)
            need = header + self._size - len(partial)
            take = min(need, length - pos)
            partial += chunk[pos:pos + take]
            pos += take
            if take < need:
                return packets
            packets.append(bytes(partial[header:]))
            partial.clear()
            self._size = -1
        unpack_from = self._struct.unpack_from
        limit = self.max_packet
        append = packets.append
        while length - pos >= header:
            size = unpack_from(chunk, pos)[0]
            if size > limit:
                return self._fail(size, packets)
            start = pos + header
            end = start + size
            if end > length:
                break
            append(chunk[start:end])
            pos = end
        if pos < length:
            partial += chunk[pos:]
            if len(partial) >= header:
                self._size = self._struct.unpack_from(partial)[0]
        return packets

    def _fail(self, size: int, packets: List[bytes]) -> List[bytes]:
        self._partial = bytearray()
        self._size = -1
        self._failure = PacketTooLarge(size, self.max_packet)
        raise PacketTooLarge(size, self.max_packet, packets)

    def __repr__(self) -> str:
        return (f"<netpack.Decoder header={self.header} max_packet={self.max_packet} "
                f"pending={len(self._partial)}>")
