"""The chat's IRC door with a raw socket: registration, every command and
error numeric the door answers, and IRC users talking with line-protocol
users (the real `ii` client is in test_chat_irc_ii.py, Redis scale-out in
test_chat_redis.py)."""

from __future__ import annotations

from typing import Any, Iterator, List

import gevent
import pytest

from _irc_client import IrcClient
from chat_helpers import ChatClient, WsUser
from gsocket.chat.server import SHUTDOWN_NOTICE, ChatServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def chat(driver) -> Iterator[Any]:
    servers: List[ChatServer] = []
    clients: List[Any] = []

    class Chat:
        def server(self, web: bool = False, **irc_options: Any) -> ChatServer:
            server = ChatServer("127.0.0.1", 0, irc=0, irc_options=irc_options, web=0 if web else None)
            server.start()
            servers.append(server)
            return server

        def irc(self, server: ChatServer, nick: str = "", cap: bool = True) -> IrcClient:
            assert server.irc_address is not None
            client = IrcClient(server.irc_address[1])
            clients.append(client)
            if nick:
                client.register(nick, cap=cap)
            return client

        def line(self, server: ChatServer, nick: str) -> ChatClient:
            assert server.address is not None
            client = ChatClient(server.address[1])
            clients.append(client)
            client.greeting()
            client.send(f"/nick {nick}")
            assert client.expect("* ").endswith(f"is now known as {nick}")
            return client

    yield Chat()
    for client in clients:
        client.close()
    for server in servers:
        server.stop(grace=2)


def numerics(messages) -> List[str]:
    return [message.command for message in messages]


# ---------------------------------------------------------------------- registration

def test_registration_with_cap_negotiation(chat) -> None:
    server = chat.server()
    client = chat.irc(server)
    client.send("CAP LS 302", "NICK alice", "USER alice 0 * :Alice Liddell")
    assert client.next_is("CAP").params == ("*", "LS", "")
    assert client.sync() == []                     # nothing until CAP END
    client.send("CAP REQ :multi-prefix")
    assert client.next_is("CAP").params == ("alice", "NAK", "multi-prefix")
    client.send("CAP END")
    welcome = client.next_is("001")
    assert welcome.params[0] == "alice" and "alice!alice@" in welcome.params[-1]
    got = [client.message() for _ in range(7)]
    assert numerics(got) == ["002", "003", "004", "005", "375", "372", "372"]
    assert "CHANTYPES=#" in got[3].params and "NICKLEN=32" in got[3].params
    assert client.expect("376").params == ("alice", "End of /MOTD command.")


def test_registration_without_cap_and_without_motd(chat) -> None:
    server = chat.server(motd=None)
    client = chat.irc(server)
    got = client.register("bob", cap=False)
    assert numerics(got) == ["001", "002", "003", "004", "005", "422"]
    client.send("MOTD")
    assert client.next_is("422").params == ("bob", "MOTD File is missing")


def test_commands_before_registration(chat) -> None:
    server = chat.server()
    client = chat.irc(server)
    client.send("JOIN #lobby", "PRIVMSG #lobby :hi", "FROB")
    assert client.next_is("451").params == ("*", "You have not registered")
    assert client.next_is("451").params == ("*", "You have not registered")
    assert client.next_is("421").params == ("*", "FROB", "Unknown command")
    client.send("NICK")
    assert client.next_is("431").params == ("*", "No nickname given")
    client.send("NICK bad!nick")
    assert client.next_is("432").params[:2] == ("*", "bad!nick")
    client.send("USER onlyone")
    assert client.next_is("461").params == ("*", "USER", "Not enough parameters")
    client.send("PING :early")
    assert client.next_is("PONG").params[-1] == "early"
    client.register("carol", cap=False)
    client.send("USER carol 0 * :again")
    assert client.next_is("462").params == ("carol", "You may not reregister")


