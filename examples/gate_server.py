"""A gate whose connect hands each client to its own agent (skynet's watchdog + agent).

    python examples/gate_server.py --host 127.0.0.1 --port 8002

Clients speak netpack frames (a 2-byte big-endian length, then the payload).
The gate accepts and, in ``connect``, hands the socket to an agent greenlet:
the gate ``abandon``s the id before reading anything (an abandoned client no
longer counts toward ``maxclient``), the agent ``socket.start``s it, so every
byte the client sent in between is read by the agent. The agent
greets the client with ``welcome HOST:PORT``, answers each frame with the
frame upper-cased, and on ``quit`` answers ``bye`` and closes. Stops
cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal

import gevent

from gsocket import netpack, skynet, socket
from gsocket.gate import Gate

logger = logging.getLogger("gate_server")


def agent(socket_id: int, address: str) -> None:
    """Serve one client with the blocking socket API until it quits or leaves."""
    socket.start(socket_id)
    socket.write(socket_id, netpack.pack(f"welcome {address}"))
    decoder = netpack.Decoder()
    try:
        while True:
            chunk = socket.read(socket_id)
            if chunk is None:
                logger.info("agent %d: client left", socket_id)
                return
            for frame in decoder.feed(chunk):
                if frame == b"quit":
                    socket.write(socket_id, netpack.pack(b"bye"))
                    logger.info("agent %d: client quit", socket_id)
                    return
                socket.write(socket_id, netpack.pack(frame.upper()))
    except netpack.PacketTooLarge as exc:
        logger.warning("agent %d: %s", socket_id, exc)
    finally:
        socket.close(socket_id)


class Watchdog:
    """The gate's handler: every new client goes to a new agent."""

    def __init__(self) -> None:
        self.gate: Gate | None = None

    def open(self) -> None:
        assert self.gate is not None
        logger.info("gate_server listening on %s:%d", *self.gate.address)

    def connect(self, socket_id: int, address: str) -> None:
        assert self.gate is not None
        logger.info("connect from %s (%d): new agent", address, socket_id)
        self.gate.abandon(socket_id)      # before openclient: nothing read yet
        skynet.fork(agent, socket_id, address)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    watchdog = Watchdog()

    def serve() -> None:
        watchdog.gate = Gate(watchdog, args.host, args.port, nodelay=True)
        watchdog.gate.start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, skynet.exit)
    skynet.start(serve)
    logger.info("gate_server stopped")


if __name__ == "__main__":
    main()
