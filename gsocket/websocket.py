"""WebSocket (RFC 6455) on gsocket ids, for servers and clients (skynet's http.websocket).

Theory of operation
-------------------
The protocol is sans-I/O: :mod:`gsocket.http` (h11) reads the upgrade
request, wsproto writes the 101 answer and does the framing, and
:class:`gsocket.websocket_protocol.WebSocketProtocol` turns frames into
whole messages and answers control frames. This module only moves bytes
between those objects and :mod:`gsocket.socket` (``read``/``write``/
``close`` on ids), so everything blocks only the calling greenlet.

Each open WebSocket is a session kept per driver, keyed by socket id. A
session is read by one greenlet at a time: the one in :func:`read`, the
handler loop of :func:`accept`, or :func:`close` waiting for the peer's
close reply. Writes (:func:`write`, :func:`ping`) never block and may come
from any greenlet, including handler callbacks.

Server::

    def on_accept(id, addr):
        socket.start(id)
        websocket.accept(id, EchoHandler(), path="/ws")   # returns when it closes

Client::

    id = websocket.connect("ws://127.0.0.1:8080/ws", timeout=5)
    websocket.write(id, "hello")
    reply = websocket.read(id, timeout=5)
    websocket.close(id)

A web server that routes several paths on one port reads the request itself
with :func:`gsocket.http.read_request` and hands WebSocket upgrades to
:func:`accept_request`.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import deque
from typing import Any, Deque, Dict, Iterable, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from gevent.event import Event
from greenlet import getcurrent
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from . import driver as _driver
from . import http as _http
from . import socket as _socket
from .websocket_protocol import (
    BINARY, INTERNAL_ERROR, NORMAL, TEXT, Closed, Failed, MessageReceived, PingReceived,
    PongReceived, ProtocolEvent, WebSocketError, WebSocketProtocol,
)

__all__ = ["accept", "accept_request", "connect", "read", "write", "ping", "close",
           "addrinfo", "WebSocketError", "TEXT", "BINARY",
           "MAX_MESSAGE", "CLOSE_TIMEOUT"]

logger = logging.getLogger("gsocket.websocket")

#: Default largest message (bytes) accepted before closing with 1009.
MAX_MESSAGE = 1 << 20
#: Seconds close() waits for the peer's close reply before dropping the connection.
CLOSE_TIMEOUT = 5.0

Data = Union[str, bytes, bytearray, memoryview]


class _Session:
    """One open WebSocket on a socket id."""

    __slots__ = ("id", "protocol", "handler", "peer", "reader", "messages", "finished",
                 "status", "__weakref__")

    def __init__(self, socket_id: int, protocol: WebSocketProtocol, handler: Any, peer: str) -> None:
        self.id = socket_id
        self.protocol = protocol
        self.handler = handler
        self.peer = peer
        self.reader: Any = None                     # the greenlet reading now
        self.messages: Deque[Union[str, bytes]] = deque()   # read() mode: whole messages
        self.finished = Event()                     # set once the TCP connection is closed
        self.status: Optional[Tuple[int, str]] = None   # (code, reason) once closed


_sessions_by_driver: "weakref.WeakKeyDictionary[_driver.Driver, Dict[int, _Session]]" = (
    weakref.WeakKeyDictionary())


def _sessions(create: bool = False) -> Dict[int, _Session]:
    drv = _driver.default() if create else _driver.current()
    sessions = _sessions_by_driver.get(drv)
    if sessions is None:
        sessions = {}
        _sessions_by_driver[drv] = sessions
    return sessions


def _session(socket_id: int) -> Optional[_Session]:
    return _sessions().get(socket_id)


def _peer_name(socket_id: int) -> str:
    try:
        address = _socket.address(socket_id)
    except Exception:   # noqa: BLE001 - an id that is gone has no name
        return ""
    if address is None:
        return ""
    if isinstance(address, str):
        return address
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("websocket timeout")
    return left


# ---------------------------------------------------------------------- the I/O loop

def _flush(session: _Session) -> bool:
    out = session.protocol.take_output()
    return _socket.write(session.id, out) if out else True


def _finish(session: _Session, status: Tuple[int, str]) -> None:
    """Close the TCP connection (gracefully: our last frames still go out)."""
    if session.status is None:
        session.status = status
    if not session.finished.is_set():
        session.finished.set()
        _socket.close(session.id)
        sessions = _sessions()
        if sessions.get(session.id) is session and not session.messages:
            del sessions[session.id]


def _callback(session: _Session, name: str, *args: Any) -> Any:
    """Run handler.name(id, *args) if it exists; an exception is logged and
    closes the WebSocket with 1011."""
    fn = getattr(session.handler, name, None)
    if fn is None:
        return None
    try:
        return fn(session.id, *args)
    except Exception:
        logger.exception("websocket %d: handler.%s raised", session.id, name)
        if session.protocol.close(INTERNAL_ERROR, "handler error"):
            _flush(session)
        return None


def _process(session: _Session, events: Iterable[ProtocolEvent]) -> None:
    """Act on protocol events: queue or deliver messages, run callbacks,
    close the TCP connection once the protocol is done."""
    handler = session.handler
    _flush(session)
    for event in events:
        if isinstance(event, MessageReceived):
            if handler is None:
                session.messages.append(event.data)
            else:
                _callback(session, "message", event.data, event.kind)
        elif isinstance(event, PingReceived):
            _callback(session, "ping", event.data)
        elif isinstance(event, PongReceived):
            _callback(session, "pong", event.data)
        elif isinstance(event, Failed):
            logger.info("websocket %d (%s): %s", session.id, session.peer, event.error)
            _callback(session, "error", event.error)
        elif isinstance(event, Closed):
            _flush(session)
            _finish(session, (event.code, event.reason))
            _callback(session, "close", event.code, event.reason)
    _flush(session)
    if session.protocol.done and not session.finished.is_set():
        closed = session.protocol.closed
        _finish(session, (closed.code, closed.reason) if closed else (NORMAL, ""))


def _pump(session: _Session, deadline: Optional[float]) -> None:
    """Read one chunk from the socket and act on it; TimeoutError past
    ``deadline`` (nothing is lost: the bytes stay buffered)."""
    data = _socket.read(session.id, timeout=_remaining(deadline))
    session.protocol.feed(data)
    _process(session, session.protocol.events())


def _claim(session: _Session) -> None:
    if session.reader is not None:
        raise RuntimeError(f"websocket {session.id} is already read by another greenlet")
    session.reader = getcurrent()


# ---------------------------------------------------------------------- server side

def accept(socket_id: int, handler: Any = None, *, path: Optional[str] = None,
           max_message: int = MAX_MESSAGE, timeout: Optional[float] = 10.0) -> bool:
    """Serve the WebSocket handshake on an accepted, started id.

    Reads the HTTP upgrade request (at most ``timeout`` seconds), answers
    101, and returns True; a request that is not a valid upgrade gets 400,
    a path other than ``path`` (when given) 404, a refused ``handshake``
    callback 403; then the socket is closed and it returns False (also when
    the peer left first). Without ``handler``, use :func:`read` /
    :func:`write` on the id afterwards. With ``handler`` (callbacks, all
    optional: ``connect(id)``, ``handshake(id, headers, path)`` (return
    False to refuse), ``message(id, data, kind)``, ``ping(id, data)``,
    ``pong(id, data)``, ``close(id, code, reason)``, ``error(id, exc)``),
    accept runs the read loop itself and blocks the calling greenlet until
    the socket closes.
    """
    try:
        request = _http.read_request(socket_id, timeout=timeout)
    except _http.HttpError as exc:
        logger.info("websocket %d: bad request: %s", socket_id, exc)
        _http.write_error(socket_id, exc.status, exc.message)
        return False
    if request is None:
        _socket.close(socket_id)
        return False
    return accept_request(socket_id, request, handler, path=path, max_message=max_message)


def accept_request(socket_id: int, request: _http.HttpRequest, handler: Any = None, *,
                   path: Optional[str] = None, max_message: int = MAX_MESSAGE) -> bool:
    """Like :func:`accept`, for a request already read with
    :func:`gsocket.http.read_request` (a web server routing ``/`` and
    ``/ws`` on one port). Same answers, return value and blocking."""
    if path is not None and request.path != path:
        _http.write_error(socket_id, 404, request=request)
        return False
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.initiate_upgrade_connection(request.header_list, request.request.target)
        upgrade = next((e for e in ws.events() if isinstance(e, Request)), None)
    except (RemoteProtocolError, LocalProtocolError) as exc:
        upgrade, reason = None, str(exc)
    else:
        reason = "not a WebSocket upgrade"
    if upgrade is None:
        logger.info("websocket %d: %s %s refused: %s", socket_id, request.method, request.target, reason)
        _http.write_error(socket_id, 400, reason, request=request,
                          headers={"Sec-WebSocket-Version": "13"})
        return False
    if handler is not None and hasattr(handler, "handshake"):
        try:
            allowed = handler.handshake(socket_id, dict(request.headers), request.path)
        except Exception:
            logger.exception("websocket %d: handler.handshake raised", socket_id)
            allowed = False
        if allowed is False:
            _http.write_error(socket_id, 403, request=request)
            return False
    # No extensions: permessage-deflate could inflate past max_message unchecked.
    if not _socket.write(socket_id, ws.send(AcceptConnection(extensions=[]))):
        _socket.close(socket_id)
        return False
    assert ws.connection is not None
    session = _Session(socket_id, WebSocketProtocol(ws.connection, max_message=max_message),
                       handler, _peer_name(socket_id))
    _sessions(create=True)[socket_id] = session
    if handler is None:
        if request.extra:
            session.protocol.feed(request.extra)
            _process(session, session.protocol.events())
        return True
    _claim(session)
    try:
        _callback(session, "connect")
        if request.extra:
            session.protocol.feed(request.extra)
            _process(session, session.protocol.events())
        while not session.finished.is_set():
            _pump(session, None)
    finally:
        session.reader = None
    return True


# ---------------------------------------------------------------------- client side

def connect(url: str, headers: Union[Mapping[str, str], Iterable[Tuple[str, str]], None] = None, *,
            timeout: Optional[float] = None, ssl_context: Any = None,
            max_message: int = MAX_MESSAGE) -> int:
    """Open a WebSocket to ``url`` ("ws://host:port/path?query"); blocks the
    calling greenlet until the server answered 101 (at most ``timeout``
    seconds in all: TimeoutError). Returns the socket id, for read / write /
    close. ``headers`` are sent with the upgrade request. Raises
    ConnectionError when the server refuses (the HTTP status in the text)
    or drops the connection, OSError when it cannot be reached, ValueError
    on a bad url. "wss://" (or an ``ssl_context``) is TLS: the default
    context verifies the server's certificate and host name.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// url: {url!r}")
    secure = parts.scheme == "wss" or ssl_context is not None
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = _deadline(timeout)
    kwargs: Dict[str, Any] = {}
    if secure:
        if ssl_context is None:
            import ssl
            ssl_context = ssl.create_default_context()
        kwargs = {"ssl_context": ssl_context, "server_hostname": host}
    socket_id = _socket.open(host, port, timeout=_remaining(deadline), **kwargs)
    try:
        return _client_handshake(socket_id, host, port, target, headers, deadline, max_message, secure)
    except BaseException:
        _socket.close(socket_id)
        raise


