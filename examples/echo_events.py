"""Echo server over raw SocketServer events (one loop over poll()).

    python examples/echo_events.py --host 127.0.0.1 --port 8888

ACCEPT -> start the connection, DATA -> send it back, CLOSE -> close.
Stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal

import gevent

from gsocket.events import SOCKET_ACCEPT, SOCKET_CLOSE, SOCKET_DATA, SOCKET_ERROR, SOCKET_EXIT
from gsocket.server import SocketServer

logger = logging.getLogger("echo_events")


def serve(server: SocketServer, listen_id: int) -> None:
    """Poll events until SOCKET_EXIT."""
    poll, send, start, close = server.poll, server.send, server.start, server.close
    nodelay = server.nodelay
    while True:
        message = poll()
        kind = message.type
        if kind == SOCKET_DATA:
            send(message.id, message.data)
        elif kind == SOCKET_ACCEPT:
            nodelay(message.ud)
            start(message.ud)
        elif kind == SOCKET_CLOSE:
            close(message.id)
        elif kind == SOCKET_ERROR:
            if message.id == listen_id:
                logger.warning("accept error: %s", message.data)
        elif kind == SOCKET_EXIT:
            return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--backlog", type=int, default=1024)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = SocketServer()
    listen_id = server.listen(args.host, args.port, args.backlog)
    host, port = server.address(listen_id)
    server.start(listen_id)
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, server.exit)
    logger.info("echo_events listening on %s:%d", host, port)
    try:
        serve(server, listen_id)
    finally:
        server.release()
    logger.info("echo_events stopped")


if __name__ == "__main__":
    main()
