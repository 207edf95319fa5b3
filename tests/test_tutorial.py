"""The tutorial's programs (docs/tutorial/) do what the tutorial says, over
real sockets: steps 1-3 in this process, step 4 is the tutorial's own test
file run by pytest as a reader would run it, step 5 as real processes
(two nodes, then ``--workers 2``) on a real redis-server. The porting
guide's gate + agent port (docs/porting/gate_agent.py) runs here too."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest

from _resp_support import RedisServer, free_port, stop_process, wait_for_port
from helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial"

pytestmark = pytest.mark.usefixtures("leak_check")


def load(name: str) -> ModuleType:
    """Import docs/tutorial/NAME.py under a name of its own (examples/ has an echo.py too)."""
    return load_file(TUTORIAL / f"{name}.py")


def load_file(path: Path) -> ModuleType:
    """Import one of the docs' programs under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"docs_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_step1_echo(driver, free_tcp_port, tcp_peer) -> None:
    load("echo").serve("127.0.0.1", free_tcp_port)
    first, second = tcp_peer(free_tcp_port), tcp_peer(free_tcp_port)
    first.sendall(b"hello ")
    second.sendall(b"other")
    assert second.recv_exactly(5) == b"other"
    first.sendall(b"world")
    assert first.recv_exactly(11) == b"hello world"
    first.shutdown(1)                         # half-close: the handler sees the end
    assert first.recv_all() == b""


def test_step2_lines(driver, free_tcp_port, tcp_peer) -> None:
    lines = load("lines")
    assert lines.reply("len abc") == "3" and lines.reply("quit") is None
    lines.serve("127.0.0.1", free_tcp_port)
    peer = tcp_peer(free_tcp_port)
    peer.sendall(b"hello\r\nlen four\nqu")
    assert peer.recv_until(b"\n") == b"HELLO"
    assert peer.recv_until(b"\n") == b"4"
    peer.sendall(b"it\n")
    assert peer.recv_all() == b"bye\n"         # written just before close, still delivered


def test_step2_a_line_without_end_is_cut_off(driver, free_tcp_port, tcp_peer) -> None:
    lines = load("lines")
    lines.serve("127.0.0.1", free_tcp_port)
    peer = tcp_peer(free_tcp_port)
    peer.sendall(b"y" * (2 * lines.MAX_LINE))
    assert peer.recv_all() == b""


def test_step3_chat(driver, free_tcp_port, tcp_peer) -> None:
    chat = load("chat")
    room = chat.Room()
    chat.serve(room, "127.0.0.1", free_tcp_port)
    alice = tcp_peer(free_tcp_port)
    assert alice.recv_until(b"\n").startswith(b"* welcome guest")
    bob = tcp_peer(free_tcp_port)
    bob.recv_until(b"\n")
    assert alice.recv_until(b"\n").endswith(b" joined")
    alice.sendall(b"/nick alice\nhi\n")
    assert bob.recv_until(b"\n").endswith(b" is now alice")
    assert bob.recv_until(b"\n") == b"alice: hi"
    bob.close()
    assert alice.recv_until(b"\n").endswith(b" left")
    assert list(room.members.values()) == ["alice"]


def test_step4_the_tutorials_tests_pass() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "test_chat.py"],
        cwd=TUTORIAL, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


# ---------------------------------------------------------------------- step 5: Redis


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


