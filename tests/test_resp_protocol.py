"""The RESP example's sans-I/O parser and encoders (examples/resp_protocol.py):
exact results, Redis' error texts, limits, and hypothesis properties (any
chunking gives the same commands and the same error; nothing but
ProtocolError is ever raised)."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import _resp_support  # noqa: F401 - puts examples/ on sys.path
from resp_protocol import (
    INLINE_MAX_SIZE, ProtocolError, RespParser, array_reply, bulk_reply, encode, error_reply,
    integer_reply, parse_integer, simple_string, split_inline,
)

Outcome = Tuple[List[List[bytes]], Optional[str]]
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def drain(parser: RespParser) -> Tuple[List[List[bytes]], Optional[str]]:
    commands: List[List[bytes]] = []
    try:
        for command in parser:
            commands.append(command)
    except ProtocolError as exc:
        return commands, exc.message
    return commands, None


def parse_chunks(chunks: Sequence[bytes], **limits: int) -> Outcome:
    """Feed the chunks one by one, taking commands after each; stop at the
    first error."""
    parser = RespParser(**limits)
    commands: List[List[bytes]] = []
    for chunk in chunks:
        parser.feed(chunk)
        got, error = drain(parser)
        commands += got
        if error is not None:
            return commands, error
    return commands, None


def parse(data: bytes, **limits: int) -> Outcome:
    return parse_chunks([data], **limits)


def multibulk(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def split_at(data: bytes, cuts: Sequence[int]) -> List[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for point in points:
        chunks.append(data[last:point])
        last = point
    chunks.append(data[last:])
    return chunks


# ---------------------------------------------------------------------- exact results

def test_multibulk_and_inline_commands_pipelined():
    data = multibulk(b"SET", b"k", b"v\r\n\x00bin") + b"PING\r\n" + b"  get   k \n" + multibulk(b"GET", b"")
    assert parse(data) == ([[b"SET", b"k", b"v\r\n\x00bin"], [b"PING"], [b"get", b"k"], [b"GET", b""]], None)


def test_empty_requests_are_no_commands():
    assert parse(b"\r\n\n*0\r\n*-1\r\n*-5\r\nPING\r\n") == ([[b"PING"]], None)


def test_header_and_bulk_terminators_are_skipped_not_checked_like_redis():
    # Redis skips the two bytes after a header's CR and after bulk data.
    assert parse(b"*1\rX$4\rYPINGZZ") == ([[b"PING"]], None)


def test_a_header_waits_for_the_byte_after_its_cr():
    parser = RespParser()
    parser.feed(b"*1\r")
    assert parser.next_command() is None
    parser.feed(b"\n$4\r")
    assert parser.next_command() is None
    parser.feed(b"\nPING\r")
    assert parser.next_command() is None
    parser.feed(b"\n")
    assert parser.next_command() == [b"PING"]
    assert parser.next_command() is None
    assert parser.pending_bytes == 0


@pytest.mark.parametrize("data, message", [
    (b"*x\r\n", "invalid multibulk length"),
    (b"*1x\r\n", "invalid multibulk length"),
    (b"*01\r\n", "invalid multibulk length"),
    (b"*+1\r\n", "invalid multibulk length"),
    (b"* 1\r\n", "invalid multibulk length"),
    (b"*\r\n", "invalid multibulk length"),
    (b"*2147483648\r\n", "invalid multibulk length"),
    (b"*1\r\n$-1\r\n", "invalid bulk length"),
    (b"*1\r\n$x\r\n", "invalid bulk length"),
    (b"*1\r\n$\r\n", "invalid bulk length"),
    (b"*1\r\n$99999999999999999999\r\n", "invalid bulk length"),
    (b"*1\r\n:1\r\n", "expected '$', got ':'"),
    (b"*2\r\n$3\r\nGET\r\n*1\r\n", "expected '$', got '*'"),
    (b'GET "abc\r\n', "unbalanced quotes in request"),
    (b"GET 'a'b\r\n", "unbalanced quotes in request"),
    (b'SET "a"b c\r\n', "unbalanced quotes in request"),
])
def test_protocol_errors_have_redis_texts(data, message):
    assert parse(data) == ([], message)


def test_error_reply_and_commands_before_it():
    parser = RespParser()
    parser.feed(b"PING\r\nECHO hi\r\n*1\r\n$x\r\nPING\r\n")
    assert parser.next_command() == [b"PING"]
    assert parser.next_command() == [b"ECHO", b"hi"]
    with pytest.raises(ProtocolError) as caught:
        parser.next_command()
    assert caught.value.reply == b"-ERR Protocol error: invalid bulk length\r\n"
    with pytest.raises(ProtocolError):      # it stays broken
        parser.next_command()
    parser.feed(b"PING\r\n")                # and ignores more input
    with pytest.raises(ProtocolError):
        parser.next_command()


def test_expected_dollar_error_with_crlf_byte_is_one_line():
    error = ProtocolError("expected '$', got '\r'")
    assert error.reply == b"-ERR Protocol error: expected '$', got ' '\r\n"


def test_inline_length_limit_whatever_the_chunking():
    line = b"SET k " + b"v" * INLINE_MAX_SIZE + b"\r\n"
    assert parse(line) == ([], "too big inline request")
    assert parse_chunks([line[:1000], line[1000:]]) == ([], "too big inline request")
    # the CR counts: Redis, reading byte by byte, gives up after 64 KiB without LF
    ok = b"SET k " + b"v" * (INLINE_MAX_SIZE - 7) + b"\r\n"
    assert parse(ok) == ([[b"SET", b"k", b"v" * (INLINE_MAX_SIZE - 7)]], None)
    assert parse(b"SET k " + b"v" * (INLINE_MAX_SIZE - 6) + b"\r\n") == ([], "too big inline request")


def test_header_length_limits():
    assert parse(b"*" + b"1" * (INLINE_MAX_SIZE + 1)) == ([], "too big mbulk count string")
    assert parse(b"*1\r\n$" + b"1" * (INLINE_MAX_SIZE + 1)) == ([], "too big bulk count string")
    assert parse(b"*" + b"1" * INLINE_MAX_SIZE + b"\r\n") == ([], "too big mbulk count string")
    assert parse(b"*" + b"1" * 50) == ([], None)           # still waiting for its CR


def test_bulk_array_and_command_limits():
    limits = dict(max_bulk_length=10, max_array_length=3, max_command_length=25)
    assert parse(multibulk(b"x" * 10), **limits) == ([[b"x" * 10]], None)
    assert parse(b"*1\r\n$11\r\n", **limits) == ([], "invalid bulk length")
    assert parse(multibulk(b"a", b"b", b"c"), **limits) == ([[b"a", b"b", b"c"]], None)
    assert parse(b"*4\r\n", **limits) == ([], "invalid multibulk length")
    assert parse(b"*3\r\n$10\r\n" + b"x" * 10 + b"\r\n$10\r\n" + b"y" * 10 + b"\r\n$6\r\n",
                 **limits) == ([], "too big command")
    # the limit is checked on the header, before any of the data arrives
    assert parse(b"*3\r\n$10\r\n" + b"x" * 10 + b"\r\n$10\r\n" + b"y" * 10 + b"\r\n$5\r\n",
                 **limits) == ([], None)


def test_big_bulk_in_many_chunks_is_linear_and_exact():
    payload = bytes(range(256)) * 4096           # 1 MiB
    data = multibulk(b"SET", b"k", payload)
    chunks = [data[i:i + 1000] for i in range(0, len(data), 1000)]
    assert parse_chunks(chunks) == ([[b"SET", b"k", payload]], None)


def test_pending_bytes_counts_a_partial_command():
    parser = RespParser()
    parser.feed(b"*2\r\n$3\r\nGET\r\n$5\r\nab")
    assert parser.next_command() is None
    assert parser.pending_bytes == len(b"GET") + len(b"ab")   # arguments so far + unparsed bytes


# ---------------------------------------------------------------------- numbers and inline splitting

@pytest.mark.parametrize("text, value", [
    (b"0", 0), (b"1", 1), (b"-1", -1), (b"9223372036854775807", 2**63 - 1),
    (b"-9223372036854775808", -(2**63)), (b"9223372036854775808", None), (b"-0", None),
    (b"01", None), (b"+1", None), (b" 1", None), (b"1 ", None), (b"", None), (b"-", None),
    (b"1.5", None), (b"1e3", None), (b"\xd9\xa1", None), (b"00000000000000000001", None),
])
def test_parse_integer_is_redis_string2ll(text, value):
    assert parse_integer(text) == value


@pytest.mark.parametrize("line, args", [
    (b"set a b", [b"set", b"a", b"b"]),
    (b"  set\t a  ", [b"set", b"a"]),
    (b'set "a b" c', [b"set", b"a b", b"c"]),
    (b'set "\\x41\\x4a\\n\\r\\t\\b\\a\\"\\\\\\q" x', [b"set", b"AJ\n\r\t\b\a\"\\q", b"x"]),
    (b'set "\\x4" x', [b"set", b"x4", b"x"]),
    (b"set 'it\\'s' 'a\\nb'", [b"set", b"it's", b"a\\nb"]),
    (b'set "" \'\'', [b"set", b"", b""]),
    (b'a"b c" d', [b"ab c", b"d"]),
    (b'a"b c"d', None),
    (b"a\vb", [b"a\vb"]),
    (b"a \vb", [b"a", b"b"]),
    (b"a\x00b c", [b"a"]),
    (b"", []),
    (b'"unterminated', None),
    (b"'unterminated", None),
    (b'"a"b', None),
])
def test_split_inline_is_redis_sdssplitargs(line, args):
    assert split_inline(line) == args


def quote(arg: bytes) -> bytes:
    """redis-cli style quoting: every byte as \\xHH."""
    return b'"' + b"".join(b"\\x%02x" % byte for byte in arg) + b'"'


@FAST
@given(st.lists(st.binary(max_size=20), min_size=1, max_size=6))
def test_quoted_inline_round_trip(args):
    assert split_inline(b" ".join(quote(arg) for arg in args)) == args


# ---------------------------------------------------------------------- encoders

def test_encoders():
    assert simple_string("OK") == b"+OK\r\n"
    assert simple_string(b"a\r\nb") == b"+a  b\r\n"
    assert error_reply("syntax error") == b"-ERR syntax error\r\n"
    assert error_reply("-WRONGTYPE Operation") == b"-WRONGTYPE Operation\r\n"
    assert error_reply(b"bad\nline") == b"-ERR bad line\r\n"
    assert [integer_reply(n) for n in (-3, -2, 0, 1021, 1022, 10**18)] == [
        b":-3\r\n", b":-2\r\n", b":0\r\n", b":1021\r\n", b":1022\r\n", b":%d\r\n" % 10**18]
    assert bulk_reply(b"") == b"$0\r\n\r\n"
    assert bulk_reply(None) == b"$-1\r\n"
    assert array_reply(None) == b"*-1\r\n"
    assert array_reply([]) == b"*0\r\n"
    assert encode([b"a", 1, None, ["x", []]]) == b"*4\r\n$1\r\na\r\n:1\r\n$-1\r\n*2\r\n$1\r\nx\r\n*0\r\n"
    with pytest.raises(TypeError):
        encode(True)
    with pytest.raises(TypeError):
        encode(1.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- hypothesis: chunking and robustness

inline_safe = st.binary(min_size=1, max_size=12).filter(
    lambda a: not any(c in a for c in b" \t\n\r\v\f\"'\x00") and not a.startswith(b"*"))
any_arg = st.binary(max_size=40)


@st.composite
def command_streams(draw) -> Tuple[bytes, List[List[bytes]]]:
    """A pipeline of commands, each written as multibulk or inline (plus
    empty requests that are no command), and the commands it holds."""
    data, expected = b"", []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["multibulk", "inline", "quoted", "empty"]))
        if kind == "multibulk":
            args = draw(st.lists(any_arg, min_size=1, max_size=5))
            data += multibulk(*args)
        elif kind == "inline":
            args = draw(st.lists(inline_safe, min_size=1, max_size=5))
            data += b" ".join(args) + draw(st.sampled_from([b"\r\n", b"\n"]))
        elif kind == "quoted":
            args = draw(st.lists(any_arg, min_size=1, max_size=4))
            data += b" ".join(quote(arg) for arg in args) + b"\r\n"
        else:
            data += draw(st.sampled_from([b"\r\n", b"\n", b"*0\r\n", b"*-1\r\n"]))
            continue
        expected.append(args)
    return data, expected


@FAST
@given(command_streams(), st.lists(st.integers(min_value=0), max_size=12))
def test_any_chunking_gives_the_same_commands(stream, cuts):
    data, expected = stream
    assert parse(data) == (expected, None)
    assert parse_chunks(split_at(data, cuts)) == (expected, None)


def test_byte_at_a_time_gives_the_same_commands():
    data = multibulk(b"SET", b"key", b"x" * 300) + b'inline "quoted arg" x\r\n' + multibulk(b"GET", b"key")
    assert parse_chunks([data[i:i + 1] for i in range(len(data))]) == parse(data)


# Mutated streams: valid pipelines with bytes replaced, inserted or cut.
@st.composite
def mangled_streams(draw) -> bytes:
    data = bytearray(draw(command_streams())[0] or b"PING\r\n")
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["replace", "insert", "cut"]))
        byte = draw(st.sampled_from(list(b"*$\r\n-0123456789 \"'\\x") + [0, 255]))
        if action == "replace" and position < len(data):
            data[position] = byte
        elif action == "insert":
            data.insert(position, byte)
        else:
            del data[position:]
    return bytes(data)


SMALL_LIMITS = dict(max_bulk_length=30, max_array_length=6, max_inline_length=40, max_command_length=60)


@FAST
@given(st.one_of(mangled_streams(), st.binary(max_size=200)), st.lists(st.integers(min_value=0), max_size=10),
       st.booleans())
def test_bad_input_only_raises_protocol_error_and_chunking_does_not_matter(data, cuts, small):
    limits = SMALL_LIMITS if small else {}
    whole = parse(data, **limits)        # raises nothing but ProtocolError (caught in drain)
    assert parse_chunks(split_at(data, cuts), **limits) == whole
    assert parse_chunks([data[i:i + 1] for i in range(len(data))], **limits) == whole
    for command in whole[0]:
        assert command and all(isinstance(arg, bytes) for arg in command)
