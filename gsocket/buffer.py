"""Sans-I/O read buffer: one per connection, bytes in, messages out.

This is gsocket's version of skynet's per-socket read buffer (lua-socket.c
``push`` / ``pop`` / ``readline`` / ``readall`` / ``clear``). It knows nothing about sockets or
gevent: :mod:`gsocket.socket` pushes what ``recv`` returned and asks for
``n`` bytes or a line.

Theory of operation
-------------------

The buffered bytes are ``self._data[self._start:]``. ``_data`` is either

* a ``bytes`` object: the single chunk pushed into an empty buffer, kept as
  it is (no copy). When the whole of it is asked for -- the common case of a
  small message arriving in one ``recv`` and being read in one go --
  ``pop``/``readall`` hand back that very object; or
* a ``bytearray``, once a read needs more than the first chunk while a
  second one has arrived. Later chunks are appended to it then.

Chunks pushed behind a non-empty buffer first wait, uncopied, in
``_chunks`` (their total in ``_chunks_size``). ``readall`` joins everything
with one copy, which is what a bulk stream read with ``read(id)`` needs;
``pop`` beyond ``_data``, ``readline`` and ``has_line`` first move the
waiting chunks into the bytearray (``_flatten``), so every byte is still
copied into the array at most once.

Consuming bytes never copies what remains: it only advances ``_start``.
The consumed prefix of a ``bytearray`` is deleted ("compacted") only when it
is both larger than :attr:`ReadBuffer.COMPACT_THRESHOLD` and more than half
of the array, so each byte is moved at most a constant number of times
(amortised linear) and the array never holds much more than twice the
unread bytes. When the buffer becomes empty ``_data`` is replaced by
``b""``, so an idle connection keeps no large array alive.

``readline`` must stay linear when a long line trickles in and a reader
tries again after every chunk. Like h11's ``ReceiveBuffer`` we remember how
far the last unsuccessful search for a separator got (``_scan``, an index
into ``_data``, valid for the separator ``_scan_sep``): there is no
occurrence of that separator *starting* before ``_scan``. A failed search
sets ``_scan`` to ``len(_data) - len(sep) + 1``, not ``len(_data)``, because
the last ``len(sep) - 1`` bytes could be the beginning of a separator whose
remainder has not arrived yet (``b"ab\\r"`` then ``b"\\ncd"``). Consuming
bytes does not invalidate ``_scan`` (the bytes after ``_start`` are
unchanged); compaction shifts it along with ``_start``. A search for a
different separator starts afresh from ``_start``.
"""

from __future__ import annotations

import operator
from typing import Union

__all__ = ["ReadBuffer"]

#: What :meth:`ReadBuffer.push` accepts.
BytesLike = Union[bytes, bytearray, memoryview]

# Slices shorter than this are taken with ``bytes(ba[i:j])`` (two small
# copies, but no memoryview object); longer ones through a memoryview, one
# copy. Measured on CPython 3.11: the two cross at a few KiB.
_SMALL_SLICE = 4096


def _copy(data: bytearray, start: int, end: int) -> bytes:
    """``bytes(data[start:end])`` with a single copy."""
    with memoryview(data) as view:
        return view[start:end].tobytes()


