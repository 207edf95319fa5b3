"""Scale-out over a real redis-server: two chat processes (the CLI), clients
on each; messages, presence, /who, /rooms, private messages, nick
uniqueness, shared history; Redis stopped and restarted; a node SIGKILLed;
--workers sharing one port; the IRC door across nodes; the web door (a
`websockets` client at /ws) with line and IRC users on the other node."""

from __future__ import annotations

import os
import signal
import time
from typing import Iterator, List

import gevent
import gevent.socket
import pytest

from _irc_client import IrcClient
from chat_helpers import ChatClient, ChatProcess, RedisServer, WsUser, free_port

#: Presence TTL of the nodes in these tests (seconds), instead of 30.
TTL = 2


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def nodes(redis_server) -> Iterator:
    started: List[ChatProcess] = []
    clients: List[ChatClient] = []

    class Nodes:
        redis = redis_server

        def start(self, *args: str) -> ChatProcess:
            process = ChatProcess("--redis", redis_server.url, "--presence-ttl", str(TTL), *args)
            started.append(process)
            return process.started()

        def client(self, node: ChatProcess, nick: str) -> ChatClient:
            client = ChatClient(node.port)
            clients.append(client)
            client.greeting()
            client.send(f"/nick {nick}")
            # The returned line, not seen[-1]: seen also holds lines read behind
            # it, such as another node's rename arriving late over Redis.
            answer = client.expect(lambda line: line.endswith(f"is now known as {nick}")
                                   or line.startswith("! "))
            assert answer.endswith(f"is now known as {nick}"), client.seen
            client.sync()
            return client

    yield Nodes()
    for client in clients:
        client.close()
    for process in started:
        process.kill()


