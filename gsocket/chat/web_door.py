"""The browser door (docs/chat.md, ``--web PORT``): one HTTP port with
the chat page at ``/`` and the line protocol over a WebSocket at ``/ws``.

Each connection gets a greenlet. It reads HTTP requests with
:mod:`gsocket.http` (h11; keep-alive, one at a time) and answers them from
:class:`~gsocket.chat.web_site.WebSite` (static files, 404, 405; 400 / 408 /
431 for what h11 refuses), until a request asks for the WebSocket at
``/ws``: then :func:`gsocket.websocket.accept_request` takes the
connection over and its user is a :class:`WebSession`, a chat user
like any ``nc`` user: each server line is one text message, each message
from the browser is one line (several if it holds LFs) with the line door's
limits (line length, flood policy, slow consumer).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, List, Optional

from .. import driver as _driver
from .. import http, socket, websocket
from .events import Error, ErrorCode, Event
from .limits import FloodPolicy
from .door import Door, drop_if_slow, pace, refuse
from .protocol import MAX_LINE, decode_line
from .render import render_lines
from .web_site import WEBSOCKET_PATH, Reply, WebSite

__all__ = ["WebDoor", "WebSession", "MAX_REQUEST_HEAD", "KEEPALIVE_TIMEOUT", "MAX_MESSAGE"]

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
#: Largest WebSocket message from a browser (a paste of several lines);
#: beyond it the WebSocket closes with 1009.
MAX_MESSAGE = 16 * MAX_LINE


class WebSession:
    """One browser (the core's Session): events are rendered as the line
    protocol's lines, each sent as one WebSocket text message."""

    door = "web"
    __slots__ = ("id", "peer", "closed", "close_reason", "user", "closer", "_driver", "_spawn")

    def __init__(self, socket_id: int, peer: str, driver: Any, spawn: Callable[..., Any]) -> None:
        self.id = socket_id
        self.peer = peer
        self.closed = False
        self.close_reason: Optional[str] = None
        self.user: Any = None
        #: The greenlet closing the WebSocket, once close() was called.
        self.closer: Any = None
        self._driver = driver
        self._spawn = spawn

    def deliver(self, event: Event) -> None:
        """Send ``event`` as text messages, one per line; never blocks."""
        if self.closed:
            return
        for line in render_lines(event):
            websocket.write(self.id, line)

    def close(self, reason: str) -> None:
        """Close the WebSocket (code 1000) after what is queued; never
        blocks. The reader greenlet then disconnects the user."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        # websocket.close waits for the browser's reply: not here.
        self.closer = self._spawn(websocket.close, self.id, 1000, reason[:100])

    def drop(self, reason: str) -> None:
        """Close now, dropping unsent output (a browser that does not read)."""
        self.closed = True
        self.close_reason = reason
        self._driver.shutdown(self.id)

    def __repr__(self) -> str:
        nick = self.user.nick if self.user is not None else "?"
        return f"<WebSession {self.id} {nick} {self.peer}>"


class WebDoor(Door):
    """Serves the chat page and its WebSocket on one listener (``listen``,
    ``close``: :class:`~gsocket.chat.door.Door`); ``site``: the files
    served (default: the shipped page).
    """

    def __init__(self, service: Any, spawn: Callable[..., Any], *, site: Optional[WebSite] = None,
                 line_rate: float = 20.0, line_burst: int = 40, flood_patience: float = 5.0,
                 max_line: int = MAX_LINE, keepalive_timeout: float = KEEPALIVE_TIMEOUT) -> None:
        super().__init__(service, spawn)
        self.site = site if site is not None else WebSite()
        self.line_rate = line_rate
        self.line_burst = line_burst
        self.flood_patience = flood_patience
        self.max_line = max_line
        self.keepalive_timeout = keepalive_timeout

    # ------------------------------------------------------------------ HTTP

    def serve(self, socket_id: int, peer: str) -> None:
        """Serve one connection: HTTP requests, then (maybe) a chat user.
        Blocks the calling greenlet (its own) until the connection ends."""
        try:
            socket.start(socket_id)
        except ConnectionError:
            return
        socket.nodelay(socket_id)
        request: Optional[http.HttpRequest] = None
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                try:
                    request = http.read_request(socket_id, timeout=self.keepalive_timeout,
                                                max_header=MAX_REQUEST_HEAD, max_body=MAX_REQUEST_BODY,
                                                previous=request)
                except http.HttpError as exc:
                    logger.info("web %s: bad request: %s", peer, exc)
                    http.write_error(socket_id, exc.status, exc.message)
                    return
                if request is None:
                    return
                if self.site.is_websocket(request.method, request.target) and \
                        "websocket" in request.headers.get("upgrade", "").lower():
                    self._chat(socket_id, peer, request)
                    return
                reply = self.site.respond(request.method, request.target, request.headers)
                logger.debug("web %s %s %s -> %d", peer, request.method, request.target, reply.status)
                if not self._send(socket_id, request, reply):
                    return
        finally:
            socket.close(socket_id)

    @staticmethod
    def _send(socket_id: int, request: http.HttpRequest, reply: Reply) -> bool:
        """Write ``reply``; True when the connection stays open for the
        next request (keep-alive), False once it is closed."""
        close = reply.status == 400         # a client that sends nonsense: done with it
        return http.write_response(socket_id, reply.status, [("Server", "gsocket-chat"), *reply.headers],
                                   reply.body, request=request, close=close)

    # ------------------------------------------------------------------ WebSocket

    def _chat(self, socket_id: int, peer: str, request: http.HttpRequest) -> None:
        """The upgrade at /ws: the browser becomes a chat user until the
        WebSocket closes."""
        if not websocket.accept_request(socket_id, request, path=WEBSOCKET_PATH,
                                        max_message=MAX_MESSAGE):
            return
        session = WebSession(socket_id, peer, _driver.current(), self.spawn)
        socket.warning(socket_id, lambda id, kib: drop_if_slow(session, kib))
        service = self.service
        user = None
        try:
            user = service.connect(session)
            session.user = user
            self._read_messages(session, user)
        finally:
            if user is not None:
                service.disconnect(user, session.close_reason or "disconnected")
            if session.closer is not None:      # let the close handshake finish
                session.closer.join(websocket.CLOSE_TIMEOUT + 1)
            elif not session.closed:
                session.closed = True
                websocket.close(socket_id, 1000, "")

    def _read_messages(self, session: WebSession, user: Any) -> None:
        policy = FloodPolicy(self.line_rate, self.line_burst, self.flood_patience)
        service = self.service
        clock = time.monotonic
        while not session.closed:
            message = websocket.read(session.id, timeout=None)
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
                    refuse(session, ErrorCode.LINE_TOO_LONG,
                           f"line too long (over {self.max_line} bytes): disconnecting",
                           "line too long")
                    return
                if not pace(session, policy, clock()):
                    return
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
