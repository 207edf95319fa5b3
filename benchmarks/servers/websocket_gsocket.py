"""gsocket.websocket echo, for ``benchmarks/bench_websocket.py``.

``--api handler`` (default): ``websocket.accept(id, handler)``, the handler's
``message`` callback writes each message back. ``--api read``: ``accept``
without a handler, then a ``websocket.read`` / ``websocket.write`` loop.
Every connection is forked as a skynet coroutine, as in ``examples/echo.py``;
no extension is negotiated (gsocket offers none).
Run: ``python -m benchmarks.servers.websocket_gsocket --port 9000 [--api read]``
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence

import gevent

from benchmarks.servers._options import announce_listening
from gsocket import skynet, socket, websocket

#: Largest message either server accepts (websockets' default is the same).
MAX_MESSAGE = 1 << 20


class Echo:
    """Writes every message back with the same kind."""

    def message(self, socket_id: int, data: object, kind: str) -> None:
        websocket.write(socket_id, data, kind)  # type: ignore[arg-type]


def serve_handler(socket_id: int) -> None:
    """Handshake, then echo from the handler callbacks until it closes."""
    socket.start(socket_id)
    socket.nodelay(socket_id)
    websocket.accept(socket_id, Echo(), max_message=MAX_MESSAGE)


def serve_read(socket_id: int) -> None:
    """Handshake, then echo with read / write until it closes."""
    socket.start(socket_id)
    socket.nodelay(socket_id)
    if not websocket.accept(socket_id, max_message=MAX_MESSAGE):
        return
    read, write = websocket.read, websocket.write
    while True:
        message = read(socket_id)
        if message is None:
            break
        write(socket_id, message)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGTERM / SIGINT."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--api", choices=("handler", "read"), default="handler")
    args = parser.parse_args(argv)
    serve_one = serve_handler if args.api == "handler" else serve_read

    def serve() -> None:
        listen_id = socket.listen(args.host, args.port, args.backlog)
        host, port = socket.address(listen_id)
        socket.start(listen_id, lambda socket_id, addr: skynet.fork(serve_one, socket_id))
        announce_listening(f"gsocket.websocket ({args.api})", host, port)

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, skynet.exit)
    skynet.start(serve)


if __name__ == "__main__":
    main()