def _client_handshake(socket_id: int, host: str, port: int, target: str, headers: Any,
                      deadline: Optional[float], max_message: int, secure: bool) -> int:
    ws = WSConnection(ConnectionType.CLIENT)
    name = f"[{host}]" if ":" in host else host
    if port != (443 if secure else 80):
        name = f"{name}:{port}"
    extra = list(_http._header_pairs(headers))
    _socket.write(socket_id, ws.send(Request(host=name, target=target, extra_headers=extra)))
    rejected: Optional[int] = None
    body = 0
    while True:
        data = _socket.read(socket_id, timeout=_remaining(deadline))
        if data is None:
            if rejected is not None:
                raise ConnectionError(f"websocket handshake refused: HTTP {rejected}")
            raise ConnectionError("websocket: the server closed during the handshake")
        try:
            ws.receive_data(data)
            events = list(ws.events())
        except RemoteProtocolError as exc:
            raise ConnectionError(f"websocket handshake failed: {exc}") from None
        for event in events:
            if isinstance(event, AcceptConnection):
                assert ws.connection is not None
                session = _Session(socket_id, WebSocketProtocol(ws.connection, max_message=max_message),
                                   None, _peer_name(socket_id))
                _sessions(create=True)[socket_id] = session
                _process(session, session.protocol.events())   # frames right after the 101
                return socket_id
            if isinstance(event, RejectConnection):
                rejected = event.status_code
                if not event.has_body:
                    raise ConnectionError(f"websocket handshake refused: HTTP {rejected}")
            elif isinstance(event, RejectData):
                body += len(event.data)
                if event.body_finished or body > _http.MAX_BODY:
                    raise ConnectionError(f"websocket handshake refused: HTTP {rejected}")


