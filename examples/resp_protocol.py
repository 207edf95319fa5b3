"""RESP, sans-I/O: a request parser (bytes in, commands out) and reply encoders
(RESP2, plus the RESP3 types the example's commands answer with).

The parser accepts what Redis 7 accepts, as Redis 7's ``networking.c``
reads it: a command is either a multibulk array (``*N\\r\\n`` then N bulk
strings ``$LEN\\r\\n...\\r\\n``) or an inline line (anything not starting
with ``*``, split like ``redis-cli`` input: spaces, "double" quotes with
escapes, 'single' quotes). Like Redis it does not check the two bytes that
end a header or a bulk string (it skips them), an empty inline line or a
``*0`` / ``*-1`` array is no command at all, and pipelined commands come
out one at a time in order.

Bad input raises :class:`ProtocolError`, whose ``reply`` is the error line
Redis sends (``-ERR Protocol error: ...``) before it closes the connection.
The texts are Redis 7's. Limits, each checked as soon as the header that
breaks it arrives, so the result never depends on how the bytes were split:

- ``max_inline_length`` (64 KiB, Redis' PROTO_INLINE_MAX_SIZE): an inline
  line, or an array / bulk header line, longer than that;
- ``max_bulk_length`` (512 MiB, Redis' proto-max-bulk-len): one argument;
- ``max_array_length`` (1 Mi arguments; Redis allows 2**31 - 1);
- ``max_command_length`` (1 GiB, Redis' client-query-buffer-limit): the
  argument bytes of one command together. Redis closes such a client
  without a reply; here it gets ``-ERR Protocol error: too big command``.

Differences from Redis, all on input Redis itself mishandles: a NUL byte in
a header line makes it invalid here (Redis' ``strchr`` stops at it and waits
for more input), and an inline line longer than 64 KiB is refused however it
was split (Redis accepts one that arrives in a single read).
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Union

__all__ = [
    "ProtocolError", "RespParser", "split_inline", "parse_integer",
    "simple_string", "error_reply", "integer_reply", "bulk_reply", "array_reply",
    "map_reply", "verbatim_reply", "encode", "OK", "NULL_BULK", "NULL_ARRAY", "NULL", "EMPTY_ARRAY",
    "QUEUED", "PONG",
    "INLINE_MAX_SIZE", "DEFAULT_MAX_BULK_LENGTH", "DEFAULT_MAX_ARRAY_LENGTH",
    "DEFAULT_MAX_COMMAND_LENGTH",
]

#: Redis server.h PROTO_INLINE_MAX_SIZE: longest inline request or header line.
INLINE_MAX_SIZE = 64 * 1024
#: Redis' proto-max-bulk-len default: the largest bulk string argument.
DEFAULT_MAX_BULK_LENGTH = 512 * 1024 * 1024
#: Arguments in one array (Redis allows INT_MAX; a smaller default bounds memory).
DEFAULT_MAX_ARRAY_LENGTH = 1024 * 1024
#: Argument bytes of one command (Redis' client-query-buffer-limit default).
DEFAULT_MAX_COMMAND_LENGTH = 1024 * 1024 * 1024

_INT_MAX = 2**31 - 1
_LLONG_MIN = -(2**63)
_LLONG_MAX = 2**63 - 1
_LONG_STR_SIZE = 21          # Redis util.h: longest decimal long long + 1
_DIGITS = frozenset(b"0123456789")

Command = List[bytes]


class ProtocolError(Exception):
    """The input is not RESP that Redis would accept. ``message`` is the
    text after ``Protocol error: ``; ``reply`` the error line to send
    before closing the connection."""

    def __init__(self, message: str) -> None:
        super().__init__(f"Protocol error: {message}")
        self.message = message

    @property
    def reply(self) -> bytes:
        """``-ERR Protocol error: ...\\r\\n`` (Redis' wording)."""
        text = self.message.encode("latin-1").replace(b"\r", b" ").replace(b"\n", b" ")
        return b"-ERR Protocol error: " + text + b"\r\n"


def parse_integer(text: Union[bytes, bytearray, memoryview]) -> Optional[int]:
    """The value of ``text`` as Redis' ``string2ll`` reads it (a 64-bit
    signed decimal: no sign but ``-``, no leading zeros, no spaces, at most
    20 characters), or None when it is not one."""
    size = len(text)
    if size == 0 or size >= _LONG_STR_SIZE:
        return None
    data = bytes(text)
    digits = data[1:] if data[0] == 0x2D else data      # '-'
    if not digits or digits[0] not in b"123456789":
        return None if data != b"0" else 0
    if not _DIGITS.issuperset(digits):
        return None
    value = int(data)
    if value < _LLONG_MIN or value > _LLONG_MAX:
        return None
    return value


# ---------------------------------------------------------------------- inline commands

_BLANKS = b" \t\n\v\f\r"      # C isspace()
_TOKEN_END = b" \n\r\t"       # what ends an unquoted token in sdssplitargs
_HEX = b"0123456789abcdefABCDEF"
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}


