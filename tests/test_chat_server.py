"""The standalone chat server in-process over loopback: every command and
error path, rooms, history, bad input, flood, slow consumer, 500 clients."""

from __future__ import annotations

from typing import Iterator, List

import gevent
import pytest

from chat_helpers import ChatClient
from gsocket.chat.server import ChatServer


@pytest.fixture
def chat(driver) -> Iterator:
    servers: List[ChatServer] = []
    clients: List[ChatClient] = []

    class Chat:
        def server(self, **options) -> ChatServer:
            server = ChatServer("127.0.0.1", 0, **options)
            server.start()
            servers.append(server)
            return server

        def client(self, server: ChatServer, **options) -> ChatClient:
            assert server.address is not None
            client = ChatClient(server.address[1], **options)
            clients.append(client)
            return client

        def named(self, server: ChatServer, nick: str) -> ChatClient:
            client = self.client(server)
            client.greeting()
            client.send(f"/nick {nick}")
            answer = client.expect("* ")    # not seen[-1]: lines read behind it are there too
            assert answer.endswith(f"is now known as {nick}"), client.seen
            return client

    yield Chat()
    for client in clients:
        client.close()
    for server in servers:
        server.stop(grace=2)


def test_greeting_names_guest_nick_and_lobby(chat) -> None:
    server = chat.server()
    first = chat.client(server)
    greeting = first.line()
    assert greeting.startswith("* ") and "guest1" in greeting and "lobby" in greeting
    second = chat.client(server)
    assert "guest2" in second.greeting()
    first.next_is("* guest2 joined lobby")


def test_messages_actions_and_no_echo(chat) -> None:
    server = chat.server()
    alice = chat.named(server, "alice")
    bob = chat.named(server, "bob")
    alice.expect("* guest2 is now known as bob")
    alice.send("hello bob", "/me waves", "//not a command", "", "   ")
    bob.next_is("[lobby] alice: hello bob")
    bob.next_is("[lobby] * alice waves")
    bob.next_is("[lobby] alice: /not a command")
    assert alice.who() == "* lobby (2): alice, bob"      # nothing of her own came back first
    assert not any(line.startswith("[lobby] alice") for line in alice.seen)


def test_nick_errors_and_uniqueness(chat) -> None:
    server = chat.server()
    alice = chat.named(server, "alice")
    bob = chat.named(server, "bob")
    bob.send("/nick ALICE")
    bob.next_is("! nick ALICE is taken")
    bob.send("/nick bad!nick")
    assert bob.line().startswith("! bad nick")
    bob.send("/nick " + "x" * 33)
    assert bob.line().startswith("! bad nick")
    bob.send("/nick")
    bob.next_is("! usage: /nick NAME")
    bob.send("/nick bob")
    bob.next_is("* you are already bob")
    alice.send("/nick Alice2")
    bob.next_is("* alice is now known as Alice2")
    bob.send("/nick alice")                          # free again
    bob.next_is("* bob is now known as alice")


def test_rooms_join_who_and_history(chat) -> None:
    server = chat.server()
    alice = chat.named(server, "alice")
    bob = chat.named(server, "bob")
    carol = chat.named(server, "carol")
    for client in (alice, bob, carol):
        client.sync()
    alice.send("/join dev")
    alice.next_is("* alice joined dev")
    bob.expect("* alice left lobby")
    for index in range(25):
        alice.send(f"dev message {index}")
    assert alice.who() == "* dev (1): alice"
    bob.send("/join dev")
    history = [bob.line() for _ in range(20)]
    assert history == [f"* [dev] alice: dev message {i}" for i in range(5, 25)]
    bob.next_is("* bob joined dev")
    alice.expect("* bob joined dev")
    assert carol.rooms() == "* rooms: dev (2), lobby (1)"
    assert carol.who() == "* lobby (1): carol"
    bob.send("/join DEV")
    bob.next_is("* you are already in dev")
    bob.send("/join no/such")
    assert bob.line().startswith("! bad room")
    bob.send("/join")
    bob.next_is("! usage: /join ROOM")
    alice.send("only dev hears this")
    bob.next_is("[dev] alice: only dev hears this")
    assert carol.who() == "* lobby (1): carol"
    assert not any("only dev" in line for line in carol.seen)


def test_history_on_connect_for_lobby(chat) -> None:
    server = chat.server()
    alice = chat.named(server, "alice")
    alice.send("first", "/me second")
    assert alice.who().startswith("* lobby (1)")
    late = chat.client(server)
    late.next_is("* [lobby] alice: first")
    late.next_is("* [lobby] * alice second")
    assert "welcome" in late.line()


def test_private_messages_and_errors(chat) -> None:
    server = chat.server()
    alice = chat.named(server, "alice")
    bob = chat.named(server, "bob")
    bob.send("/join elsewhere")
    bob.next_is("* bob joined elsewhere")
    alice.send("/msg BOB psst, across rooms")
    bob.next_is("[pm] alice: psst, across rooms")
    alice.send("/msg nobody hi")
    alice.expect("! no such nick: nobody")
    alice.send("/msg bob")
    alice.next_is("! usage: /msg NICK text")
    alice.send("/msg alice me")
    assert alice.line().startswith("! ")