# ---------------------------------------------------------------------- both sides

def read(socket_id: int, *, timeout: Optional[float] = None) -> Union[bytes, str, None]:
    """The next whole message: str for text, bytes for binary. Blocks the
    calling greenlet until one arrives; None once the WebSocket is closed
    (by either side, or the connection dropped). TimeoutError after
    ``timeout`` seconds, with nothing lost. RuntimeError if a handler or
    another greenlet reads this id."""
    session = _session(socket_id)
    if session is None:
        return None
    if session.handler is not None:
        raise RuntimeError(f"websocket {socket_id} is read by its handler")
    deadline = _deadline(timeout)
    _claim(session)
    try:
        while True:
            if session.messages:
                return session.messages.popleft()
            if session.finished.is_set():
                sessions = _sessions()
                if sessions.get(socket_id) is session:
                    del sessions[socket_id]
                return None
            _pump(session, deadline)
    finally:
        session.reader = None


def write(socket_id: int, data: Data, kind: Optional[str] = None) -> bool:
    """Send one message: str as text, bytes as binary, unless ``kind``
    ("text" or "binary") says otherwise. Never blocks. False when the
    WebSocket is closing or gone."""
    session = _session(socket_id)
    if session is None:
        return False
    if not session.protocol.send(data, kind):
        return False
    return _flush(session)


