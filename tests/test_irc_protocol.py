"""The IRC parser and formatter, sans-I/O: no input raises, format -> parse
round trips, the 512-byte rule both ways, chunked feeding equals whole
feeding (hypothesis splits and byte at a time), bounded memory."""

from __future__ import annotations

from typing import List

import pytest
from hypothesis import given, settings, strategies as st

from gsocket.chat.irc_protocol import (
    MAX_CONTENT, MAX_MESSAGE, IrcSplitter, Message, TooLong, decode, format_message, format_split,
    parse,
)

# ---------------------------------------------------------------------- parse


def test_parse_the_rfc_shapes() -> None:
    assert parse(b"NICK alice") == Message("NICK", ("alice",))
    assert parse(b"privmsg #lobby :hello there") == Message("PRIVMSG", ("#lobby", "hello there"))
    assert parse(b":alice!a@h PRIVMSG bob :hi") == Message("PRIVMSG", ("bob", "hi"), "alice!a@h")
    assert parse(b"USER guest 0 * :Real Name") == Message("USER", ("guest", "0", "*", "Real Name"))
    assert parse(b"PING :") == Message("PING", ("",))
    assert parse(b"PING") == Message("PING")
    assert parse(b"MODE  #x   +n ") == Message("MODE", ("#x", "+n"))       # runs of spaces
    assert parse(b"@time=x;y :p CAP LS 302") == Message("CAP", ("LS", "302"), "p")   # tags skipped
    assert parse(b"PRIVMSG #a ::-) colon") == Message("PRIVMSG", ("#a", ":-) colon"))


def test_parse_nothing_to_parse() -> None:
    for line in (b"", b"   ", b":prefix", b":prefix   ", b"@tags", b"@tags :p"):
        assert parse(line) is None, line


def test_fifteenth_parameter_takes_the_rest() -> None:
    words = " ".join(str(i) for i in range(20))
    message = parse(f"CMD {words}".encode())
    assert message is not None and len(message.params) == 15
    assert message.params[:14] == tuple(str(i) for i in range(14))
    assert message.params[14] == "14 15 16 17 18 19"


def test_decode_falls_back_to_latin1() -> None:
    assert decode("héllo".encode()) == "héllo"
    assert decode("héllo".encode("latin-1")) == "héllo"
    assert parse("PRIVMSG #a :ça va".encode("latin-1")) == Message("PRIVMSG", ("#a", "ça va"))


def test_nul_and_cr_inside_a_line_are_removed() -> None:
    assert parse(b"PRIVMSG #a :x\x00y\rz") == Message("PRIVMSG", ("#a", "xyz"))


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_parse_never_raises(data: bytes) -> None:
    message = parse(data)
    if message is not None:
        assert message.command and " " not in message.command
        assert len(message.params) <= 15
        assert all(isinstance(p, str) for p in message.params)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_parse_text_never_raises(text: str) -> None:
    parse(text)


# ---------------------------------------------------------------------- format

_commands = st.one_of(st.from_regex(r"[A-Z]{1,10}\Z", fullmatch=True),
                      st.from_regex(r"[0-9]{3}\Z", fullmatch=True))
_safe = st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",))
_middle = st.text(_safe, min_size=1, max_size=20).filter(lambda s: " " not in s and not s.startswith(":"))
_trailing = st.text(_safe, max_size=60)
_prefix = st.one_of(st.none(), st.text(_safe, min_size=1, max_size=20).filter(lambda s: " " not in s))


@settings(max_examples=500)
@given(_commands, st.lists(_middle, max_size=14), st.one_of(st.none(), _trailing), _prefix)
def test_format_then_parse_round_trips(command: str, middle: List[str], trailing, prefix) -> None:
    params = tuple(middle) + (() if trailing is None else (trailing,))
    data = format_message(command, *params, prefix=prefix)
    assert data.endswith(b"\r\n") and data.count(b"\n") == 1 and len(data) <= MAX_MESSAGE
    assert parse(data[:-2]) == Message(command, params, prefix)
    assert format_split(command, *params, prefix=prefix) == [data]


def test_format_adds_the_colon_when_needed_or_after_other_parameters() -> None:
    assert format_message("PRIVMSG", "#a", "hi") == b"PRIVMSG #a :hi\r\n"     # ii reads text after ':'
    assert format_message("JOIN", "#a") == b"JOIN #a\r\n"
    assert format_message("PRIVMSG", "#a", "hi there", prefix="n!u@h") == b":n!u@h PRIVMSG #a :hi there\r\n"
    assert format_message("PONG", "srv", "") == b"PONG srv :\r\n"
    assert format_message("X", ":)") == b"X ::)\r\n"
    assert format_message("001", "alice", "Welcome") == b"001 alice :Welcome\r\n"


