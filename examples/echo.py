"""Echo server over the blocking socket API (skynet style).

    python examples/echo.py --host 127.0.0.1 --port 8888

listen, then start with an accept callback that is the handler: it loops
socket.read / socket.write until the peer closes. That is skynet's own
style (testsocket.lua's accepter): the callback blocks at once (socket.start
waits for the connection to open), so the dispatcher greenlet it runs in
hands its job to a spare one and goes on serving this connection: one
greenlet per connection. Spares are such greenlets whose connection ended,
parked for the next take-over, so no greenlet is made per connection; that
is what makes this cheaper than skynet.fork(handle, ...) from the callback
(a new greenlet each time, the pattern to use when a handler needs a
greenlet of its own to join or kill).

A peer that sends without reading stops being read from: after each write
the handler waits (socket.drain) while more than 256 KiB are queued for it,
so memory stays bounded. Stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal

import gevent

from gsocket import skynet
from gsocket import socket

logger = logging.getLogger("echo")

#: Bytes queued for a peer above which the handler stops reading from it.
HIGH_WATER = 256 * 1024


def handle(connection_id: int, address: str) -> None:
    """Accept callback: echo everything back until the peer closes."""
    socket.start(connection_id)
    socket.nodelay(connection_id)
    read, write, drain = socket.read, socket.write, socket.drain
    while True:
        data = read(connection_id)
        if data is None:
            break
        write(connection_id, data)
        if not drain(connection_id, below=HIGH_WATER):
            break                     # the peer went away while we waited
    socket.close(connection_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--backlog", type=int, default=1024)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def serve() -> None:
        listen_id = socket.listen(args.host, args.port, args.backlog)
        host, port = socket.address(listen_id)
        socket.start(listen_id, handle)
        logger.info("echo listening on %s:%d", host, port)

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, skynet.exit)
    skynet.start(serve)
    logger.info("echo stopped")


if __name__ == "__main__":
    main()