def test_one_nick_namespace_across_doors(chat) -> None:
    server = chat.server()
    chat.line(server, "dave")
    client = chat.irc(server)
    client.send("NICK DAVE", "USER x 0 * :x")
    assert client.next_is("433").params == ("*", "DAVE", "Nickname is already in use")
    client.send("NICK erin")
    assert client.next_is("001").params[0] == "erin"
    client.expect("376")
    # ... and the other way: the IRC nick is taken for the line protocol.
    liner = chat.line(server, "frank")
    liner.send("/nick Erin")
    assert liner.expect("! ") == "! nick Erin is taken"
    client.send("NICK frank")
    assert client.next_is("433").params == ("erin", "frank", "Nickname is already in use")
    client.send("NICK no.dots")
    assert client.next_is("432").params[:2] == ("erin", "no.dots")


# ---------------------------------------------------------------------- channels

def test_join_part_names_and_history(chat) -> None:
    server = chat.server()
    liner = chat.line(server, "liner")
    liner.send("before you came")
    irc = chat.irc(server, "ircy")
    assert sorted(irc.join("lobby")) == ["ircy", "liner"]
    history = irc.next_is("NOTICE")            # the room's history, after the names
    assert history.params == ("#lobby", "[history] <liner> before you came")
    liner.next_is("* ircy joined lobby")
    irc.send("JOIN #dev,#ops")
    assert irc.expect("JOIN").params == ("#dev",)
    assert irc.expect("353").params[-1] == "ircy"
    assert irc.expect("JOIN").params == ("#ops",)
    irc.expect("366")
    irc.send("JOIN #lobby")                    # already there: nothing
    assert irc.sync() == []
    irc.send("JOIN #bad.name", "JOIN lobby")
    assert irc.next_is("403").params == ("ircy", "#bad.name", "No such channel")
    assert irc.next_is("403").params == ("ircy", "lobby", "No such channel")
    irc.send("PART #lobby")
    part = irc.next_is("PART")
    assert part.prefix.startswith("ircy!") and part.params == ("#lobby",)
    liner.next_is("* ircy left lobby")
    irc.send("JOIN #lobby")
    liner.next_is("* ircy joined lobby")
    irc.send("PART #lobby :gone fishing")      # a reason goes to everyone
    assert irc.expect("PART").params == ("#lobby", "gone fishing")
    liner.next_is("* ircy left lobby (gone fishing)")
    irc.send("PART #lobby", "PART", "PART #no.such")
    assert irc.next_is("442").params == ("ircy", "#lobby", "You're not on that channel")
    assert irc.next_is("461").params == ("ircy", "PART", "Not enough parameters")
    assert irc.next_is("403").params[1] == "#no.such"
    irc.send("JOIN 0")                         # leave every channel
    assert sorted(irc.next_is("PART").params + irc.next_is("PART").params) == ["#dev", "#ops"]
    irc.send("NAMES #lobby")
    assert irc.next_is("353").params == ("ircy", "=", "#lobby", "liner")
    assert irc.next_is("366").params == ("ircy", "#lobby", "End of /NAMES list.")
    irc.send("NAMES")
    assert irc.next_is("366").params == ("ircy", "*", "End of /NAMES list.")


def test_channel_messages_both_ways(chat) -> None:
    server = chat.server()
    liner = chat.line(server, "liner")
    irc = chat.irc(server, "ircy")
    irc.join("lobby")
    liner.expect("* ircy joined lobby")
    irc.send("PRIVMSG #lobby :hello from IRC", "PRIVMSG #lobby :\x01ACTION waves\x01",
             "NOTICE #lobby :a notice")
    liner.next_is("[lobby] ircy: hello from IRC")
    liner.next_is("[lobby] * ircy waves")
    liner.next_is("[lobby] ircy: a notice")
    liner.send("hi IRC", "/me bows")
    said = irc.next_is("PRIVMSG")
    assert said.prefix.startswith("liner!") and said.params == ("#lobby", "hi IRC")
    assert irc.next_is("PRIVMSG").params == ("#lobby", "\x01ACTION bows\x01")
    irc.send("PRIVMSG #lobby :\x01VERSION\x01")   # other CTCP: nobody hears it
    liner.sync()
    assert not [line for line in liner.seen if "VERSION" in line]
    # A long message of a line user reaches IRC cut into messages of at most 512 bytes.
    long_text = " ".join(["word"] * 800)
    liner.send(long_text)
    pieces = []
    while sum(len(piece) for piece in pieces) < len(long_text.replace(" ", "")):
        pieces.append(irc.next_is("PRIVMSG").params[1].replace(" ", ""))
    assert "".join(pieces) == long_text.replace(" ", "") and len(pieces) > 1


