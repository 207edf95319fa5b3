"""Step 4: testing the chat with gsocket's pytest plugin.

    cd docs/tutorial && python -m pytest -q test_chat.py
"""

from __future__ import annotations

import pytest

from chat import Room, serve

# Every test here must leave no socket, fd or greenlet behind.
pytestmark = pytest.mark.usefixtures("gsocket_leak_check")


def welcome(peer) -> str:
    """Read the welcome line; return the nick it names."""
    line = peer.recv_until(b"\n").decode()
    assert line.startswith("* welcome ")
    return line.split()[2].rstrip(":")


@pytest.mark.gsocket(timeout=5)
def test_a_message_reaches_the_others_but_not_the_sender(gsocket_driver, free_tcp_port, tcp_peer):
    serve(Room(), "127.0.0.1", free_tcp_port)
    alice, bob = tcp_peer(free_tcp_port), tcp_peer(free_tcp_port)
    alice_nick = welcome(alice)
    bob_nick = welcome(bob)
    assert alice.recv_until(b"\n") == f"* {bob_nick} joined".encode()

    alice.sendall(b"hello\r\n")
    assert bob.recv_until(b"\n") == f"{alice_nick}: hello".encode()
    bob.sendall(b"/nick bob\nhi alice\n")
    assert alice.recv_until(b"\n") == f"* {bob_nick} is now bob".encode()
    assert alice.recv_until(b"\n") == b"bob: hi alice"


@pytest.mark.gsocket(timeout=5)
def test_leaving_is_announced_once(gsocket_driver, free_tcp_port, tcp_peer):
    room = Room()
    serve(room, "127.0.0.1", free_tcp_port)
    alice, bob = tcp_peer(free_tcp_port), tcp_peer(free_tcp_port)
    welcome(alice)
    bob_nick = welcome(bob)
    alice.recv_until(b"\n")                        # bob joined
    bob.sendall(b"/quit\n")
    assert bob.recv_all() == b""                   # the server closed bob's side
    assert alice.recv_until(b"\n") == f"* {bob_nick} left".encode()
    assert len(room.members) == 1                  # only alice is left


@pytest.mark.gsocket(timeout=5)
def test_an_endless_line_is_cut_off(gsocket_driver, free_tcp_port, tcp_peer):
    serve(Room(), "127.0.0.1", free_tcp_port)
    mallory = tcp_peer(free_tcp_port)
    welcome(mallory)
    mallory.sendall(b"x" * 8192)                   # twice MAX_LINE, no newline
    assert mallory.recv_all() == b""               # closed by socket.limit
