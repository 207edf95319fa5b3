"""The chat's browser door, WebSocket side: a `websockets` client (the
independent peer, in a real thread) at /ws is a chat user like an nc-style
line client: same rooms, nicks and commands, each way; limits and shutdown."""

from __future__ import annotations

from typing import Iterator, List

import gevent
import pytest

from chat_helpers import ChatClient, WsUser
from gsocket.chat.server import SHUTDOWN_NOTICE, ChatServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def chat(driver) -> Iterator:
    servers: List[ChatServer] = []
    users: List = []

    class Chat:
        def server(self) -> ChatServer:
            server = ChatServer("127.0.0.1", 0, web=0)
            server.start()
            servers.append(server)
            return server

        def web(self, server: ChatServer, nick: str) -> WsUser:
            assert server.web_address is not None
            user = WsUser(server.web_address[1])
            users.append(user)
            assert user.recv().startswith("* welcome guest")
            user.send(f"/nick {nick}")
            assert user.expect("* ").endswith(f"is now known as {nick}")
            return user

        def line(self, server: ChatServer, nick: str) -> ChatClient:
            assert server.address is not None
            client = ChatClient(server.address[1])
            users.append(client)
            client.greeting()
            client.send(f"/nick {nick}")
            assert client.expect("* ").endswith(f"is now known as {nick}")
            return client

    yield Chat()
    for user in users:
        user.close()
    for server in servers:
        server.stop(grace=2)


def test_web_and_line_users_talk_both_ways(chat) -> None:
    server = chat.server()
    web = chat.web(server, "webby")
    liner = chat.line(server, "liner")
    web.expect("* guest2 is now known as liner")
    web.send("hello from the browser")
    liner.next_is("[lobby] webby: hello from the browser")
    liner.send("hi browser", "/me waves")
    assert web.recv() == "[lobby] liner: hi browser"
    assert web.recv() == "[lobby] * liner waves"
    web.send("/who")
    assert web.recv() == "* lobby (2): liner, webby"
    web.send("/join dev")
    assert web.expect("* webby joined dev")
    liner.expect("* webby left lobby")
    liner.send("/join dev")
    web.expect("* liner joined dev")
    liner.send("/msg webby psst")
    assert web.recv() == "[pm] liner: psst"
    web.send("/nick liner")
    assert web.recv() == "! nick liner is taken"


def test_several_lines_in_one_message_and_binary(chat) -> None:
    server = chat.server()
    web = chat.web(server, "webby")
    liner = chat.line(server, "liner")
    web.send("one\r\ntwo\nthree\n")
    liner.next_is("[lobby] webby: one")
    liner.next_is("[lobby] webby: two")
    liner.next_is("[lobby] webby: three")
    web.send("binary é".encode())
    liner.next_is("[lobby] webby: binary é")
    web.send(b"\xff\xfe")
    assert web.expect("! ").startswith("! invalid UTF-8")
    liner.sync()


def test_line_too_long_disconnects_others_stay(chat) -> None:
    server = chat.server()
    web = chat.web(server, "webby")
    liner = chat.line(server, "liner")
    web.send("x" * 5000)
    rest = web.until_closed()
    assert any(line.startswith("! line too long") for line in rest), rest
    assert web.close_code == 1000
    liner.expect("* webby left lobby")
    assert liner.who() == "* lobby (1): liner"


def test_quit_and_server_stop(chat) -> None:
    server = chat.server()
    leaver = chat.web(server, "leaver")
    stayer = chat.web(server, "stayer")
    leaver.send("/quit")
    assert leaver.until_closed()[-1] == "* bye"
    stayer.expect("* leaver left lobby")
    gevent.spawn(server.stop, 2)
    assert stayer.until_closed()[-1] == f"* {SHUTDOWN_NOTICE}"
    assert stayer.close_code == 1000
