"""The chat's sans-I/O parts without sockets: framing, parser, rendering,
flood policy, the core's rooms and nicks, the codec between nodes."""

from __future__ import annotations

from typing import List

import pytest
from hypothesis import given, settings, strategies as st

from gsocket.chat.codec import decode, decode_said, encode, encode_said
from gsocket.chat.core import ChatCore, Kick
from gsocket.chat.events import (
    Error, ErrorCode, Help, History, Joined, Left, Members, Notice, Private, Renamed, RoomList,
    Said, Welcome,
)
from gsocket.chat.limits import FloodPolicy
from gsocket.chat.protocol import (
    MAX_LINE, JoinCmd, LineSplitter, LineTooLong, MeCmd, MsgCmd, NickCmd, QuitCmd, SayCmd,
    decode_line, parse_command,
)
from gsocket.chat.render import render_bytes, render_lines


class Recorder:
    """A session that keeps what it was sent (the door interface)."""

    door = "test"

    def __init__(self, peer: str = "test:1") -> None:
        self.peer = peer
        self.events: List[object] = []
        self.closed: List[str] = []

    def deliver(self, event: object) -> None:
        self.events.append(event)

    def close(self, reason: str) -> None:
        self.closed.append(reason)


def run(core: ChatCore, outbox) -> None:
    for event, sessions in outbox.deliveries:
        for session in sessions:
            session.deliver(event)
    for session, reason in outbox.closing:
        session.close(reason)


def join(core: ChatCore):
    session = Recorder()
    user, outbox = core.connect(session)
    run(core, outbox)
    return user, session


# ---------------------------------------------------------------------- framing

def test_splitter_lf_crlf_and_partial() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\r\nb\nc") == [b"a", b"b"]
    assert splitter.pending == 1
    assert splitter.feed(b"\r") == []
    assert splitter.feed(b"\n\n") == [b"c", b""]


def test_splitter_limit_exact_and_over() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"x" * MAX_LINE + b"\r\n") == [b"x" * MAX_LINE]
    with pytest.raises(LineTooLong):
        LineSplitter().feed(b"x" * (MAX_LINE + 1) + b"\n")
    partial = LineSplitter()
    partial.feed(b"y" * MAX_LINE)
    with pytest.raises(LineTooLong):      # known too long before any LF arrives
        partial.feed(b"yy")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=60).filter(lambda b: b"\n" not in b and not b.endswith(b"\r")),
                max_size=20),
       st.lists(st.integers(min_value=1, max_value=50), max_size=30), st.booleans())
def test_splitter_any_chunking_same_lines(lines: List[bytes], cuts: List[int], crlf: bool) -> None:
    data = b"".join(line + (b"\r\n" if crlf else b"\n") for line in lines)
    splitter = LineSplitter()
    got: List[bytes] = []
    position = 0
    for cut in cuts:
        got += splitter.feed(data[position:position + cut])
        position += cut
    got += splitter.feed(data[position:])
    assert got == lines


def test_decode_line() -> None:
    assert decode_line("héllo".encode()) == "héllo"
    assert decode_line(b"\xff\xfe") is None


# ---------------------------------------------------------------------- parser