def split_inline(line: bytes) -> Optional[Command]:
    """Split an inline request into arguments as Redis' ``sdssplitargs``
    does; None when quotes are unbalanced (or a closing quote is not
    followed by a blank). A NUL byte ends the line, as in C."""
    nul = line.find(b"\0")
    if nul >= 0:
        line = line[:nul]
    if b'"' not in line and b"'" not in line and b"\v" not in line and b"\f" not in line:
        return line.split()    # the common case: split() splits on the other blanks
    args: Command = []
    size = len(line)
    i = 0
    while True:
        while i < size and line[i] in _BLANKS:
            i += 1
        if i >= size:
            return args
        current = bytearray()
        in_double = in_single = False
        while True:
            char = line[i] if i < size else -1
            if in_double:
                if char == 0x5C and i + 3 < size and line[i + 1] == 0x78 \
                        and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    current.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif char == 0x5C and i + 1 < size:
                    i += 1
                    current += _ESCAPES.get(line[i], line[i:i + 1])
                elif char == 0x22:                      # closing "
                    if i + 1 < size and line[i + 1] not in _BLANKS:
                        return None
                    i += 1
                    break
                elif char < 0:
                    return None                         # unterminated
                else:
                    current.append(char)
            elif in_single:
                if char == 0x5C and i + 1 < size and line[i + 1] == 0x27:
                    i += 1
                    current.append(0x27)
                elif char == 0x27:                      # closing '
                    if i + 1 < size and line[i + 1] not in _BLANKS:
                        return None
                    i += 1
                    break
                elif char < 0:
                    return None
                else:
                    current.append(char)
            elif char < 0 or char in _TOKEN_END:
                i += 1
                break
            elif char == 0x22:
                in_double = True
            elif char == 0x27:
                in_single = True
            else:
                current.append(char)
            i += 1
        args.append(bytes(current))


# ---------------------------------------------------------------------- the request parser

