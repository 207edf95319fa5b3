"""Step 1: an echo server on gsocket's blocking socket API.

    python docs/tutorial/echo.py --port 8888     # then: nc 127.0.0.1 8888
"""

from __future__ import annotations

import argparse
import logging

from gsocket import skynet, socket

logger = logging.getLogger("tutorial.echo")


def handle(conn_id: int) -> None:
    """Send every byte back until the peer closes; blocks this greenlet only."""
    socket.start(conn_id)                 # an accepted id reads only once started
    while True:
        data = socket.read(conn_id)       # whatever has arrived, at least one byte
        if data is None:                  # the peer closed
            break
        socket.write(conn_id, data)       # queues; never blocks
    socket.close(conn_id)                 # flushes what we wrote, then FIN


def serve(host: str = "127.0.0.1", port: int = 0) -> int:
    """Listen and fork one handler per connection; return the listen id."""
    listen_id = socket.listen(host, port)
    socket.start(listen_id, lambda conn_id, addr: skynet.fork(handle, conn_id))
    return listen_id


def main() -> None:
    """Run until interrupted."""
    parser = argparse.ArgumentParser(description="step 1: echo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    def start() -> None:
        listen_id = serve(args.host, args.port)
        logger.info("echo on %s:%d", *socket.address(listen_id))

    skynet.start(start)                   # returns when skynet.exit() is called


if __name__ == "__main__":
    main()
