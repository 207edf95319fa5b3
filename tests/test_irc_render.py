"""The IRC door's renderer without sockets: chat events in, IRC bytes out.
Every message fits the RFC's 512 bytes, long texts are cut and rejoin to
the original, and no event text can make it raise or inject a command."""

from __future__ import annotations

from typing import List

from hypothesis import given, settings, strategies as st

from gsocket.chat.events import History, Left, Members, Private, Renamed, Said, Topic
from gsocket.chat.irc_protocol import MAX_MESSAGE, Message, parse
from gsocket.chat.irc_render import ACTION, IrcRenderer, channel, room_of

NICK = "n" * 32                                   # the longest nick the chat allows


def messages(data: bytes) -> List[Message]:
    assert data.endswith(b"\r\n")
    raw_lines = data[:-2].split(b"\r\n")
    assert all(len(raw) + 2 <= MAX_MESSAGE for raw in raw_lines), [len(raw) for raw in raw_lines]
    parsed = [parse(raw) for raw in raw_lines]
    assert all(message is not None for message in parsed)
    return parsed  # type: ignore[return-value]


def test_channels_and_rooms() -> None:
    assert channel("lobby") == "#lobby"
    assert room_of("#lobby") == "lobby"
    assert room_of("lobby") is None


def test_a_long_message_is_cut_and_rejoins() -> None:
    text = "word " * 300 + "é" * 200                  # 1,900 bytes, multi-byte at the end
    sent = messages(IrcRenderer().event(Said("lobby", NICK, text), "me"))
    assert len(sent) >= 4
    assert all(m.command == "PRIVMSG" and m.params[0] == "#lobby" for m in sent)
    assert all(m.prefix is not None and m.prefix.startswith(NICK + "!") for m in sent)
    assert "".join(m.params[1] for m in sent) == text


def test_a_long_action_is_an_action_in_every_piece() -> None:
    text = "x" * 1200
    sent = messages(IrcRenderer().event(Said("lobby", NICK, text, action=True), "me"))
    assert len(sent) == 3
    assert all(m.params[1].startswith(ACTION) and m.params[1].endswith("\x01") for m in sent)
    assert "".join(m.params[1][len(ACTION):-1] for m in sent) == text


def test_names_are_split_over_353_lines() -> None:
    nicks = [f"{index:0>32}" for index in range(100)]
    sent = messages(IrcRenderer().event(Members("lobby", tuple(nicks)), "me"))
    assert [m.command for m in sent[:-1]] == ["353"] * (len(sent) - 1) and len(sent) > 2
    assert sent[-1].command == "366" and sent[-1].params[1] == "#lobby"
    assert [nick for m in sent[:-1] for nick in m.params[-1].split()] == nicks


def test_leaving_parting_and_quitting() -> None:
    renderer = IrcRenderer()
    part, = messages(renderer.event(Left("lobby", "bob"), "me"))
    assert (part.command, part.params) == ("PART", ("#lobby",))
    part, = messages(renderer.event(Left("lobby", "bob", "left: see you"), "me"))
    assert (part.command, part.params) == ("PART", ("#lobby", "see you"))
    quit_, = messages(renderer.event(Left("lobby", "bob", "quit: off now"), "me"))
    assert (quit_.command, quit_.params) == ("QUIT", ("Quit: off now",))
    quit_, = messages(renderer.event(Left("lobby", "bob", "disconnected"), "me"))
    assert quit_.params == ("Disconnected",)


def test_renames_topics_private_and_history() -> None:
    renderer = IrcRenderer()
    nick, = messages(renderer.event(Renamed("old", "new"), "me"))
    assert nick.prefix.startswith("old!") and (nick.command, nick.params) == ("NICK", ("new",))
    topic, = messages(renderer.event(Topic("lobby", "bob", "hello all"), "me"))
    assert (topic.command, topic.params) == ("TOPIC", ("#lobby", "hello all"))
    pm, = messages(renderer.event(Private("bob", "me", "psst"), "me"))
    assert pm.prefix.startswith("bob!") and pm.params == ("me", "psst")
    history = messages(renderer.event(History("lobby", (Said("lobby", "a", "one"),
                                                        Said("lobby", "b", "two", True))), "me"))
    assert [m.params for m in history] == [("#lobby", "[history] <a> one"),
                                           ("#lobby", "[history] * b two")]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=1500), st.booleans())
def test_no_text_raises_or_injects(text: str, action: bool) -> None:
    renderer = IrcRenderer()
    for event in (Said("lobby", NICK, text, action), Private(NICK, "me", text, action),
                  Topic("lobby", NICK, text), Left("lobby", NICK, "left: " + text)):
        data = renderer.event(event, "me")
        sent = messages(data)
        assert {m.command for m in sent} <= {"PRIVMSG", "TOPIC", "PART"}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=600))
def test_no_client_given_word_raises(word: str) -> None:
    renderer = IrcRenderer()
    end_of_who, = messages(renderer.who("me", word, []))
    assert end_of_who.command == "315" and " " not in end_of_who.params[1]
    pong, = messages(renderer.server("PONG", renderer.server_name, word))
    assert pong.command == "PONG"
    assert messages(renderer.numeric("401", "me", word[:100], "No such nick/channel"))[0].command == "401"
