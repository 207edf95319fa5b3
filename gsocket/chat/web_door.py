"""The browser door (API.md section 8, ``--web PORT``): one HTTP port with
the chat page at ``/`` and the line protocol over a WebSocket at ``/ws``.

Each connection gets a greenlet. It reads HTTP requests with h11 (keep-alive,
one at a time) and answers them from :class:`~gsocket.chat.web_site.WebSite`
(static files, 404, 405; 400 for a request h11 cannot parse), until a
request asks for the WebSocket at ``/ws``: then the connection is handed to
:mod:`gsocket.websocket` and its user is a :class:`WebSession`, a chat user
like any ``nc`` user: each server line is one text message, each message
from the browser is one line (several if it holds LFs) with the line door's
limits (line length, flood policy, slow consumer).
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Any, Callable, Dict, List, Optional

import gevent
import h11

from .. import driver as _driver
from .. import socket
from .events import Error, ErrorCode, Event
from .limits import FloodPolicy
from .line_door import SLOW_CONSUMER_KIB
from .protocol import MAX_LINE, decode_line
from .render import render_lines
from .web_site import Reply, WebSite

__all__ = ["WebDoor", "WebSession", "MAX_REQUEST_HEAD", "KEEPALIVE_TIMEOUT"]

logger = logging.getLogger("gsocket.chat")

#: Largest request head (request line and headers) we read, in bytes;
#: beyond it the client gets 431 and is closed.
MAX_REQUEST_HEAD = 16 * 1024
#: Largest request body we read past (a GET has none); beyond it we close.
MAX_REQUEST_BODY = 64 * 1024
#: Seconds a connection may sit between requests (or in the middle of one).
KEEPALIVE_TIMEOUT = 30.0
#: Requests served on one connection before it is closed.
MAX_REQUESTS_PER_CONNECTION = 100


class _ClientGone(Exception):
    """The peer closed, timed out or sent garbage: stop serving it."""


class WebSession:
    """One browser (the core's Session): events are rendered as the line
    protocol's lines, each sent as one WebSocket text message."""

    door = "web"
    __slots__ = ("id", "peer", "closed", "close_reason", "user", "_driver")

    def __init__(self, socket_id: int, peer: str, driver: Any) -> None:
        self.id = socket_id
        self.peer = peer
        self.closed = False
        self.close_reason: Optional[str] = None
        self.user: Any = None
        self._driver = driver

    def deliver(self, event: Event) -> None:
        """Send ``event`` as text messages, one per line; never blocks."""
        if self.closed:
            return
        from .. import websocket
        for line in render_lines(event):
            websocket.write(self.id, line)

    def close(self, reason: str) -> None:
        """Close the WebSocket (code 1000) after what is queued; never
        blocks. The reader greenlet then disconnects the user."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        from .. import websocket
        gevent.spawn(websocket.close, self.id, 1000, reason[:100])

    def drop(self, reason: str) -> None:
        """Close now, dropping unsent output (a browser that does not read)."""
        self.closed = True
        self.close_reason = reason
        self._driver.shutdown(self.id)

    def __repr__(self) -> str:
        nick = self.user.nick if self.user is not None else "?"
        return f"<WebSession {self.id} {nick} {self.peer}>"


class WebDoor:
    """Serves the chat page and its WebSocket on one listener.

    ``service`` is the :class:`~gsocket.chat.server.ChatService`; ``spawn``
    runs a callable in a new greenlet (the server tracks them); ``site``
    the files served (default: the shipped page).
    """

    def __init__(self, service: Any, spawn: Callable[..., Any], *, site: Optional[WebSite] = None,
                 line_rate: float = 20.0, line_burst: int = 40, flood_patience: float = 5.0,
                 max_line: int = MAX_LINE, keepalive_timeout: float = KEEPALIVE_TIMEOUT) -> None:
        self.service = service
        self.spawn = spawn
        self.site = site if site is not None else WebSite()
        self.line_rate = line_rate
        self.line_burst = line_burst
        self.flood_patience = flood_patience
        self.max_line = max_line
        self.keepalive_timeout = keepalive_timeout
        self.listen_id: Optional[int] = None

    def listen(self, host: str, port: int, reuseport: bool = False, backlog: int = 1024) -> int:
        """Bind and start accepting; returns the listen id. OSError if the
        address cannot be bound."""
        if reuseport:
            listen_id = _driver.default().listen(host, port, backlog, 0, reuseport=True)
        else:
            listen_id = socket.listen(host, port, backlog)
        socket.start(listen_id, self._accepted)
        self.listen_id = listen_id
        return listen_id

    def close(self) -> None:
        """Stop accepting (the port is released)."""
        if self.listen_id is not None:
            socket.close(self.listen_id)
            self.listen_id = None

    def _accepted(self, socket_id: int, peer: str) -> None:
        self.spawn(self.serve, socket_id, peer)

    # ------------------------------------------------------------------ HTTP

    def serve(self, socket_id: int, peer: str) -> None:
        """Serve one connection: HTTP requests, then (maybe) a chat user.
        Blocks the calling greenlet (its own) until the connection ends."""
        try:
            socket.start(socket_id)
        except ConnectionError:
            return
        socket.nodelay(socket_id)
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                request = self._next_request(connection, socket_id, peer)
                if request is None:
                    return
                method = request.method.decode("ascii", "replace")
                target = request.target.decode("ascii", "replace")
                headers = self._headers(request)
                if self.site.is_websocket(method, target) and "websocket" in headers.get("upgrade", "").lower():
                    self._upgrade(socket_id, peer, connection, request)
                    return
                reply = self.site.respond(method, target, headers)
                logger.debug("web %s %s %s -> %d", peer, method, target, reply.status)
                if not self._send(connection, socket_id, reply):
                    return
                if not self._finish_request(connection, socket_id):
                    return
                connection.start_next_cycle()
        except _ClientGone:
            return
        finally:
            socket.close(socket_id)

    @staticmethod
    def _headers(request: h11.Request) -> Dict[str, str]:
        headers: Dict[str, str] = {}
        for name, value in request.headers:
            key = name.decode("latin-1")      # h11 gives names in lower case
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        return headers

    def _receive(self, connection: h11.Connection, socket_id: int) -> None:
        try:
            data = socket.read(socket_id, timeout=self.keepalive_timeout)
        except TimeoutError:
            raise _ClientGone("idle") from None
        connection.receive_data(data or b"")

    def _next_request(self, connection: h11.Connection, socket_id: int, peer: str) -> Optional[h11.Request]:
        """The next request head, or None when the client is done (closed,
        idle, or sent something h11 refuses: then it got a 4xx)."""
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
                logger.info("web %s: bad request (%s): %d", peer, exc, status)
                if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    body = f"bad request: {exc}\n".encode()
                    reply = Reply(status, [("Content-Type", "text/plain; charset=utf-8"),
                                           ("Content-Length", str(len(body))), ("Connection", "close")],
                                  body)
                    self._send(connection, socket_id, reply, force=True)
                return None
            if event is h11.NEED_DATA:
                self._receive(connection, socket_id)
            elif isinstance(event, h11.Request):
                return event
            else:       # ConnectionClosed, or PAUSED after a close
                return None

    def _finish_request(self, connection: h11.Connection, socket_id: int) -> bool:
        """Read past the request's body (if any); True when the connection
        can serve another request."""
        skipped = 0
        while connection.their_state is h11.SEND_BODY:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError:
                return False
            if event is h11.NEED_DATA:
                self._receive(connection, socket_id)
            elif isinstance(event, h11.Data):
                skipped += len(event.data)
                if skipped > MAX_REQUEST_BODY:
                    return False
            elif not isinstance(event, h11.EndOfMessage):
                return False
        return connection.our_state is h11.DONE and connection.their_state is h11.DONE

    @staticmethod
    def _send(connection: h11.Connection, socket_id: int, reply: Reply, force: bool = False) -> bool:
        """Write ``reply``; False if the socket is gone or h11 refuses."""
        headers = [("Server", "gsocket-chat"), *reply.headers]
        try:
            reason = HTTPStatus(reply.status).phrase.encode()
        except ValueError:
            reason = b""
        try:
            if force:       # after a protocol error h11 is in ERROR: build the reply by hand
                status_line = b"HTTP/1.1 %d %s\r\n" % (reply.status, reason)
                head = b"".join(name.encode() + b": " + value.encode() + b"\r\n" for name, value in headers)
                data = status_line + head + b"\r\n" + reply.body
            else:
                data = connection.send(h11.Response(status_code=reply.status, headers=headers, reason=reason))
                if reply.body:
                    data += connection.send(h11.Data(data=reply.body))
                data += connection.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            logger.warning("web reply %d refused by h11: %s", reply.status, exc)
            return False
        return socket.write(socket_id, data)

    # ------------------------------------------------------------------ WebSocket

    def _upgrade(self, socket_id: int, peer: str, connection: h11.Connection, request: h11.Request) -> None:
        raise NotImplementedError("waiting for gsocket.websocket")

    def _read_messages(self, session: WebSession, user: Any) -> None:
        from .. import websocket
        policy = FloodPolicy(self.line_rate, self.line_burst, self.flood_patience)
        service = self.service
        clock = time.monotonic
        while not session.closed:
            message = websocket.read(session.id)
            if message is None:
                return
            if isinstance(message, (bytes, bytearray)):
                text = decode_line(bytes(message))
                if text is None:
                    session.deliver(Error(ErrorCode.INVALID_UTF8, "invalid UTF-8: message ignored"))
                    continue
            else:
                text = message
            for line in self._lines(text):
                if len(line.encode("utf-8")) > self.max_line:
                    self._refuse(session, ErrorCode.LINE_TOO_LONG,
                                 f"line too long (over {self.max_line} bytes): disconnecting", "line too long")
                    return
                verdict = policy.line(clock())
                if verdict.disconnect:
                    self._refuse(session, ErrorCode.FLOOD, "flooding: disconnecting", "flooding")
                    return
                if verdict.warn:
                    logger.info("%s (%s) throttled: over %g lines/s", user.nick, session.peer, self.line_rate)
                    session.deliver(Error(ErrorCode.FLOOD, f"slow down: over {self.line_rate:g} lines/s, throttled"))
                if verdict.delay:
                    gevent.sleep(verdict.delay)
                service.line(user, line)
                if session.closed:
                    return

    @staticmethod
    def _lines(text: str) -> List[str]:
        """A browser message as lines: split at LF, CR LF tolerated."""
        if "\n" not in text:
            return [text[:-1] if text.endswith("\r") else text]
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [line[:-1] if line.endswith("\r") else line for line in lines]

    @staticmethod
    def _refuse(session: WebSession, code: str, text: str, reason: str) -> None:
        logger.warning("%s (%s): %s", session.user.nick if session.user else "?", session.peer, reason)
        session.deliver(Error(code, text))
        session.close(reason)

    @staticmethod
    def _on_warning(session: WebSession, kib: int) -> None:
        if kib >= SLOW_CONSUMER_KIB and not session.closed:
            nick = session.user.nick if session.user is not None else "?"
            logger.warning("%s (%s) does not read: %d KiB pending, disconnecting", nick, session.peer, kib)
            session.drop("not reading")