@pytest.mark.parametrize("line, expected", [
    ("hello", SayCmd("hello")),
    ("//slash", SayCmd("/slash")),
    ("/nick alice", NickCmd("alice")),
    ("/NICK Bob_-1", NickCmd("Bob_-1")),
    ("/join dev", JoinCmd("dev")),
    ("/join #dev", JoinCmd("dev")),
    ("/msg bob hi there", MsgCmd("bob", "hi there")),
    ("/me waves", MeCmd("waves")),
    ("/quit", QuitCmd()),
    ("say \x1b[2Jthis", SayCmd("say [2Jthis")),
    ("", None), ("   ", None),
])
def test_parse(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize("line, code", [
    ("/nick", ErrorCode.USAGE), ("/nick a b", ErrorCode.USAGE), ("/nick " + "a" * 33, ErrorCode.BAD_NICK),
    ("/nick al!ce", ErrorCode.BAD_NICK), ("/join", ErrorCode.USAGE), ("/join bad.room", ErrorCode.BAD_ROOM),
    ("/msg bob", ErrorCode.USAGE), ("/msg", ErrorCode.USAGE), ("/me", ErrorCode.USAGE),
    ("/frobnicate", ErrorCode.UNKNOWN_COMMAND), ("/", ErrorCode.UNKNOWN_COMMAND),
])
def test_parse_errors(line: str, code: str) -> None:
    result = parse_command(line)
    assert isinstance(result, Error) and result.code == code


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_parser_never_raises(line: str) -> None:
    result = parse_command(line)
    for rendered in ([] if result is None or not isinstance(result, Error) else render_lines(result)):
        assert "\n" not in rendered


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_bytes_to_commands_never_raise(data: bytes) -> None:
    core = ChatCore()
    user, _ = join(core)
    try:
        lines = LineSplitter(64).feed(data)
    except LineTooLong:
        return
    for raw in lines:
        text = decode_line(raw)
        if text is not None:
            run(core, core.handle_line(user, text))
            assert user.nick and user.rooms


# ---------------------------------------------------------------------- rendering

def test_render_section_8_formats() -> None:
    assert render_lines(Said("lobby", "bob", "hi")) == ["[lobby] bob: hi"]
    assert render_lines(Said("lobby", "bob", "waves", action=True)) == ["[lobby] * bob waves"]
    assert render_lines(Private("bob", "alice", "psst")) == ["[pm] bob: psst"]
    assert render_lines(History("dev", (Said("dev", "a", "x"),))) == ["* [dev] a: x"]
    assert render_lines(Error("x", "bad")) == ["! bad"]
    for event in (Joined("dev", "a"), Left("dev", "a", "quit"), Renamed("a", "b"), Welcome("a", "lobby"),
                  Members("dev", ("a", "b")), RoomList((("dev", 2),)), Notice("n"),
                  Help((("/x", "y"),))):
        assert all(line.startswith("* ") for line in render_lines(event)), event
    assert "guest1" in render_lines(Welcome("guest1", "lobby"))[0]
    assert "lobby" in render_lines(Welcome("guest1", "lobby"))[0]
    said = Said("r", "n", "t")
    assert render_bytes(said) == b"[r] n: t\n" and render_bytes(said) is render_bytes(said)


# ---------------------------------------------------------------------- flood policy

def test_flood_burst_then_throttle_then_disconnect() -> None:
    policy = FloodPolicy(rate=20, burst=5, patience=2.0)
    verdicts = [policy.line(0.0) for _ in range(5)]
    assert all(v.delay == 0 and not v.warn for v in verdicts)
    sixth = policy.line(0.0)
    assert sixth.warn and sixth.delay == pytest.approx(1 / 20)
    now = 0.0
    verdict = sixth
    while not verdict.disconnect:             # keeps sending as fast as throttled: 20/s
        now += 1 / 20
        verdict = policy.line(now)
        assert not verdict.warn
        assert verdict.disconnect or verdict.delay > 0
    assert now == pytest.approx(2.0, abs=0.11)


def test_flood_calm_client_is_never_throttled() -> None:
    policy = FloodPolicy(rate=20, burst=5, patience=1.0)
    for index in range(1000):
        assert policy.line(index * 0.06) == (0.0, False, False)   # 16.7 lines/s


def test_flood_recovers_after_a_pause() -> None:
    policy = FloodPolicy(rate=10, burst=3, patience=1.0)
    for _ in range(4):
        policy.line(0.0)
    assert policy.throttled
    assert policy.line(5.0).delay == 0 and not policy.throttled


# ---------------------------------------------------------------------- the core

def test_connect_greets_with_guest_nick_in_lobby_and_history_first() -> None:
    core = ChatCore()
    first, first_session = join(core)
    assert first.nick == "guest1" and first.rooms == ["lobby"]
    assert first_session.events == [Welcome("guest1", "lobby")]
    run(core, core.say(first, "hello"))
    second, second_session = join(core)
    assert second_session.events == [History("lobby", (Said("lobby", "guest1", "hello"),)),
                                     Welcome("guest2", "lobby")]
    assert first_session.events[-1] == Joined("lobby", "guest2")


def test_say_not_echoed_and_history_capped() -> None:
    core = ChatCore(history_size=3)
    alice, alice_s = join(core)
    bob, bob_s = join(core)
    alice_s.events.clear()
    for index in range(5):
        run(core, core.say(alice, f"m{index}"))
    assert alice_s.events == []
    assert bob_s.events[-5:] == [Said("lobby", "guest1", f"m{i}") for i in range(5)]
    carol, carol_s = join(core)
    assert carol_s.events[0] == History("lobby", tuple(Said("lobby", "guest1", f"m{i}") for i in (2, 3, 4)))


def test_nicks_unique_case_insensitive() -> None:
    core = ChatCore()
    alice, alice_s = join(core)
    bob, bob_s = join(core)
    run(core, core.handle_line(alice, "/nick Alice"))
    assert alice.nick == "Alice" and bob_s.events[-1] == Renamed("guest1", "Alice", ("lobby",))
    run(core, core.handle_line(bob, "/nick alice"))
    assert bob_s.events[-1] == Error(ErrorCode.NICK_TAKEN, "nick alice is taken") and bob.nick == "guest2"
    run(core, core.handle_line(alice, "/nick alice"))         # a case change of one's own nick
    assert alice.nick == "alice"
    run(core, core.handle_line(bob, "/nick guest1"))          # freed by the rename
    assert bob.nick == "guest1"
    third, _ = join(core)
    assert third.nick == "guest3"


def test_join_leaves_the_room_and_who_rooms() -> None:
    core = ChatCore()
    alice, alice_s = join(core)
    bob, bob_s = join(core)
    carol, carol_s = join(core)
    run(core, core.handle_line(alice, "/join Dev"))
    assert alice.rooms == ["Dev"]
    assert bob_s.events[-1] == Left("lobby", "guest1", "left")
    run(core, core.handle_line(bob, "/join dev"))              # same room, any case
    assert alice_s.events[-1] == Joined("Dev", "guest2")
    run(core, core.handle_line(bob, "/who"))
    assert bob_s.events[-1] == Members("Dev", ("guest1", "guest2"))
    run(core, core.handle_line(carol, "/rooms"))
    assert carol_s.events[-1] == RoomList((("Dev", 2), ("lobby", 1)))
    run(core, core.handle_line(carol, "/join lobby"))
    assert carol_s.events[-1] == Notice("you are already in lobby")


def test_private_messages() -> None:
    core = ChatCore()
    alice, alice_s = join(core)
    bob, bob_s = join(core)
    run(core, core.handle_line(alice, "/msg GUEST2 psst"))
    assert bob_s.events[-1] == Private("guest1", "guest2", "psst")
    run(core, core.handle_line(alice, "/msg nobody hi"))
    assert alice_s.events[-1] == Error(ErrorCode.NO_SUCH_NICK, "no such nick: nobody")
    run(core, core.handle_line(alice, "/msg guest1 me"))
    assert alice_s.events[-1].code == ErrorCode.NO_SUCH_NICK


def test_quit_disconnect_and_kick() -> None:
    core = ChatCore()
    alice, alice_s = join(core)
    bob, bob_s = join(core)
    run(core, core.handle_line(alice, "/quit"))
    assert alice_s.closed == ["quit"]
    run(core, core.disconnect(alice, "quit"))
    assert bob_s.events[-1] == Left("lobby", "guest1", "quit")
    assert core.disconnect(alice).deliveries == []              # twice is harmless
    assert core.user("guest1") is None and core.members("lobby") == ["guest2"]
    outbox = core.kick("guest2", "kicked")
    assert outbox is not None
    run(core, outbox)
    assert bob_s.closed == ["kicked"] and core.kick("nobody") is None


def test_irc_style_operations_several_rooms() -> None:
    core = ChatCore()
    alice, alice_s = join(core)
    bob, bob_s = join(core)
    run(core, core.join(alice, "#dev", leave_others=False))
    assert alice.rooms == ["lobby", "dev"]
    run(core, core.say(alice, "in lobby", room="lobby"))
    assert bob_s.events[-1] == Said("lobby", "guest1", "in lobby")
    run(core, core.say(bob, "not a member", room="dev"))
    assert bob_s.events[-1].code == ErrorCode.BAD_ROOM
    run(core, core.part(alice, "#dev"))
    assert alice.rooms == ["lobby"] and alice_s.events[-1] == Left("dev", "guest1", "left")


def test_receive_remote_events() -> None:
    core = ChatCore()
    alice, alice_s = join(core)
    run(core, core.receive(Said("lobby", "remote", "hi")))
    run(core, core.receive(Said("elsewhere", "remote", "not for us")))
    run(core, core.receive(Private("remote", "GUEST1", "psst")))
    run(core, core.receive(Notice("maintenance")))
    run(core, core.receive(Kick("guest1", "kicked")))
    assert alice_s.events[1:] == [Said("lobby", "remote", "hi"), Private("remote", "GUEST1", "psst"),
                                  Notice("maintenance"), Notice("you were kicked")]
    assert alice_s.closed == ["kicked"]


def test_room_memory_is_bounded() -> None:
    from gsocket.chat import core as core_module
    core = ChatCore()
    alice, _ = join(core)
    for index in range(core_module.MAX_ROOMS + 50):
        run(core, core.join(alice, f"r{index}"))
        run(core, core.say(alice, "x"))
    assert len(core.history) <= core_module.MAX_ROOMS
    assert len(core.room_names) <= core_module.MAX_ROOMS + 1


# ---------------------------------------------------------------------- codec

@pytest.mark.parametrize("event", [
    Said("lobby", "a", "hé", True), Private("a", "b", "x"), Joined("dev", "a"), Left("dev", "a", "quit"),
    Renamed("a", "b", ("dev", "lobby")), Notice("n"), Kick("a", "kicked"),
])
def test_codec_round_trip(event: object) -> None:
    assert decode(encode(event, "node1")) == ("node1", event)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=100), st.text(max_size=100)))
def test_codec_decode_never_raises(data: object) -> None:
    decode(data)
    decode_said(data)


def test_history_entry_round_trip() -> None:
    said = Said("dev", "bob", "x")
    assert decode_said(encode_said(said)) == said
    assert decode_said('{"room": "bad room", "nick": "b", "text": "x"}') is None
