"""Command-line options and the echo loop shared by the reference echo servers."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Sequence


def parse_server_options(
    description: str, argv: Sequence[str] | None = None, with_uvloop: bool = False
) -> argparse.Namespace:
    """Parse ``--host``, ``--port``, ``--backlog`` (and ``--uvloop`` if asked)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--backlog", type=int, default=1024)
    if with_uvloop:
        parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop")
    return parser.parse_args(argv)


def announce_listening(server_kind: str, host: str, port: int) -> None:
    """Print the single 'listening' line the runner's logs show."""
    print(f"{server_kind} echo listening on {host}:{port}", flush=True)


#: Bytes asked of each recv, as in the shared yardstick's servers.
RECV_SIZE = 65536


def echo_connection(conn: socket.socket, address: object = None) -> None:
    """Echo everything received on ``conn`` (TCP_NODELAY) until the peer
    closes it; then close it. ``address`` is StreamServer's second argument."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    recv, sendall = conn.recv, conn.sendall
    try:
        while True:
            data = recv(RECV_SIZE)
            if not data:
                break
            sendall(data)
    except OSError:
        pass
    finally:
        conn.close()