@pytest.mark.parametrize("command, params, prefix", [
    ("", (), None), ("BAD CMD", (), None), ("@X", (), None), ("12", (), None),
    ("PRIVMSG", ("a b", "x"), None), ("PRIVMSG", ("", "x"), None), ("PRIVMSG", (":a", "x"), None),
    ("PRIVMSG", ("#a", "line\r\nQUIT"), None), ("PRIVMSG", ("#a", "nul\0"), None),
    ("X", (), "a b"), ("X", (), ""), ("X", tuple("p" * 16), None),
])
def test_format_refuses_what_is_no_message(command, params, prefix) -> None:
    with pytest.raises(ValueError):
        format_message(command, *params, prefix=prefix)


def test_format_refuses_over_512_bytes_and_split_cuts() -> None:
    text = "a " + "x" * (MAX_CONTENT - len("PRIVMSG #a :a "))
    assert len(format_message("PRIVMSG", "#a", text)) == MAX_MESSAGE
    with pytest.raises(ValueError):
        format_message("PRIVMSG", "#a", text + "x")
    parts = format_split("PRIVMSG", "#a", text + "x")
    assert len(parts) == 2 and all(len(p) <= MAX_MESSAGE for p in parts)


@settings(max_examples=300)
@given(_prefix, st.text(_safe, max_size=3000))
def test_split_messages_fit_and_rejoin(prefix, text: str) -> None:
    parts = format_split("PRIVMSG", "#lobby", text, prefix=prefix)
    assert parts and all(len(p) <= MAX_MESSAGE and p.endswith(b"\r\n") for p in parts)
    messages = [parse(p[:-2]) for p in parts]
    assert all(m is not None and m.command == "PRIVMSG" and m.params[0] == "#lobby"
               and m.prefix == prefix for m in messages)
    assert "".join(m.params[1] for m in messages if m is not None) == text   # cut at characters only


# ---------------------------------------------------------------------- framing


def test_lf_and_crlf_and_partial_lines() -> None:
    splitter = IrcSplitter()
    assert splitter.feed(b"NICK a\r\nUSER b 0 * :c\nPI") == [b"NICK a", b"USER b 0 * :c"]
    assert splitter.pending == 2
    assert splitter.feed(b"NG x\r") == []
    assert splitter.feed(b"\n") == [b"PING x"]
    assert splitter.feed(b"\n\r\n") == [b"", b""]


def test_the_512_byte_rule() -> None:
    splitter = IrcSplitter()
    fits = b"P" * MAX_CONTENT                            # 510 bytes + CR LF = 512
    assert splitter.feed(fits + b"\r\n") == [fits]
    assert splitter.feed(fits + b"\n") == [fits]
    over = b"P" * (MAX_CONTENT + 1)
    assert splitter.feed(over + b"\r\nNEXT\r\n") == [TooLong(MAX_CONTENT + 1), b"NEXT"]
    huge = b"Q" * 100_000
    assert splitter.feed(huge) == [] and splitter.pending <= MAX_CONTENT + 1   # bounded
    assert splitter.feed(huge + b"\r") == [] and splitter.pending <= MAX_CONTENT + 1
    assert splitter.feed(b"\nAFTER\n") == [TooLong(200_000), b"AFTER"]


def test_a_cr_held_back_at_the_limit() -> None:
    splitter = IrcSplitter()
    fits = b"P" * MAX_CONTENT
    assert splitter.feed(fits + b"\r") == [] and splitter.pending == MAX_CONTENT + 1
    assert splitter.feed(b"\n") == [fits]
    assert splitter.feed(fits + b"\r") == []
    assert splitter.feed(b"x\n") == [TooLong(MAX_CONTENT + 2)]     # the CR was not a CR LF


_pieces = st.lists(st.one_of(
    st.sampled_from([b"\n", b"\r\n", b"\r", b"NICK a", b"PRIVMSG #x :hi"]),
    st.binary(max_size=40),
    st.builds(lambda n, c: c * n, st.integers(500, 1200), st.sampled_from([b"a", b"\r", b" "])),
), max_size=30)


@settings(max_examples=300)
@given(_pieces, st.lists(st.integers(0, 2000), max_size=20))
def test_chunked_feeding_equals_whole_feeding(pieces: List[bytes], cuts: List[int]) -> None:
    data = b"".join(pieces)
    whole = IrcSplitter()
    expected = whole.feed(data)
    points = sorted({min(c, len(data)) for c in cuts})
    chunked = IrcSplitter()
    got = []
    previous = 0
    for point in points + [len(data)]:
        got += chunked.feed(data[previous:point])
        assert chunked.pending <= MAX_CONTENT + 1
        previous = point
    assert got == expected
    assert chunked.pending == whole.pending
    # And byte at a time.
    single = IrcSplitter()
    one_by_one = []
    for index in range(len(data)):
        one_by_one += single.feed(data[index:index + 1])
    assert one_by_one == expected
    # Every line out is at most 510 bytes, with no LF in it.
    for item in expected:
        if isinstance(item, bytes):
            assert len(item) <= MAX_CONTENT and b"\n" not in item
        else:
            assert item.length > MAX_CONTENT