def wait_for(check, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        gevent.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s (last: {last!r})")


def console(port: int, *commands: str) -> List[str]:
    """Run commands on a console; every reply line, terminators included."""
    with gevent.socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall("".join(command + "\n" for command in commands).encode())
        reader = conn.makefile("rb")
        lines: List[str] = []
        while sum(line in ("<CMD OK>", "<CMD Error>") for line in lines) < len(commands):
            lines.append(reader.readline().decode().rstrip("\n"))
        reader.close()
        return lines


def test_two_nodes_chat_presence_private_history(nodes) -> None:
    console_port = free_port()
    one, two = nodes.start("--console", f"127.0.0.1:{console_port}"), nodes.start()
    alice = nodes.client(one, "alice")
    bob = nodes.client(two, "bob")
    alice.expect(lambda line: line.endswith("is now known as bob"))     # heard across nodes
    assert alice.who() == "* lobby (2): alice, bob"
    assert bob.who() == "* lobby (2): alice, bob"
    alice.send("hello from node one", "/me waves")
    bob.expect("[lobby] alice: hello from node one")
    bob.next_is("[lobby] * alice waves")
    bob.send("hello back")
    alice.expect("[lobby] bob: hello back")
    # nick uniqueness across nodes, any case
    carol = nodes.client(two, "carol")
    carol.send("/nick ALICE")
    carol.next_is("! nick ALICE is taken")
    # private messages both ways
    carol.send("/msg alice psst from two")
    alice.expect("[pm] carol: psst from two")
    alice.send("/msg Carol psst from one", "/msg nobody hi")
    carol.expect("[pm] alice: psst from one")
    alice.expect("! no such nick: nobody")
    # rooms and /who across nodes
    carol.send("/join dev")
    carol.next_is("* carol joined dev")
    alice.expect("* carol left lobby")
    assert alice.rooms() == "* rooms: dev (1), lobby (2)"
    alice.send("/join dev")
    alice.next_is("* alice joined dev")
    carol.expect("* alice joined dev")
    assert carol.who() == "* dev (2): alice, carol"
    assert bob.who() == "* lobby (1): bob"
    # shared history: said on node two, seen on joining from node one
    carol.send("for the record")
    alice.expect("[dev] carol: for the record")
    dave = nodes.client(one, "dave")
    dave.send("/join dev")
    assert dave.expect("* [dev] ") == "* [dev] carol: for the record"
    dave.next_is("* dave joined dev")
    # a rename is heard on the other node, and frees the old nick there
    bob.send("/nick robert")
    bob.expect("* bob is now known as robert")
    carol.send("/nick bob")
    carol.expect("* carol is now known as bob")
    alice.expect("* carol is now known as bob")
    # the console of node one reaches the users of node two
    assert console(console_port, "broadcast  all nodes", "kick bob") == [
        "broadcast to 2 local users and every other node", "<CMD OK>", "kicked bob", "<CMD OK>"]
    for client in (alice, bob):
        client.expect("* all nodes")
    assert carol.until_eof()[-2:] == ["* all nodes", "* you were kicked by an operator"]
    wait_for(lambda: alice.who() == "* dev (2): alice, dave", what="kicked user gone")


def test_web_door_across_nodes(nodes) -> None:
    """A browser-door user on node one, a line user and an IRC user on node
    two: each sees the others' messages, presence, private messages."""
    web_port, irc_port = free_port(), free_port()
    one = nodes.start("--web", str(web_port))
    two = nodes.start("--irc", str(irc_port))
    one.wait_for_log(f"chat web page on http://127.0.0.1:{web_port}/")
    web = WsUser(web_port)
    irc = IrcClient(irc_port)
    try:
        assert web.recv().startswith("* welcome guest")
        web.send("/nick webby")
        assert web.expect("* ").endswith("is now known as webby")
        liner = nodes.client(two, "liner")
        while not web.recv().endswith("is now known as liner"):    # heard on node one
            assert web.seen[-1].startswith("* "), web.seen
        irc.register("ircy")
        assert sorted(irc.join("lobby")) == ["ircy", "liner", "webby"]
        web.expect("* ircy joined lobby")
        web.send("hello from node one")
        liner.expect("[lobby] webby: hello from node one")
        said = irc.expect("PRIVMSG")
        assert said.prefix.startswith("webby!") and said.params == ("#lobby", "hello from node one")
        liner.send("hi from node two", "/me waves")
        assert web.expect("[lobby] ") == "[lobby] liner: hi from node two"
        assert web.recv() == "[lobby] * liner waves"
        irc.send("PRIVMSG #lobby :and from IRC")
        assert web.expect("[lobby] ") == "[lobby] ircy: and from IRC"
        web.send("/who")
        assert web.expect("* lobby") == "* lobby (3): ircy, liner, webby"
        assert liner.who() == "* lobby (3): ircy, liner, webby"
        web.send("/msg liner psst\n/nick LINER")                # two lines in one message
        liner.expect("[pm] webby: psst")
        assert web.expect("! ") == "! nick LINER is taken"
        liner.send("/msg webby psst back")
        assert web.expect("[pm] ") == "[pm] liner: psst back"
        one.signal(signal.SIGTERM)                         # the web user gets the notice, then the close
        assert web.until_closed()[-1] == "* the server is shutting down, bye"
        assert one.wait() == 0
        liner.expect("* webby left lobby")
    finally:
        web.close()
        irc.close()


def test_irc_door_across_nodes(nodes) -> None:
    irc_port = free_port()
    nodes.start("--irc", str(irc_port))
    bob = nodes.client(nodes.start(), "bob")
    irc = IrcClient(irc_port)
    taken = IrcClient(irc_port)
    try:
        irc.register("ircy")
        assert sorted(irc.join("lobby")) == ["bob", "ircy"]       # members of every node
        bob.expect("* ircy joined lobby")
        irc.send("PRIVMSG #lobby :hello from irc", "PRIVMSG #lobby :\x01ACTION waves\x01")
        bob.expect("[lobby] ircy: hello from irc")
        bob.next_is("[lobby] * ircy waves")
        bob.send("hello irc", "/msg ircy psst")
        said = irc.expect("PRIVMSG")
        assert said.prefix.startswith("bob!") and said.params == ("#lobby", "hello irc")
        assert irc.expect("PRIVMSG").params == ("ircy", "psst")
        irc.send("PRIVMSG bob :pm back", "NOTICE bob :a notice", "WHOIS bob")
        bob.expect("[pm] ircy: pm back")
        bob.expect("[pm] ircy: a notice")
        assert irc.expect("311").params[1] == "bob"
        # one nick namespace across nodes and doors
        taken.send("NICK bob", "USER bob 0 * :Bob")     # bob is a line user of node two
        assert taken.next_is("433").params[1:] == ("bob", "Nickname is already in use")
        taken.send("NICK Ircy")
        assert taken.next_is("433").params[1] == "Ircy"
        taken.send("NICK bob2")
        taken.expect("001")
        bob.send("/nick robert")
        renamed = irc.expect("NICK")
        assert renamed.prefix.startswith("bob!") and renamed.params == ("robert",)
        irc.send("QUIT :off now")
        assert irc.until_eof()[-1].command == "ERROR"
        bob.expect("* ircy left lobby (quit: off now)")
    finally:
        irc.close()
        taken.close()


def test_redis_lost_and_back(nodes) -> None:
    one, two = nodes.start(), nodes.start()
    alice = nodes.client(one, "alice")
    amy = nodes.client(one, "amy")
    bob = nodes.client(two, "bob")
    alice.sync()
    nodes.redis.stop()
    lost = "* lost the link to the other chat servers"
    for client in (alice, amy, bob):
        assert client.expect(lost).startswith(lost)
    alice.send("local rooms still work")
    amy.expect("[lobby] alice: local rooms still work")
    assert alice.who() == "* lobby (2): alice, amy"
    nodes.redis.start()
    back = "* the link to the other chat servers is back"
    for client in (alice, amy, bob):
        client.expect(back, timeout=20)
    assert wait_for(lambda: bob.who() == "* lobby (3): alice, amy, bob", what="presence restored")
    alice.send("across nodes again")
    bob.expect("[lobby] alice: across nodes again")
    bob.send("/nick amy")
    bob.next_is("! nick amy is taken")                 # nicks re-claimed after the restart
    for process in (one, two):
        process.signal(signal.SIGTERM)
        assert process.wait() == 0


def test_killed_node_leaves_no_ghosts(nodes) -> None:
    one, two = nodes.start(), nodes.start()
    alice = nodes.client(one, "alice")
    nodes.client(two, "bob")
    nodes.client(two, "bobby")
    wait_for(lambda: alice.who() == "* lobby (3): alice, bob, bobby", what="both nodes' users seen")
    two.process.send_signal(signal.SIGKILL)
    two.wait()
    started = time.monotonic()
    wait_for(lambda: alice.who() == "* lobby (1): alice", timeout=4 * TTL + 5, what="ghosts gone")
    assert time.monotonic() - started < 4 * TTL + 5
    assert alice.rooms() == "* rooms: lobby (1)"
    alice.send("/nick bob")                            # the dead node's nicks are free again
    alice.next_is("* alice is now known as bob")


def test_workers_share_one_port(redis_server, tmp_path) -> None:
    port = free_port()
    supervisor = ChatProcess("--redis", redis_server.url, "--workers", "2", "--presence-ttl", str(TTL),
                             port=port)
    clients: List[ChatClient] = []
    try:
        deadline = time.monotonic() + 20
        while sum("chat listening on" in line for line in supervisor.lines) < 2:
            assert time.monotonic() < deadline, supervisor.lines
            assert supervisor.process.poll() is None, supervisor.lines
            gevent.sleep(0.05)
        workers = {line.split("redis: node ")[1].split(" ")[0] for line in supervisor.lines
                   if "linked through Redis" in line}
        assert len(workers) == 2
        for index in range(8):
            client = ChatClient(port)
            clients.append(client)
            client.greeting()
        wait_for(lambda: clients[0].who().startswith("* lobby (8): "), what="8 members seen")
        clients[0].send("to everyone on every worker")
        for client in clients[1:]:
            client.expect("[lobby] guest")
        nicks = redis_server.command("SMEMBERS", "gsocket-chat:nodes").split()
        assert sorted(nicks) == sorted(workers)      # the real redis-cli sees both workers
        supervisor.signal(signal.SIGTERM)
        for client in clients:
            assert client.until_eof()[-1] == "* the server is shutting down, bye"
        assert supervisor.wait(15) == 0
    finally:
        for client in clients:
            client.close()
        supervisor.kill()


def test_workers_stop_when_the_supervisor_is_killed(redis_server) -> None:
    supervisor = ChatProcess("--redis", redis_server.url, "--workers", "2", "--presence-ttl", str(TTL))
    try:
        deadline = time.monotonic() + 20
        while sum("chat listening on" in line for line in supervisor.lines) < 2:
            assert time.monotonic() < deadline, supervisor.lines
            gevent.sleep(0.05)
        pids = [int(word) for word in supervisor.wait_for_log("started 2 workers").split("pids ")[1].split()]
        client = ChatClient(supervisor.port)
        client.greeting()
        supervisor.process.send_signal(signal.SIGKILL)
        assert client.until_eof(timeout=15)[-1] == "* the server is shutting down, bye"
        client.close()

        def gone() -> bool:
            return all(not os.path.exists(f"/proc/{pid}") or _zombie(pid) for pid in pids)

        wait_for(gone, what="workers gone")
    finally:
        supervisor.kill()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
