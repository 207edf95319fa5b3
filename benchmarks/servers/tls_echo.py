"""TLS echo servers for ``benchmarks/bench_tls.py``: gsocket (event API or
blocking socket API) and, as the yardstick, gevent's ``StreamServer`` with
an ``ssl_context``. Same certificate, same echo.

Run: ``python -m benchmarks.servers.tls_echo --kind gevent --cert C --key K --port 9000``
"""

from __future__ import annotations

import argparse
import signal
import ssl
from collections.abc import Sequence

import gevent

from benchmarks.servers._options import announce_listening, echo_connection

KINDS = ("gsocket-event", "gsocket-socket", "gevent")


def serve_gevent(context: ssl.SSLContext, host: str, port: int, backlog: int) -> None:
    """gevent StreamServer with ssl_context: one greenlet per connection."""
    from gevent.server import StreamServer

    server = StreamServer((host, port), echo_connection, backlog=backlog, ssl_context=context)
    server.start()
    announce_listening("gevent StreamServer TLS", host, server.server_port)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()


def serve_gsocket_event(context: ssl.SSLContext, host: str, port: int, backlog: int) -> None:
    """gsocket's SocketServer, one poll loop: ACCEPT -> start, DATA -> send."""
    from gsocket.server import (
        SOCKET_ACCEPT, SOCKET_CLOSE, SOCKET_DATA, SOCKET_EXIT, SocketServer,
    )

    server = SocketServer()
    listen_id = server.listen(host, port, backlog, ssl_context=context)
    server.start(listen_id)
    announce_listening("gsocket SocketServer TLS", host, server.address(listen_id)[1])
    gevent.signal_handler(signal.SIGTERM, server.exit)
    poll, send = server.poll, server.send
    while True:
        message = poll()
        kind = message.type
        if kind == SOCKET_DATA:
            send(message.id, message.data)
        elif kind == SOCKET_ACCEPT:
            server.start(message.ud)
            server.nodelay(message.ud)
        elif kind == SOCKET_CLOSE:
            server.close(message.id)
        elif kind == SOCKET_EXIT:
            break
    server.release()


def serve_gsocket_socket(context: ssl.SSLContext, host: str, port: int, backlog: int) -> None:
    """gsocket.socket: a greenlet per connection looping read / write."""
    from gsocket import skynet, socket

    def handle(connection_id: int) -> None:
        socket.start(connection_id)
        socket.nodelay(connection_id)
        read, write = socket.read, socket.write
        while True:
            data = read(connection_id)
            if data is None:
                break
            write(connection_id, data)
        socket.close(connection_id)

    def main() -> None:
        listen_id = socket.listen(host, port, backlog, ssl_context=context)
        socket.start(listen_id, lambda connection_id, _: skynet.fork(handle, connection_id))
        announce_listening("gsocket.socket TLS", host, socket.address(listen_id)[1])

    gevent.signal_handler(signal.SIGTERM, skynet.exit)
    skynet.start(main)


def main(argv: Sequence[str] | None = None) -> None:
    """Listen and serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--backlog", type=int, default=1024)
    args = parser.parse_args(argv)
    if args.kind == "gevent":
        # gevent's own SSLContext: its wrap_socket does a cooperative
        # handshake (the stdlib one would block the hub).
        import gevent.ssl

        context: ssl.SSLContext = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_SERVER)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)   # gsocket only uses wrap_bio
    context.load_cert_chain(args.cert, args.key)
    serve = {"gevent": serve_gevent, "gsocket-event": serve_gsocket_event,
             "gsocket-socket": serve_gsocket_socket}[args.kind]
    serve(context, args.host, args.port, args.backlog)


if __name__ == "__main__":
    main()
