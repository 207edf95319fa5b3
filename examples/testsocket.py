"""skynet's test/testsocket.lua, ported: a line echo server.

    python examples/testsocket.py --host 127.0.0.1 --port 8001 [--mode fork|transfer]

A listener whose accept callback hands each connection to its own reader
greenlet. The reader starts the connection, greets it with "Hello Skynet",
then echoes every line it reads until the peer closes.

The two modes are the choices testsocket.lua lists in its accept callback:

* ``fork`` (default): ``skynet.fork(echo, id)``; the forked reader is the
  first to ``socket.start`` the id (in skynet: ``newservice("testsocket",
  "agent", id)``, where the agent starts it).
* ``transfer``: the accept callback starts the id itself, then
  ``socket.abandon``s it and forks the agent, which ``socket.start``s it
  again (the start / abandon / start hand-over). testsocket.lua warns that
  data may be lost there; in gsocket the bytes that arrive in between stay
  buffered and the agent reads them.

Stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal

import gevent

from gsocket import skynet
from gsocket import socket

logger = logging.getLogger("testsocket")


def echo(connection_id: int) -> None:
    """Greet, then send every line back until the peer closes."""
    socket.start(connection_id)
    socket.write(connection_id, b"Hello Skynet\n")
    while True:
        line = socket.readline(connection_id)
        if line is None:
            break
        logger.info("%d: %r", connection_id, line)
        socket.write(connection_id, line + b"\n")
    rest = socket.readall(connection_id)   # an unterminated last line
    if rest:
        logger.info("%d: %r (no newline)", connection_id, rest)
        socket.write(connection_id, rest)
    logger.info("close socket %d", connection_id)
    socket.close(connection_id)


def accept_transfer(connection_id: int) -> None:
    """testsocket.lua's ``accept(id)``: start, hand over, abandon."""
    socket.start(connection_id)
    socket.abandon(connection_id)
    skynet.fork(echo, connection_id)      # the agent: start(id) again, then echo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--mode", choices=("fork", "transfer"), default="fork")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def on_accept(connection_id: int, address: str) -> None:
        logger.info("connect from %s %d", address, connection_id)
        if args.mode == "transfer":
            accept_transfer(connection_id)
        else:
            skynet.fork(echo, connection_id)

    def serve() -> None:
        listen_id = socket.listen(args.host, args.port)
        host, port = socket.address(listen_id)
        socket.start(listen_id, on_accept)
        logger.info("testsocket listening on %s:%d (mode %s)", host, port, args.mode)

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, skynet.exit)
    skynet.start(serve)
    logger.info("testsocket stopped")


if __name__ == "__main__":
    main()