def test_private_messages_and_message_errors(chat) -> None:
    server = chat.server()
    liner = chat.line(server, "liner")
    irc = chat.irc(server, "ircy")
    irc.send("PRIVMSG liner :psst", "PRIVMSG LINER :\x01ACTION winks\x01")
    liner.next_is("[pm] ircy: psst")
    liner.next_is("[pm] * ircy winks")
    liner.send("/msg ircy back at you")
    pm = irc.next_is("PRIVMSG")
    assert pm.prefix.startswith("liner!") and pm.params == ("ircy", "back at you")
    irc.send("PRIVMSG ircy :me myself")
    assert irc.next_is("PRIVMSG").params == ("ircy", "me myself")
    irc.send("PRIVMSG nobody :x", "PRIVMSG #lobby :not in it", "PRIVMSG #bad.room :x",
             "PRIVMSG", "PRIVMSG liner", "PRIVMSG bad!nick :x")
    assert irc.next_is("401").params == ("ircy", "nobody", "No such nick/channel")
    assert irc.next_is("404").params == ("ircy", "#lobby", "Cannot send to channel")
    assert irc.next_is("403").params == ("ircy", "#bad.room", "No such channel")
    assert irc.next_is("411").params == ("ircy", "No recipient given (PRIVMSG)")
    assert irc.next_is("412").params == ("ircy", "No text to send")
    assert irc.next_is("401").params[1] == "bad!nick"
    irc.send("NOTICE nobody :x", "NOTICE #lobby :x", "NOTICE")   # NOTICE: never an error reply
    assert irc.sync() == []
    assert not [line for line in liner.seen if line.endswith(": x")]


def test_nick_change_is_seen_by_line_users(chat) -> None:
    server = chat.server()
    liner = chat.line(server, "liner")
    irc = chat.irc(server, "ircy")
    irc.join("lobby")
    liner.expect("* ircy joined lobby")
    irc.send("NICK newname")
    nick = irc.next_is("NICK")
    assert nick.prefix.startswith("ircy!") and nick.params == ("newname",)
    liner.next_is("* ircy is now known as newname")
    liner.send("/nick liner2")
    liner.next_is("* liner is now known as liner2")
    renamed = irc.next_is("NICK")
    assert renamed.prefix.startswith("liner!") and renamed.params == ("liner2",)
    irc.send("NICK newname")                   # its own nick: nothing
    assert irc.sync() == []
    irc.send("PRIVMSG #lobby :still here")
    liner.next_is("[lobby] newname: still here")


