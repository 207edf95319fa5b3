"""gsocket's netpack gate echo: a ``gsocket.gate.Gate`` answering every frame
(a 2-byte big-endian length, then the payload) with the same frame.

The runner drives it with ``python -m benchmarks --frames`` (the load
generator's ``-f``: every message is one frame; byte echo servers such as
the gevent reference echo it unchanged too).
Run: ``python -m benchmarks.servers.gate_echo --port 9000``
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
import gevent

from benchmarks.servers._options import announce_listening, parse_server_options
from gsocket import skynet
from gsocket.gate import Gate

#: Clients the gate takes at once: above the idle case's 10,000.
MAX_CLIENTS = 100_000


class FrameEcho:
    """Gate handler: start reading each client, send each frame back
    (``gate`` is set before the gate starts)."""

    gate: Gate

    def connect(self, socket_id: int, address: str) -> None:
        self.gate.openclient(socket_id)

    def message(self, socket_id: int, payload: bytes) -> None:
        self.gate.send(socket_id, payload)


def main(argv: Sequence[str] | None = None) -> None:
    """Listen and serve until SIGTERM or SIGINT."""
    options = parse_server_options(__doc__ or "", argv)

    def serve() -> None:
        handler = FrameEcho()
        gate = handler.gate = Gate(handler, options.host, options.port, maxclient=MAX_CLIENTS,
                                   nodelay=True, backlog=options.backlog)
        gate.start()
        announce_listening("gsocket gate", options.host, gate.address[1])

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, skynet.exit)
    skynet.start(serve)


if __name__ == "__main__":
    main()
