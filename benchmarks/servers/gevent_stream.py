"""Reference: gevent ``StreamServer`` echo, one greenlet per connection.

This is the yardstick the runner's ratios are computed against.
Run: ``python -m benchmarks.servers.gevent_stream --port 9000``
"""

from __future__ import annotations

from collections.abc import Sequence

from gevent.server import StreamServer

from benchmarks.servers._options import announce_listening, echo_connection, parse_server_options


def main(argv: Sequence[str] | None = None) -> None:
    """Listen and serve forever."""
    options = parse_server_options(__doc__ or "", argv)
    server = StreamServer((options.host, options.port), echo_connection, backlog=options.backlog)
    server.start()
    announce_listening("gevent StreamServer", options.host, server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
