"""Step 2: a line protocol. Every line gets one reply; ``quit`` ends it.

    python docs/tutorial/lines.py --port 8888
"""

from __future__ import annotations

import argparse
import logging

from gsocket import skynet, socket

logger = logging.getLogger("tutorial.lines")

#: Longest line we accept. A peer that sends more without a newline is cut off.
MAX_LINE = 4096


def reply(line: str) -> str | None:
    """The answer to one line, or None to hang up. No I/O here."""
    if line == "quit":
        return None
    if line.startswith("len "):
        return str(len(line) - 4)
    return line.upper()


def handle(conn_id: int) -> None:
    """Answer line after line until the peer closes or says quit."""
    socket.start(conn_id)
    socket.limit(conn_id, MAX_LINE)       # bound what one peer can make us buffer
    while True:
        raw = socket.readline(conn_id)    # the line without b"\n"; None at the end
        if raw is None:
            break
        answer = reply(raw.rstrip(b"\r").decode("utf-8", "replace"))
        if answer is None:
            socket.write(conn_id, "bye\n")
            break
        socket.write(conn_id, answer + "\n")
    socket.close(conn_id)                 # "bye" still reaches the peer


def serve(host: str = "127.0.0.1", port: int = 0) -> int:
    """Listen and fork one handler per connection; return the listen id."""
    listen_id = socket.listen(host, port)
    socket.start(listen_id, lambda conn_id, addr: skynet.fork(handle, conn_id))
    return listen_id


def main() -> None:
    """Run until interrupted."""
    parser = argparse.ArgumentParser(description="step 2: lines")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    skynet.start(lambda: logger.info("lines on %s:%d", *socket.address(serve(args.host, args.port))))


if __name__ == "__main__":
    main()