def start_node(redis: RedisServer, *extra: str) -> tuple:
    """``chat_redis.py`` as its own process on a free port: (process, port)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(TUTORIAL / "chat_redis.py"), "--port", str(port),
         "--redis", f"127.0.0.1:{redis.port}", *extra],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        wait_for_port(port, process)
    except AssertionError:
        process.kill()
        raise AssertionError(process.communicate()[1].decode(errors="replace")) from None
    return process, port


def next_line_with(peer, text: bytes) -> bytes:
    """The next line holding ``text``, skipping others (joins of earlier clients)."""
    while True:
        line = peer.recv_until(b"\n")
        if text in line:
            return line


def welcome_nick(peer) -> bytes:
    return next_line_with(peer, b"* welcome ").split()[2].rstrip(b":")


def test_step5_two_nodes_share_one_room(redis_server, tcp_peer) -> None:
    (one, port_one), (two, port_two) = start_node(redis_server), start_node(redis_server)
    try:
        alice = tcp_peer(port_one, cooperative=False)
        alice_nick = welcome_nick(alice)
        bob = tcp_peer(port_two, cooperative=False)
        bob_nick = welcome_nick(bob)
        assert alice_nick.split(b"@")[1] != bob_nick.split(b"@")[1]        # two processes
        # (wait_for_port's probes joined and left too: skip their lines)
        assert next_line_with(alice, bob_nick) == b"* " + bob_nick + b" joined"
        alice.sendall(b"hello over redis\n")
        assert next_line_with(bob, b"hello") == alice_nick + b": hello over redis"
        bob.sendall(b"hi alice\n")
        # alice's own message was not sent back to her before bob's reply
        # (only the probes' join/leave lines may come in between)
        seen = []
        while not seen or b"hi alice" not in seen[-1]:
            seen.append(alice.recv_until(b"\n"))
        assert seen[-1] == bob_nick + b": hi alice"
        assert all(line.startswith(b"* guest") for line in seen[:-1]), seen
    finally:
        assert stop_process(one) == 0
        assert stop_process(two) == 0


def test_step5_workers_share_one_port(redis_server, tcp_peer) -> None:
    parent, port = start_node(redis_server, "--workers", "2")
    try:
        peers = {}
        deadline = time.monotonic() + 20
        while len(peers) < 2:                     # until clients sit on both workers
            assert time.monotonic() < deadline, f"every client landed on {list(peers)}"
            peer = tcp_peer(port, cooperative=False)
            nick = welcome_nick(peer)
            peers.setdefault(nick.split(b"@")[1], (peer, nick))
        (left, left_nick), (right, right_nick) = peers.values()
        left.sendall(b"across workers\n")
        assert next_line_with(right, b"across") == left_nick + b": across workers"
    finally:
        assert stop_process(parent) == 0


# ---------------------------------------------------------------------- the porting guide's gate + agent


def frames(peer, count: int) -> list:
    """Read ``count`` netpack frames from a client socket."""
    from gsocket import netpack

    decoder, out = netpack.Decoder(), []
    while len(out) < count:
        chunk = peer.recv(65536)
        assert chunk, f"closed after {out}"
        out += [frame.decode() for frame in decoder.feed(chunk)]
    assert not decoder.pending_bytes
    return out


def test_porting_gate_agent(driver, tcp_peer) -> None:
    from gsocket import netpack

    gate = load_file(ROOT / "docs" / "porting" / "gate_agent.py").serve(idle=30, maxclient=2)
    port = gate.address[1]
    ann, bob = tcp_peer(port), tcp_peer(port)
    ann.sendall(netpack.pack("hi") + netpack.pack("login ann") + netpack.pack("one")
                + netpack.pack("two"))
    assert frames(ann, 4) == ["error: login first", "welcome ann", "ann #1: one", "ann #2: two"]
    bob.sendall(netpack.pack("login bob") + netpack.pack("who"))
    assert frames(bob, 2) == ["welcome bob", "ann bob"]
    third = tcp_peer(port)                       # maxclient=2: closed at once, no callback
    assert third.recv_all() == b""
    assert gate.refused == 1
    gate.close()                                 # every client: disconnect, then closed
    assert ann.recv_all() == b"" and bob.recv_all() == b""
    wait_until(lambda: gate.client_count == 0)


def test_porting_agent_kicks_an_idle_client(driver, tcp_peer) -> None:
    from gsocket import netpack

    gate = load_file(ROOT / "docs" / "porting" / "gate_agent.py").serve(idle=0.2)
    quiet = tcp_peer(gate.address[1])
    quiet.sendall(netpack.pack("login q"))
    assert frames(quiet, 1) == ["welcome q"]
    assert quiet.recv_all() == b""               # the heartbeat closed it
    wait_until(lambda: gate.client_count == 0)
    gate.close()


def test_step1_the_object_way(driver, free_tcp_port, tcp_peer) -> None:
    import gsocket
    import gsocket.socket

    listen_id = gsocket.serve(load("serve_echo").handler, "127.0.0.1", free_tcp_port)
    peer = tcp_peer(free_tcp_port)
    peer.sendall(b"hello\ncount 50000\n")
    assert peer.recv_until(b"\n") == b"HELLO"
    expected = b"".join(b"%d\n" % n for n in range(50000))
    assert peer.recv_exactly(len(expected)) == expected
    peer.sendall(b"bye")                          # a last line without its newline
    peer.shutdown(1)
    assert peer.recv_all() == b"BYE\n"            # then serve closed the connection
    assert gsocket.socket.stop(listen_id, grace=1) == (0, 0)   # nothing left to close