class RespParser:
    """Incremental RESP request parser (requests are the same in RESP2 and 3): ``feed`` bytes as they arrive,
    take whole commands with ``next_command`` (or by iterating). Any split
    of the same bytes gives the same commands and the same error."""

    __slots__ = ("max_bulk_length", "max_array_length", "max_inline_length",
                 "max_command_length", "_buffer", "_pos", "_args", "_remaining",
                 "_bulk_length", "_command_length", "_error")

    def __init__(self, *, max_bulk_length: int = DEFAULT_MAX_BULK_LENGTH,
                 max_array_length: int = DEFAULT_MAX_ARRAY_LENGTH,
                 max_inline_length: int = INLINE_MAX_SIZE,
                 max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH) -> None:
        self.max_bulk_length = max_bulk_length
        self.max_array_length = min(max_array_length, _INT_MAX)
        self.max_inline_length = max_inline_length
        self.max_command_length = max_command_length
        self._buffer = bytearray()
        self._pos = 0                       # first unparsed byte of _buffer
        self._args: Optional[Command] = None   # the array being read
        self._remaining = 0                 # its arguments still to come
        self._bulk_length = -1              # length of the bulk being read, -1: header next
        self._command_length = 0            # argument bytes of the array so far
        self._error: Optional[ProtocolError] = None

    @property
    def pending_bytes(self) -> int:
        """Memory held for the command in progress: its arguments so far plus
        the bytes not parsed yet."""
        return len(self._buffer) - self._pos + self._command_length

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Append received bytes. Never raises and never blocks; once a
        protocol error was found, further input is ignored."""
        if self._error is None:
            self._buffer += data

    def __iter__(self) -> Iterator[Command]:
        """The whole commands buffered so far; ProtocolError after the last
        good one if the input went bad."""
        while (command := self.next_command()) is not None:
            yield command

    def next_command(self) -> Optional[Command]:
        """The next whole command (a non-empty list of arguments), or None
        until more bytes are fed. Raises ProtocolError (again on every call)
        once the input is bad; the commands before the bad bytes come first."""
        if self._error is not None:
            raise self._error
        try:
            return self._parse()
        except ProtocolError as exc:
            self._error = exc
            self._buffer = bytearray()
            self._pos = 0
            self._args = None
            self._command_length = 0
            raise

    def _compact(self, pos: int) -> None:
        if pos >= len(self._buffer):
            self._buffer.clear()
            self._pos = 0
        elif pos > 65536 and pos * 2 > len(self._buffer):
            del self._buffer[:pos]
            self._pos = 0
        else:
            self._pos = pos

    def _header_end(self, pos: int, what: str) -> int:
        """Index of the CR ending the header line at ``pos``, -1 while it is
        incomplete (the CR and one byte after it are needed). The search
        stops after max_inline_length bytes: a longer header is an error
        however it arrives."""
        buffer = self._buffer
        limit = self.max_inline_length
        cr = buffer.find(b"\r", pos, pos + limit + 1)
        if cr < 0:
            if len(buffer) - pos > limit:
                raise ProtocolError(f"too big {what}")
            return -1
        if cr + 1 >= len(buffer):
            return -1
        return cr

    def _parse(self) -> Optional[Command]:
        buffer = self._buffer
        pos = self._pos
        while self._args is None:
            if pos >= len(buffer):
                self._compact(pos)
                return None
            if buffer[pos] != 0x2A:             # not '*': an inline command
                limit = self.max_inline_length
                newline = buffer.find(b"\n", pos, pos + limit + 1)
                if newline < 0:
                    if len(buffer) - pos > limit:
                        raise ProtocolError("too big inline request")
                    self._compact(pos)
                    return None
                end = newline - 1 if newline > pos and buffer[newline - 1] == 0x0D else newline
                args = split_inline(bytes(buffer[pos:end]))
                if args is None:
                    raise ProtocolError("unbalanced quotes in request")
                pos = newline + 1
                if args:
                    self._compact(pos)
                    return args
                continue
            cr = self._header_end(pos, "mbulk count string")
            if cr < 0:
                self._compact(pos)
                return None
            count = _header_integer(buffer[pos + 1:cr])
            if count is None or count > self.max_array_length:
                raise ProtocolError("invalid multibulk length")
            pos = cr + 2
            if count > 0:
                self._args = []
                self._remaining = count
                self._command_length = 0
        args = self._args
        remaining = self._remaining
        length = self._bulk_length
        command_length = self._command_length
        size = len(buffer)
        find = buffer.find
        limit = self.max_inline_length
        try:
            with memoryview(buffer) as view:
                while remaining:
                    if length < 0:
                        if pos >= size:
                            break
                        cr = find(b"\r", pos, pos + limit + 1)
                        if cr < 0:
                            if size - pos > limit:
                                raise ProtocolError("too big bulk count string")
                            break
                        if cr + 1 >= size:
                            break
                        if buffer[pos] != 0x24:         # '$'
                            raise ProtocolError("expected '$', got '%s'" % chr(buffer[pos]))
                        digits = buffer[pos + 1:cr]
                        if digits.isdigit() and len(digits) < 19 and (digits[0] != 0x30 or cr == pos + 2):
                            length = int(digits)        # the common case, inlined
                        else:
                            length = parse_integer(digits)
                        if length is None or length < 0 or length > self.max_bulk_length:
                            length = -1
                            raise ProtocolError("invalid bulk length")
                        if command_length + length > self.max_command_length:
                            length = -1
                            raise ProtocolError("too big command")
                        pos = cr + 2
                    end = pos + length
                    if size < end + 2:
                        break
                    args.append(bytes(view[pos:end]))
                    command_length += length
                    pos = end + 2
                    length = -1
                    remaining -= 1
        finally:
            self._remaining = remaining
            self._bulk_length = length
            self._command_length = command_length
        if remaining:
            self._compact(pos)
            return None
        self._args = None
        self._command_length = 0
        self._compact(pos)
        return args


def _header_integer(text: bytearray) -> Optional[int]:
    """A header's number (as parse_integer reads it), fast for plain digits."""
    if text.isdigit() and len(text) < 19 and (text[0] != 0x30 or len(text) == 1):
        return int(text)
    return parse_integer(text)


