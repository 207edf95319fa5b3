"""Reference: raw gevent echo, a hand-written accept loop on gevent sockets.

No ``StreamServer``: the main greenlet accepts and spawns one greenlet per
connection, which is the least a gevent server can do per connection.
Run: ``python -m benchmarks.servers.gevent_accept_loop --port 9000``
"""

from __future__ import annotations

from collections.abc import Sequence

import gevent
from gevent import socket

from benchmarks.servers._options import announce_listening, echo_connection, parse_server_options


def main(argv: Sequence[str] | None = None) -> None:
    """Listen, then accept and spawn forever."""
    options = parse_server_options(__doc__ or "", argv)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((options.host, options.port))
    listener.listen(options.backlog)
    announce_listening("gevent accept-loop", options.host, listener.getsockname()[1])
    spawn = gevent.spawn
    while True:
        conn, _ = listener.accept()
        spawn(echo_connection, conn)


if __name__ == "__main__":
    main()
