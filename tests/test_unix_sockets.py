"""Unix domain sockets (``"unix:/path"``) on both layers: echo through the
socket API and through SocketServer events, peer names, a stale socket file
replaced, a live one refused, the file removed when the listener closes."""

from __future__ import annotations

import os
import socket as stdlib_socket
from pathlib import Path

import gevent
import gevent.socket
import pytest

from gsocket import socket as gs
from gsocket.events import SOCKET_ACCEPT, SOCKET_DATA, SOCKET_OPEN

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "echo.sock")


def unix_client(path: str) -> gevent.socket.socket:
    sock = gevent.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    return sock


@pytest.mark.usefixtures("driver")
def test_socket_api_over_a_unix_socket(path: str) -> None:
    listen_id = gs.listen(f"unix:{path}")
    assert os.path.exists(path)
    assert gs.address(listen_id) == (f"unix:{path}", 0)
    peers = []

    def echo(socket_id: int, peer: str) -> None:
        peers.append(peer)
        gs.start(socket_id)
        while (line := gs.readline(socket_id)) is not None:
            gs.write(socket_id, line + b"!\n")
        gs.close(socket_id)

    gs.start(listen_id, lambda socket_id, peer: gevent.spawn(echo, socket_id, peer))
    raw = unix_client(path)
    raw.sendall(b"raw\n")
    assert raw.recv(100) == b"raw!\n"
    conn = gs.open(f"unix:{path}")                  # our own client, same layer
    assert gs.write(conn, b"ours\n")
    assert gs.readline(conn, timeout=10) == b"ours!"
    assert gs.address(conn) == (f"unix:{path}", 0)
    assert peers == ["unix:", "unix:"]              # unnamed clients
    assert {row.type for row in gs.netstat()} >= {"LISTEN", "TCP"}
    gs.close(conn)
    raw.close()
    gs.close(listen_id)
    gevent.sleep(0.05)
    assert not os.path.exists(path)                 # removed with the listener


def test_server_layer_over_a_unix_socket(server, path: str) -> None:
    listen_id = server.listen(f"unix:{path}", None)
    server.start(listen_id)
    assert server.poll(5).type == SOCKET_OPEN
    peer = stdlib_socket.socket(stdlib_socket.AF_UNIX)
    peer.connect(path)
    accept = server.poll(5)
    assert accept.type == SOCKET_ACCEPT and accept.data == "unix:"
    server.start(accept.ud)
    assert server.poll(5).type == SOCKET_OPEN
    peer.sendall(b"ping")
    data = server.poll(5)
    assert data.type == SOCKET_DATA and data.data == b"ping"
    assert server.send(accept.ud, b"pong")
    assert peer.recv(10) == b"pong"
    peer.close()
    server.close(listen_id)


@pytest.mark.usefixtures("driver")
def test_stale_file_replaced_live_listener_refused(path: str, tmp_path: Path) -> None:
    dead = stdlib_socket.socket(stdlib_socket.AF_UNIX)
    dead.bind(path)                                 # a file left by a "dead process"
    dead.close()
    listen_id = gs.listen(f"unix:{path}")           # replaced
    gs.start(listen_id, lambda socket_id, peer: gs.close(socket_id))
    with pytest.raises(OSError, match="live listener"):
        gs.listen(f"unix:{path}")
    plain = tmp_path / "not-a-socket"
    plain.write_text("data")
    with pytest.raises(OSError, match="not a socket"):
        gs.listen(f"unix:{plain}")
    assert plain.read_text() == "data"              # never removed
    with pytest.raises(ValueError):
        gs.listen("unix:")
    with pytest.raises(FileNotFoundError):
        gs.open(f"unix:{tmp_path / 'nobody.sock'}")
    gone = stdlib_socket.socket(stdlib_socket.AF_UNIX)
    gone.bind(str(tmp_path / "gone.sock"))
    gone.close()                                    # a file nobody listens on
    with pytest.raises(ConnectionRefusedError):
        gs.open(f"unix:{tmp_path / 'gone.sock'}")
    gs.close(listen_id)
