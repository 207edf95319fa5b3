"""Reference: gevent ``StreamServer`` echo, one greenlet per connection.

This is the yardstick the runner's ratios are computed against.
Run: ``python -m benchmarks.servers.gevent_stream --port 9000``
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from gevent.server import StreamServer

from benchmarks.servers._options import announce_listening, parse_server_options

RECV_SIZE = 65536


def echo_connection(conn: socket.socket, address: object) -> None:
    """Echo everything received on ``conn`` until the peer closes it."""
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


def main(argv: Sequence[str] | None = None) -> None:
    """Listen and serve forever."""
    options = parse_server_options(__doc__ or "", argv)
    server = StreamServer((options.host, options.port), echo_connection, backlog=options.backlog)
    server.start()
    announce_listening("gevent StreamServer", options.host, server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