def test_topic_who_whois_list_mode_away(chat) -> None:
    server = chat.server()
    liner = chat.line(server, "liner")
    irc = chat.irc(server, "ircy")
    irc.join("lobby")
    irc.send("TOPIC #lobby")
    assert irc.next_is("331").params == ("ircy", "#lobby", "No topic is set")
    irc.send("TOPIC #lobby :welcome all")
    topic = irc.next_is("TOPIC")
    assert topic.prefix.startswith("ircy!") and topic.params == ("#lobby", "welcome all")
    liner.expect("* ircy set the topic of lobby: welcome all")
    irc.send("TOPIC #lobby", "TOPIC #elsewhere :x", "TOPIC")
    assert irc.next_is("332").params == ("ircy", "#lobby", "welcome all")
    assert irc.next_is("442").params == ("ircy", "#elsewhere", "You're not on that channel")
    assert irc.next_is("461").params == ("ircy", "TOPIC", "Not enough parameters")
    # A later joiner gets the topic with the names.
    other = chat.irc(server, "other")
    other.send("JOIN #lobby")
    other.expect("JOIN")
    assert other.next_is("332").params == ("other", "#lobby", "welcome all")
    other.expect("366")
    assert irc.next_is("JOIN").prefix.startswith("other!")

    irc.send("WHO #lobby")
    rows = [irc.next_is("352") for _ in range(3)]
    assert sorted(row.params[5] for row in rows) == ["ircy", "liner", "other"]
    assert all(row.params[1] == "#lobby" for row in rows)
    assert irc.next_is("315").params == ("ircy", "#lobby", "End of /WHO list.")
    irc.send("WHO liner", "WHO nobody")
    assert irc.next_is("352").params[5] == "liner"
    irc.expect("315")
    assert irc.next_is("315").params[1] == "nobody"
    irc.send("WHOIS liner", "WHOIS nobody")
    assert irc.next_is("311").params[1] == "liner"
    assert irc.next_is("319").params == ("ircy", "liner", "#lobby")
    irc.expect("318")
    assert irc.next_is("401").params[1] == "nobody"
    irc.expect("318")

    liner.send("/join dev")
    liner.expect("* liner joined dev")
    assert irc.next_is("PART").prefix.startswith("liner!")     # a line user is in one room
    irc.send("LIST")
    irc.next_is("321")
    listed = {irc.next_is("322").params[1:] for _ in range(2)}
    assert listed == {("#dev", "1", ""), ("#lobby", "2", "welcome all")}
    assert irc.next_is("323").params == ("ircy", "End of /LIST")

    irc.send("MODE #lobby", "MODE #lobby b", "MODE #lobby +o liner", "MODE ircy", "MODE ircy +i",
             "MODE liner", "MODE ircy +z", "MODE")
    assert irc.next_is("324").params == ("ircy", "#lobby", "+")
    assert irc.next_is("368").params[1] == "#lobby"
    assert irc.next_is("482").params == ("ircy", "#lobby", "You're not channel operator")
    assert irc.next_is("221").params == ("ircy", "+")
    assert irc.next_is("MODE").params == ("ircy", "+i")
    assert irc.next_is("502").params[0] == "ircy"
    assert irc.next_is("501").params[0] == "ircy"
    assert irc.next_is("461").params == ("ircy", "MODE", "Not enough parameters")
    irc.send("AWAY :lunch", "AWAY", "FROB x")
    assert irc.next_is("306").params[0] == "ircy"
    assert irc.next_is("305").params[0] == "ircy"
    assert irc.next_is("421").params == ("ircy", "FROB", "Unknown command")


# ---------------------------------------------------------------------- liveness and limits

def test_ping_pong_and_idle_timeout(chat) -> None:
    server = chat.server(ping_interval=0.3, ping_timeout=0.5)
    liner = chat.line(server, "liner")
    alive = chat.irc(server, "alive")
    idle = chat.irc(server, "idle")
    idle.join("lobby")
    liner.expect("* idle joined lobby")
    for _ in range(3):                         # answering keeps a client in
        ping = alive.expect("PING")
        alive.send(f"PONG :{ping.params[-1]}")
    assert idle.expect("PING").params == ("gsocket",)
    rest = idle.until_eof()                    # ... and silence gets it dropped
    assert rest[-1].command == "ERROR" and "ping timeout" in rest[-1].params[0]
    liner.next_is("* idle left lobby (ping timeout: 0.5 seconds)")
    alive.send("PRIVMSG liner :still here")
    liner.next_is("[pm] alive: still here")


def test_a_line_over_512_bytes_is_417_and_the_client_stays(chat) -> None:
    server = chat.server()
    liner = chat.line(server, "liner")
    irc = chat.irc(server, "ircy")
    irc.join("lobby")
    irc.send_raw(b"PRIVMSG #lobby :" + b"x" * 600 + b"\r\n")
    assert irc.next_is("417").params == ("ircy", "Input line was too long")
    irc.send("PRIVMSG #lobby :short")
    liner.expect("[lobby] ")
    assert liner.seen[-1] == "[lobby] ircy: short"      # the long one never arrived
    assert server.service.core.user("ircy") is not None


