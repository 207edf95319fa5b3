"""The line-protocol door (docs/chat.md): one greenlet per TCP client.

Each client is a :class:`LineSession`: the core's events are rendered by
:mod:`gsocket.chat.render` and written with ``socket.write`` (never
blocking). The reader greenlet splits the input into lines
(:class:`~gsocket.chat.protocol.LineSplitter`), applies the flood policy and
hands each line to the service. A client whose pending output passes
:data:`SLOW_CONSUMER_KIB` (SOCKET_WARNING) is disconnected at once, dropping
what it did not read, so it never slows anyone else.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, List, Optional

import gevent

from .. import driver as _driver
from .. import socket
from .door import SLOW_CONSUMER_KIB, Door, drop_if_slow, pace, refuse
from .events import Error, ErrorCode, Event
from .limits import FloodPolicy
from .protocol import MAX_LINE, LineSplitter, LineTooLong, decode_line
from .render import render_bytes

__all__ = ["LineSession", "LineDoor", "SLOW_CONSUMER_KIB"]

logger = logging.getLogger("gsocket.chat")


class LineSession:
    """One line-protocol client (the core's Session).

    Deliveries are coalesced: what one turn of the event loop sends to a
    session goes out as one write (fan-out of a burst of messages costs one
    system call per member, not one per message), flushed by a callback at
    the end of the turn, before the loop polls again.
    """

    door = "line"
    __slots__ = ("id", "peer", "closed", "close_reason", "_driver", "_loop", "_pending", "user")

    def __init__(self, socket_id: int, peer: str, driver: Any) -> None:
        self.id = socket_id
        self.peer = peer
        self.closed = False
        self.close_reason: Optional[str] = None
        self._driver = driver
        self._loop = gevent.get_hub().loop
        self._pending: Optional[List[bytes]] = None
        self.user: Any = None

    def deliver(self, event: Event) -> None:
        """Render ``event`` as lines and queue them; never blocks."""
        if not self.closed:
            self.queue(self.render(event))

    def render(self, event: Event) -> bytes:
        """``event`` in this door's wire format (the line protocol's lines)."""
        return render_bytes(event)

    def queue(self, data: bytes) -> None:
        """Queue ``data`` for the client (written at the end of this turn
        of the event loop); never blocks. Nothing once closed."""
        if self.closed or not data:
            return
        pending = self._pending
        if pending is None:
            self._pending = [data]
            self._loop.run_callback(self.flush)
        else:
            pending.append(data)

    def flush(self) -> None:
        """Write what was delivered since the last flush. Never blocks."""
        pending, self._pending = self._pending, None
        if pending and not self.closed:
            self._driver.send(self.id, pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self, reason: str) -> None:
        """Close after the queued output (graceful); never blocks. The
        reader greenlet then sees the close and disconnects the user."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        self.close_reason = reason
        self._driver.close(self.id)

    def drop(self, reason: str) -> None:
        """Close now, dropping unsent output (a client that does not read)."""
        self.closed = True
        self.close_reason = reason
        self._pending = None
        self._driver.shutdown(self.id)

    def __repr__(self) -> str:
        nick = self.user.nick if self.user is not None else "?"
        return f"<LineSession {self.id} {nick} {self.peer}>"


class LineDoor(Door):
    """Accepts line-protocol clients on a listener and serves each one
    (``listen``, ``close``: :class:`~gsocket.chat.door.Door`).
    """

    def __init__(self, service: Any, spawn: Callable[..., Any], *, line_rate: float = 20.0,
                 line_burst: int = 40, flood_patience: float = 5.0,
                 max_line: int = MAX_LINE) -> None:
        super().__init__(service, spawn)
        self.line_rate = line_rate
        self.line_burst = line_burst
        self.flood_patience = flood_patience
        self.max_line = max_line

    def serve(self, socket_id: int, peer: str) -> None:
        """Serve one client until it quits, is disconnected or the server
        stops. Blocks the calling greenlet (its own)."""
        try:
            socket.start(socket_id)
        except ConnectionError:
            return
        socket.nodelay(socket_id)
        session = LineSession(socket_id, peer, _driver.current())
        socket.warning(socket_id, lambda id, kib: drop_if_slow(session, kib))
        service = self.service
        user = None
        try:
            user = service.connect(session)
            session.user = user
            self._read_lines(session, user)
        finally:
            if user is not None:
                service.disconnect(user, session.close_reason or "disconnected")
            socket.close(socket_id)

    def _read_lines(self, session: LineSession, user: Any) -> None:
        socket_id = session.id
        splitter = LineSplitter(self.max_line)
        policy = FloodPolicy(self.line_rate, self.line_burst, self.flood_patience)
        service = self.service
        clock = time.monotonic
        while not session.closed:
            data = socket.read(socket_id)
            if data is None:
                return
            try:
                lines = splitter.feed(data)
            except LineTooLong:
                refuse(session, ErrorCode.LINE_TOO_LONG,
                             f"line too long (over {self.max_line} bytes): disconnecting", "line too long")
                return
            for raw in lines:
                if not pace(session, policy, clock()):
                    return
                text = decode_line(raw)
                if text is None:
                    session.deliver(Error(ErrorCode.INVALID_UTF8, "invalid UTF-8: line ignored"))
                    continue
                service.line(user, text)
                if session.closed:
                    return