class ReadBuffer:
    """A FIFO of received bytes with exact-size and line-oriented reads.

    ``push`` appends a chunk; ``pop``, ``readline`` and ``readall`` consume
    from the front. A read that cannot be satisfied yet returns ``None`` and
    consumes nothing, so it can be repeated after the next ``push``.
    """

    __slots__ = ("_data", "_start", "_scan", "_scan_sep", "_chunks", "_chunks_size")

    #: The consumed prefix of the internal bytearray is dropped only once it
    #: is larger than this (and more than half the array). Picked by hand:
    #: small enough to bound the waste, large enough that buffers of ordinary
    #: messages empty (and are released) before they ever compact.
    COMPACT_THRESHOLD = 64 * 1024

    def __init__(self) -> None:
        self._data: bytes | bytearray = b""
        self._start = 0
        self._scan = 0
        self._scan_sep = b""
        self._chunks: list[bytes] | None = None   # created on first need
        self._chunks_size = 0

    # -- size -------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of bytes buffered and not yet consumed."""
        return len(self._data) - self._start + self._chunks_size

    def __len__(self) -> int:
        return len(self._data) - self._start + self._chunks_size

    def __bool__(self) -> bool:
        return len(self._data) > self._start or self._chunks_size > 0

    def __repr__(self) -> str:
        return f"<ReadBuffer size={self.size}>"

    # -- input ------------------------------------------------------------

    def push(self, data: BytesLike) -> int:
        """Append a received chunk and return the new total size.

        ``data`` may be ``bytes``, ``bytearray`` or ``memoryview`` (any
        format or shape; its raw bytes are taken). Mutable input is copied,
        so the caller may reuse a receive buffer afterwards; ``bytes``
        pushed into an empty buffer is kept as it is. An empty chunk changes
        nothing. Anything else raises ``TypeError``.
        """
        if type(data) is not bytes:
            if isinstance(data, memoryview):
                if not data.c_contiguous:
                    data = data.tobytes()
            elif not isinstance(data, (bytes, bytearray)):
                raise TypeError(
                    f"push() needs bytes, bytearray or memoryview, "
                    f"not {type(data).__name__}"
                )
        if not data:
            return len(self._data) - self._start + self._chunks_size
        old = self._data
        start = self._start
        if start == len(old) and not self._chunks_size:
            # Empty: keep a bytes chunk as it is (copy anything mutable).
            self._data = data if type(data) is bytes else bytes(data)
            self._start = 0
            self._scan = 0
            return len(self._data)
        # Behind unread bytes: wait uncopied until a read needs it.
        chunk = data if type(data) is bytes else bytes(data)
        if self._chunks is None:
            self._chunks = [chunk]
        else:
            self._chunks.append(chunk)
        self._chunks_size += len(chunk)
        return len(old) - start + self._chunks_size

    def _flatten(self) -> None:
        """Move the waiting chunks into the bytearray ``_data``."""
        chunks = self._chunks
        if not chunks:
            return
        data = self._data
        start = self._start
        if type(data) is bytes:
            arr = bytearray(memoryview(data)[start:]) if start else bytearray(data)
            self._start = 0
            self._scan = max(self._scan - start, 0)
        else:
            arr = data  # type: ignore[assignment]
        for chunk in chunks:
            arr += chunk
        self._data = arr
        chunks.clear()
        self._chunks_size = 0

    # -- output -----------------------------------------------------------

    def pop(self, nbytes: int) -> bytes | None:
        """Consume and return exactly ``nbytes`` bytes, or ``None``.

        The bytes may span any number of pushed chunks. Returns ``None``
        (consuming nothing) when fewer than ``nbytes`` are buffered, and
        ``b""`` for ``pop(0)``. A negative size raises ``ValueError``.
        """
        if type(nbytes) is not int:
            nbytes = operator.index(nbytes)
        start = self._start
        end = start + nbytes
        data = self._data
        if 0 < nbytes and end < len(data):
            # Fast path, inlined: part of what is buffered.
            self._start = end
            if not isinstance(data, bytearray):
                return data[start:end]
            if nbytes < _SMALL_SLICE:
                out = bytes(data[start:end])
            else:
                out = _copy(data, start, end)
            if end > self.COMPACT_THRESHOLD and end * 2 > len(data):
                self._compact()
            return out
        if nbytes <= 0:
            if nbytes == 0:
                return b""
            raise ValueError(f"pop() size must be >= 0, not {nbytes}")
        available = len(data) - start + self._chunks_size
        if nbytes == available:
            return self.readall()
        if nbytes > available:
            return None
        self._flatten()
        return self.pop(nbytes)

    def readline(self, sep: BytesLike = b"\n") -> bytes | None:
        """Consume a line and its separator; return the line without it.

        ``sep`` may be several bytes long and may arrive split across
        chunks. Returns ``None`` (consuming nothing) when ``sep`` is not
        buffered yet. An empty ``sep`` raises ``ValueError``.
        """
        i = self._find(sep)
        if i < 0:
            return None
        data = self._data
        start = self._start
        end = i + len(self._scan_sep)
        if end == len(data):
            self._reset()
            return self._take(data, start, i)
        self._start = end
        return self._take(data, start, i)

    def has_line(self, sep: BytesLike = b"\n") -> bool:
        """Return True when ``readline(sep)`` would return a line.

        Consumes nothing. An empty ``sep`` raises ``ValueError``.
        """
        return self._find(sep) >= 0

    def readall(self) -> bytes:
        """Consume and return every buffered byte (``b""`` when empty).

        When the buffer holds exactly one unread pushed ``bytes`` chunk,
        that object itself is returned.
        """
        data = self._data
        start = self._start
        chunks = self._chunks
        if chunks:
            head = memoryview(data)[start:] if start else data
            out = b"".join([head, *chunks])
            self._reset()
            return out
        # _reset() inlined: this is every read(id)'s path.
        self._data = b""
        self._start = 0
        self._scan = 0
        if start == 0 and type(data) is bytes:
            return data
        return self._take(data, start, len(data))

    def clear(self) -> None:
        """Drop every buffered byte and release the storage."""
        self._reset()

    # -- internals --------------------------------------------------------

    def _reset(self) -> None:
        self._data = b""
        self._start = 0
        self._scan = 0
        if self._chunks:
            self._chunks.clear()
            self._chunks_size = 0

    def _take(self, data: bytes | bytearray, start: int, end: int) -> bytes:
        """Return ``data[start:end]`` as bytes and compact if it is time.

        The caller has already moved ``_start`` past ``end`` (or reset the
        buffer, in which case ``data`` is no longer ours to compact).
        """
        if not isinstance(data, bytearray):
            return data[start:end]
        if end - start < _SMALL_SLICE:
            out = bytes(data[start:end])
        else:
            out = _copy(data, start, end)
        consumed = self._start
        if (
            data is self._data
            and consumed > self.COMPACT_THRESHOLD
            and consumed * 2 > len(data)
        ):
            self._compact()
        return out

    def _compact(self) -> None:
        """Delete the consumed prefix of the internal bytearray."""
        data = self._data
        consumed = self._start
        if isinstance(data, bytearray) and consumed:
            del data[:consumed]
            self._start = 0
            self._scan = max(self._scan - consumed, 0)

    def _find(self, sep: BytesLike) -> int:
        """Index in ``_data`` of the first ``sep`` at or after ``_start``.

        Returns -1 when it is not buffered yet and records how far the
        search got; on return ``_scan_sep`` is ``sep`` as bytes.
        """
        if type(sep) is not bytes:
            if not isinstance(sep, (bytearray, memoryview)):
                raise TypeError(
                    f"separator must be bytes-like, not {type(sep).__name__}"
                )
            sep = bytes(sep)
        if not sep:
            raise ValueError("empty separator")
        self._flatten()
        if sep != self._scan_sep:
            self._scan_sep = sep
            self._scan = self._start
        data = self._data
        start = self._start
        scan = self._scan
        i = data.find(sep, scan if scan > start else start)
        if i < 0:
            # The last len(sep) - 1 bytes may start a separator that is
            # still on its way: look at them again next time.
            self._scan = max(len(data) - len(sep) + 1, start)
        return i


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_buffer")
