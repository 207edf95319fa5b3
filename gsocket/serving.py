"""``gsocket.serve``: the high-level server (asyncio.start_server,
trio.serve_tcp, gevent's StreamServer).

Each accepted connection gets its own greenlet running ``handler(conn)``
with a started :class:`~gsocket.Connection`: the accept callback is the
handler's start, as in skynet, so the dispatcher greenlet it runs in serves
the connection and a spare one (:data:`gsocket.driver.SPARE_DISPATCHERS`)
takes over dispatching; no greenlet is made per connection. When the handler returns or
raises (the exception is logged with its traceback), the connection is
closed gracefully, so a crashing handler never leaks a socket and its peer
never hangs. ``socket.stop(listen_id, grace)`` stops it.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from . import _flow
from . import socket as _socket_api
from .connection import Connection

__all__ = ["serve"]

logger = logging.getLogger("gsocket.serve")


def serve(handler: Callable[[Connection], Any], host: Optional[str], port: Optional[int] = None, *,
          backlog: int = 32, ssl_context: Any = None, reuseport: bool = False,
          max_connections: Optional[int] = None, idle_timeout: Optional[float] = None) -> int:
    """Listen on ``host:port`` (or ``"unix:/path"``) and run
    ``handler(conn)`` in a greenlet of its own for every connection; returns the
    listen id once listening (OSError if the address cannot be bound).
    With ``ssl_context`` every connection is TLS; the handler runs once its
    handshake is done, and a failed handshake (logged) never reaches it.
    ``max_connections`` and ``idle_timeout`` are those of
    :func:`gsocket.socket.start`. Never blocks."""
    if not callable(handler):
        raise TypeError("handler must be callable")
    listen_id = _socket_api.listen(host, port, backlog, ssl_context=ssl_context,
                                   reuseport=reuseport)

    def on_accept(socket_id: int, peer: str) -> None:
        _run(handler, socket_id, peer)

    try:
        _socket_api.start(listen_id, on_accept, max_connections=max_connections,
                          idle_timeout=idle_timeout)
    except BaseException:
        _socket_api.close(listen_id)
        raise
    return listen_id


def _run(handler: Callable[[Connection], Any], socket_id: int, peer: str) -> None:
    try:
        _socket_api.start(socket_id)
    except ConnectionError:
        return                                   # gone before its handler ran
    if not _flow.wait_open(_socket_api._pool(), socket_id):   # a failed TLS handshake
        _socket_api.close(socket_id)
        return
    try:
        handler(Connection(socket_id))
    except Exception:
        logger.exception("serve: handler %r failed for %s (socket %d); closing it",
                         getattr(handler, "__name__", handler), peer, socket_id)
    finally:
        _socket_api.close(socket_id)