def test_help_unknown_command_and_quit(chat) -> None:
    server = chat.server()
    alice = chat.named(server, "alice")
    bob = chat.named(server, "bob")
    alice.expect("* guest2 is now known as bob")
    bob.send("/help")
    help_lines = [bob.line() for _ in range(10)]
    assert all(line.startswith("* ") for line in help_lines)
    for command in ("/nick", "/join", "/rooms", "/who", "/msg", "/me", "/help", "/quit"):
        assert any(command in line for line in help_lines), command
    bob.send("/frobnicate now")
    bob.next_is("! unknown command /frobnicate (try /help)")
    bob.send("/quit", "never handled")
    bob.next_is("* bye")
    assert bob.until_eof() == []
    alice.expect("* bob left lobby (quit)")
    assert alice.who() == "* lobby (1): alice"


def test_crlf_lf_and_split_packets(chat) -> None:
    server = chat.server()
    alice = chat.named(server, "alice")
    bob = chat.named(server, "bob")
    alice.send_raw(b"one\r\ntwo\nth")
    bob.next_is("[lobby] alice: one")
    bob.next_is("[lobby] alice: two")
    gevent.sleep(0.05)
    alice.send_raw(b"ree\r")
    gevent.sleep(0.05)
    alice.send_raw(b"\n")
    bob.next_is("[lobby] alice: three")


def test_invalid_utf8_is_refused_and_the_client_stays(chat) -> None:
    server = chat.server()
    alice = chat.named(server, "alice")
    bob = chat.named(server, "bob")
    alice.sync()
    alice.send_raw(b"bad \xff\xfe bytes\nh\xc3\xa9llo\n")
    alice.next_is("! invalid UTF-8: line ignored")
    bob.next_is("[lobby] alice: héllo")


def test_line_over_4096_bytes_disconnects(chat) -> None:
    server = chat.server()
    alice = chat.named(server, "alice")
    bob = chat.named(server, "bob")
    alice.send("x" * 4096)                              # exactly the limit: fine
    assert bob.line() == "[lobby] alice: " + "x" * 4096
    alice.send("y" * 5000)
    rest = alice.until_eof()
    assert [line for line in rest if line.startswith("! ")] == rest[-1:]
    assert "too long" in rest[-1]
    bob.expect("* alice left lobby (line too long)")
    assert bob.who() == "* lobby (1): bob"


def test_flood_is_throttled_then_disconnected(chat) -> None:
    server = chat.server(line_rate=20, line_burst=10, flood_patience=1.0)
    flooder = chat.named(server, "flooder")
    calm = chat.named(server, "calm")
    flooder.send(*[f"spam {i}" for i in range(400)])
    lines = flooder.until_eof(timeout=15)
    errors = [line for line in lines if line.startswith("! ")]
    assert errors[0].startswith("! slow down")
    assert errors[-1] == "! flooding: disconnecting" and lines[-1] == errors[-1]
    heard = [line for line in calm.until_eof_or("* flooder left lobby (flooding)")
             if line.startswith("[lobby] flooder: spam")]
    # the burst at once, then about 20 lines/s for the 1 s of patience; never the 400
    assert 15 <= len(heard) < 60, len(heard)
    calm.send("/who")
    calm.next_is("* lobby (1): calm")


def test_slow_consumer_is_disconnected_others_keep_going(chat) -> None:
    server = chat.server(line_rate=1e6, line_burst=1_000_000)
    sleeper = chat.client(server, rcvbuf=4096)
    sleeper.greeting()
    talker = chat.named(server, "talker")
    reader = chat.named(server, "reader")
    payload = "z" * 4000
    received = [0]

    def read_all() -> None:
        while True:
            line = reader.line(20)
            if line is None or line == "[lobby] talker: done":
                return
            if line.startswith("[lobby] talker: z"):
                received[0] += 1

    counting = gevent.spawn(read_all)
    total = 3000                                     # 12 MB: past the kernel buffers (up to 4 MiB) plus 1 MiB
    for start in range(0, total, 50):
        talker.send(*[payload] * 50)
        with gevent.Timeout(20):                     # the reader keeps up; the sleeper does not
            while received[0] < start + 50 and not counting.dead:
                gevent.sleep(0.005)
    talker.send("done")
    counting.join(30)
    assert received[0] == total
    # the sleeper was cut off: reading now gives what the kernel held, then EOF or reset
    sleeper.sock.settimeout(10)
    got = 0
    try:
        while True:
            chunk = sleeper.sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except ConnectionResetError:
        pass
    assert got < total * len(payload)
    assert reader.who() == "* lobby (2): reader, talker"


def test_500_clients_in_one_room_every_message_counted(chat) -> None:
    server = chat.server()
    count = 500
    clients = [chat.client(server) for _ in range(count)]
    for client in clients:
        client.greeting()
    senders = clients[:50]
    per_sender = 2
    counts = [0] * count
    expected_total = len(senders) * per_sender

    def drain(index: int, client: ChatClient) -> None:
        own = per_sender if index < len(senders) else 0
        want = expected_total - own
        while counts[index] < want:
            line = client.line(25)
            assert line is not None
            if line.startswith("[lobby] guest"):
                counts[index] += 1

    readers = [gevent.spawn(drain, index, client) for index, client in enumerate(clients)]
    for sender_index, sender in enumerate(senders):
        sender.send(*[f"message {n} from {sender_index}" for n in range(per_sender)])
    gevent.joinall(readers, timeout=25, raise_error=True)
    want = [expected_total - (per_sender if i < len(senders) else 0) for i in range(count)]
    assert counts == want
    last = clients[-1]
    assert last.who().startswith(f"* lobby ({count}): ")