# ---------------------------------------------------------------------- replies

OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
QUEUED = b"+QUEUED\r\n"
NULL_BULK = b"$-1\r\n"
NULL_ARRAY = b"*-1\r\n"
NULL = b"_\r\n"              # RESP3's one null
EMPTY_ARRAY = b"*0\r\n"

_SMALL_INTEGERS = [b":%d\r\n" % n for n in range(-2, 1024)]


def simple_string(text: Union[str, bytes]) -> bytes:
    """``+text\\r\\n`` (CR and LF in ``text`` become spaces)."""
    if isinstance(text, str):
        text = text.encode()
    return b"+" + text.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"


def error_reply(text: Union[str, bytes]) -> bytes:
    """An error line. ``text`` starting with ``-`` carries its own code
    (``-WRONGTYPE ...``); otherwise it gets ``-ERR `` like Redis'
    addReplyError. CR and LF in ``text`` become spaces."""
    if isinstance(text, str):
        text = text.encode()
    text = text.replace(b"\r", b" ").replace(b"\n", b" ")
    if text.startswith(b"-"):
        return text + b"\r\n"
    return b"-ERR " + text + b"\r\n"


def integer_reply(value: int) -> bytes:
    """``:value\\r\\n``."""
    if -2 <= value < 1022:
        return _SMALL_INTEGERS[value + 2]
    return b":%d\r\n" % value


def bulk_reply(value: Optional[bytes]) -> bytes:
    """``$len\\r\\nvalue\\r\\n``, or the null bulk string for None."""
    if value is None:
        return NULL_BULK
    return b"$%d\r\n%s\r\n" % (len(value), value)


def array_reply(items: Optional[Sequence[bytes]]) -> bytes:
    """An array of already encoded replies; the null array for None."""
    if items is None:
        return NULL_ARRAY
    return b"*%d\r\n" % len(items) + b"".join(items)


def map_reply(items: Sequence[bytes], resp: int = 2) -> bytes:
    """A map of already encoded keys and values (alternating): RESP3's
    ``%N``, or a flat array of 2N items for RESP2 (as Redis sends it)."""
    if resp == 3:
        return b"%%%d\r\n" % (len(items) // 2) + b"".join(items)
    return array_reply(items)


def verbatim_reply(text: bytes, resp: int = 2) -> bytes:
    """Text for humans (INFO, CLIENT LIST): RESP3's verbatim string
    ``=N\r\ntxt:...``, a bulk string for RESP2."""
    if resp == 3:
        return b"=%d\r\ntxt:%s\r\n" % (len(text) + 4, text)
    return bulk_reply(text)


Value = Union[None, int, bytes, str, Sequence["Value"]]


def encode(value: Value) -> bytes:
    """Encode a plain value: None -> null bulk, int -> integer, bytes or
    str -> bulk string, list/tuple -> array (recursively)."""
    if value is None:
        return NULL_BULK
    if isinstance(value, bool):
        raise TypeError("RESP2 has no booleans")
    if isinstance(value, int):
        return integer_reply(value)
    if isinstance(value, str):
        return bulk_reply(value.encode())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bulk_reply(bytes(value))
    if isinstance(value, (list, tuple)):
        return array_reply([encode(item) for item in value])
    raise TypeError(f"cannot encode {type(value).__name__} as RESP")
