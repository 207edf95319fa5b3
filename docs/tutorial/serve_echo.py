"""Step 1, the object way: ``gsocket.serve`` and ``Connection``.

    python docs/tutorial/serve_echo.py --port 8888

``hello`` answers ``HELLO``; ``count N`` answers N numbered lines, as fast as
the client reads them and no faster.
"""

from __future__ import annotations

import argparse
import logging

import gsocket
from gsocket import skynet, socket

logger = logging.getLogger("tutorial.serve_echo")


def handler(conn: gsocket.Connection) -> None:
    """One connection; returns (or raises) when done, and serve closes it."""
    for line in conn:                                   # lines until the peer closes
        if line.startswith(b"count "):
            for number in range(int(line[6:])):
                conn.write(b"%d\n" % number)
                if number % 1024 == 1023 and not socket.drain(conn.id):
                    return                              # the peer went away
        else:
            conn.write(line.upper() + b"\n")


def main() -> None:
    """Run until interrupted."""
    parser = argparse.ArgumentParser(description="step 1, with gsocket.serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    skynet.start(lambda: logger.info("on %s:%d", *socket.address(
        gsocket.serve(handler, args.host, args.port))))


if __name__ == "__main__":
    main()