def test_quit_and_server_stop(chat) -> None:
    server = chat.server()
    liner = chat.line(server, "liner")
    quitter = chat.irc(server, "quitter")
    quitter.join("lobby")
    liner.expect("* quitter joined lobby")
    stayer = chat.irc(server, "stayer")
    stayer.join("lobby")
    quitter.expect("JOIN")
    quitter.send("QUIT :see you")
    rest = quitter.until_eof()
    assert rest[-1].command == "ERROR" and "see you" in rest[-1].params[0]
    quit_seen = stayer.expect("QUIT")
    assert quit_seen.prefix.startswith("quitter!") and quit_seen.params == ("Quit: see you",)
    liner.expect("* quitter left lobby (quit: see you)")
    assert server.service.core.user("quitter") is None

    gevent.spawn(server.stop, 2)
    rest = stayer.until_eof()
    assert [m.params[-1] for m in rest if m.command == "NOTICE"] == [SHUTDOWN_NOTICE]
    assert rest[-1].command == "ERROR"
    assert liner.until_eof()[-1] == f"* {SHUTDOWN_NOTICE}"


def test_flooding_irc_client_is_disconnected(chat, driver) -> None:
    server = ChatServer("127.0.0.1", 0, irc=0, line_rate=50, line_burst=5, flood_patience=0.3)
    server.start()
    try:
        liner = ChatClient(server.address[1])
        liner.greeting()
        flooder = IrcClient(server.irc_address[1])
        flooder.register("flood", cap=False)
        flooder.send("JOIN #lobby")
        flooder.expect("366")

        def pour() -> None:
            try:
                while True:
                    flooder.send(*["PRIVMSG #lobby :spam"] * 50)
                    gevent.sleep(0)
            except OSError:
                pass

        pourer = gevent.spawn(pour)
        rest = flooder.until_eof(timeout=15)
        pourer.kill()
        assert any(m.command == "NOTICE" and "flooding" in m.params[-1] for m in rest)
        assert rest[-1].command == "ERROR"
        liner.expect("* flood left lobby (flooding)")
        flooder.close()
        liner.close()
    finally:
        server.stop(grace=2)


def test_a_chat_text_cannot_inject_irc_commands(chat) -> None:
    server = chat.server()
    liner = chat.line(server, "liner")
    irc = chat.irc(server, "ircy")
    irc.join("lobby")
    liner.send_raw(b"hi\rQUIT :injected\n")      # a CR inside a line-protocol line
    said = irc.expect("PRIVMSG")
    assert said.prefix.startswith("liner!") and "QUIT" in said.params[1]
    assert irc.sync() == []                      # nothing else arrived: no QUIT of its own
    irc.send("WHO :two words")                   # a mask IRC cannot echo as it is
    assert irc.next_is("315").params[1] == "two_words"


def test_irc_web_and_line_users_see_each_other(chat) -> None:
    server = chat.server(web=True)
    assert server.web_address is not None
    web = WsUser(server.web_address[1])
    try:
        assert web.recv().startswith("* welcome guest")
        web.send("/nick webby")
        web.expect("* guest1 is now known as webby")
        liner = chat.line(server, "liner")
        irc = chat.irc(server, "ircy")
        assert sorted(irc.join("lobby")) == ["ircy", "liner", "webby"]
        web.expect("* ircy joined lobby")
        irc.send("PRIVMSG #lobby :hello all", "PRIVMSG webby :just you")
        assert web.expect("[lobby] ") == "[lobby] ircy: hello all"
        assert web.recv() == "[pm] ircy: just you"
        liner.expect("[lobby] ircy: hello all")
        web.send("hello from the browser")
        said = irc.expect("PRIVMSG")
        assert said.prefix.startswith("webby!") and said.params == ("#lobby", "hello from the browser")
        liner.next_is("[lobby] webby: hello from the browser")
        irc.send("NICK webby")                       # one namespace across the three doors
        assert irc.next_is("433").params[1] == "webby"
    finally:
        web.close()