def ping(socket_id: int, data: bytes = b"") -> bool:
    """Send a ping (at most 125 bytes); the pong goes to ``handler.pong``.
    Never blocks; False when the WebSocket is closing or gone."""
    session = _session(socket_id)
    if session is None or not session.protocol.ping(data):
        return False
    return _flush(session)


def close(socket_id: int, code: int = NORMAL, reason: str = "") -> None:
    """Close the WebSocket with ``code`` and ``reason``: send the close
    frame, wait (blocking the calling greenlet, at most CLOSE_TIMEOUT
    seconds) for the peer's reply, then close the socket. Messages still
    arriving meanwhile are dropped. Called from a handler callback it only
    sends the frame (the handler loop finishes the close). An id that is
    not an open WebSocket is closed as a plain socket."""
    session = _session(socket_id)
    if session is None:
        _socket.close(socket_id)
        return
    if session.protocol.close(code, reason):
        _flush(session)
    if session.protocol.done:
        _finish(session, (code, reason))
        return
    if session.reader is getcurrent():
        return
    if session.reader is not None:
        if not session.finished.wait(CLOSE_TIMEOUT):
            _finish(session, (code, reason))
        return
    deadline = _deadline(CLOSE_TIMEOUT)
    _claim(session)
    try:
        while not session.finished.is_set():
            _pump(session, deadline)
            session.messages.clear()
    except TimeoutError:
        logger.info("websocket %d: no close reply within %s s", socket_id, CLOSE_TIMEOUT)
        _finish(session, (code, reason))
    finally:
        session.reader = None
        session.messages.clear()
        sessions = _sessions()
        if sessions.get(socket_id) is session:
            del sessions[socket_id]


def addrinfo(socket_id: int) -> str:
    """The peer's "host:port" ("[::1]:port" for IPv6); "" for an unknown id.
    Never blocks."""
    session = _session(socket_id)
    return session.peer if session is not None else _peer_name(socket_id)

