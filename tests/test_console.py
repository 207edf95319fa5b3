"""gsocket.console over loopback: every built-in command,
app commands, <CMD OK>/<CMD Error>, and the chat server's commands."""

from __future__ import annotations

from typing import Iterator, List

import gevent.socket
import pytest

from chat_helpers import ChatClient
from gsocket import console, socket
from gsocket.chat.server import ChatServer


class ConsoleClient:
    def __init__(self, port: int) -> None:
        self.sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")

    def run(self, command: str) -> tuple:
        """(reply lines, "OK" or "Error")."""
        self.sock.sendall(command.encode() + b"\n")
        lines: List[str] = []
        for raw in self.reader:
            line = raw.decode().rstrip("\n")
            if line in ("<CMD OK>", "<CMD Error>"):
                return lines, line[5:-1]
            lines.append(line)
        raise AssertionError(f"console closed; got {lines}")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def console_port(driver) -> Iterator:
    started: List[int] = []
    clients: List[ConsoleClient] = []

    def start(commands=None) -> ConsoleClient:
        listen_id = console.start("127.0.0.1", 0, commands=commands)
        started.append(listen_id)
        address = socket.address(listen_id)
        assert address is not None and address[0] == "127.0.0.1"
        client = ConsoleClient(address[1])
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for listen_id in started:
        console.stop(listen_id)


def test_builtin_commands(console_port) -> None:
    seen_args = []

    def echo(args):
        seen_args.append((list(args), args.line))
        return " ".join(args)

    def broken(args):
        raise ValueError("it broke")

    client = console_port({"echo": echo, "broken": broken})
    lines, status = client.run("help")
    assert status == "OK"
    for name in ("help", "netstat", "stat", "list", "gc", "echo", "broken"):
        assert any(line.split("\t")[0] == name for line in lines), name
    lines, status = client.run("netstat")
    assert status == "OK" and lines[0].split("\t") == ["id", "type", "address", "read", "write", "wbuffer"]
    rows = [line.split("\t") for line in lines[1:]]
    assert any(row[1] == "LISTEN" for row in rows) and any(row[1] == "TCP" for row in rows)
    assert all(len(row) == 6 and row[3].isdigit() for row in rows)
    lines, status = client.run("stat")
    stats = dict(line.split("\t") for line in lines)
    assert status == "OK" and int(stats["connections"]) >= 1 and int(stats["rss_kib"]) > 1000
    assert int(stats["greenlets"]) >= 1 and int(stats["bytes_in"]) > 0
    lines, status = client.run("list")
    assert status == "OK" and lines[0].endswith("greenlets") and any("serve" in line for line in lines)
    lines, status = client.run("gc")
    assert status == "OK" and lines[0].startswith("collected ")
    assert client.run("echo a  b") == (["a b"], "OK")
    assert seen_args == [(["a", "b"], "a  b")]
    assert client.run("broken") == (["it broke"], "Error")
    lines, status = client.run("nosuch")
    assert status == "Error" and "unknown command" in lines[0]
    assert client.run("help")[1] == "OK"      # still serving after errors


def test_bad_command_table() -> None:
    with pytest.raises(ValueError):
        console.start("127.0.0.1", 0, commands={"two words": lambda args: ""})


def test_chat_console_rooms_kick_broadcast(driver) -> None:
    server = ChatServer("127.0.0.1", 0, console=("127.0.0.1", 0))
    server.start()
    assert server.address is not None and server.console_id is not None
    console_address = socket.address(server.console_id)
    assert console_address is not None
    admin = ConsoleClient(console_address[1])
    alice = ChatClient(server.address[1])
    bob = ChatClient(server.address[1])
    try:
        alice.greeting()
        bob.greeting()
        alice.send("/nick alice", "/join dev")
        alice.expect("* alice joined dev")
        assert admin.run("rooms") == (["dev 1", "lobby 1"], "OK")
        lines, status = admin.run("users")
        assert status == "OK" and any(line.startswith("alice line ") for line in lines)
        assert admin.run("broadcast  maintenance at  noon") == (["broadcast to 2 local users"], "OK")
        alice.expect("* maintenance at  noon")
        bob.expect("* maintenance at  noon")
        assert admin.run("kick alice") == (["kicked alice"], "OK")
        rest = alice.until_eof()
        assert rest[-1] == "* you were kicked by an operator"
        assert admin.run("kick alice") == (["no such nick: alice"], "Error")
        assert admin.run("kick") == (["usage: kick NICK"], "Error")
        assert admin.run("rooms") == (["lobby 1"], "OK")
        lines, status = admin.run("netstat")
        assert status == "OK" and sum(1 for line in lines if "\tLISTEN\t" in line) == 2
    finally:
        alice.close()
        bob.close()
        admin.close()
        server.stop(grace=2)


def test_stat_and_list_survive_dead_weak_proxies(console_port) -> None:
    # gc.get_objects() can hand back a weakref.proxy whose referent is gone:
    # isinstance() on it raises ReferenceError, which used to fail `stat`.
    import gc
    import weakref

    class Target:
        pass

    target = Target()
    proxies = [weakref.proxy(target)]
    del target
    assert any(obj is proxies[0] for obj in gc.get_objects())   # gc does see it
    client = console_port()
    for command in ("stat", "list"):
        lines, status = client.run(command)
        assert status == "OK", (command, lines)
    assert proxies
