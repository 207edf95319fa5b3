"""What every door shares: one listener whose clients are each served in
their own greenlet, and the slow-consumer and refusal paths.

A door (:mod:`~gsocket.chat.line_door`, :mod:`~gsocket.chat.web_door`,
:mod:`~gsocket.chat.irc_door`) subclasses :class:`Door` and writes
:meth:`Door.serve`; its sessions have ``user``, ``peer``, ``closed``,
``deliver``, ``close`` and ``drop``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Tuple

import gevent

from .. import socket
from .events import Error, ErrorCode
from .limits import FloodPolicy

__all__ = ["Door", "SLOW_CONSUMER_KIB", "refuse", "drop_if_slow", "pace"]

logger = logging.getLogger("gsocket.chat")

#: Pending output (KiB) that makes a client a slow consumer: skynet's first
#: SOCKET_WARNING threshold, 1 MiB.
SLOW_CONSUMER_KIB = 1024


class Door:
    """Accepts clients on one listener; each is served by :meth:`serve` in
    a greenlet of its own. ``service`` is the
    :class:`~gsocket.chat.server.ChatService`; ``spawn`` runs a callable
    in a new greenlet (the server tracks them)."""

    def __init__(self, service: Any, spawn: Callable[..., Any]) -> None:
        self.service = service
        self.spawn = spawn
        self.listen_id: Optional[int] = None

    def listen(self, host: str, port: int, reuseport: bool = False, backlog: int = 1024) -> int:
        """Bind and start accepting; returns the listen id. OSError if the
        address cannot be bound. Never blocks."""
        listen_id = socket.listen(host, port, backlog, reuseport=reuseport)
        socket.start(listen_id, self._accepted)
        self.listen_id = listen_id
        return listen_id

    def close(self) -> None:
        """Stop accepting (the port is released). Never blocks."""
        if self.listen_id is not None:
            socket.close(self.listen_id)
            self.listen_id = None

    def stop(self, grace: float) -> Tuple[int, int]:
        """Stop accepting at once, give the clients ``grace`` seconds to be
        closed by their greenlets, shut the rest down (``socket.stop``).
        Returns (closed in time, closed by force); blocks up to ``grace``."""
        listen_id, self.listen_id = self.listen_id, None
        if listen_id is None:
            return (0, 0)
        return socket.stop(listen_id, grace)

    def _accepted(self, socket_id: int, peer: str) -> None:
        self.spawn(self.serve, socket_id, peer)

    def serve(self, socket_id: int, peer: str) -> None:
        """Serve one client until it is gone. Blocks the calling greenlet (its own)."""
        raise NotImplementedError


def _nick(session: Any) -> str:
    return session.user.nick if session.user is not None else "?"


def refuse(session: Any, code: str, text: str, reason: str) -> None:
    """Tell the client ``text`` (an Error of ``code``), then close it
    after its queued output. Never blocks."""
    logger.warning("%s (%s): %s", _nick(session), session.peer, reason)
    session.deliver(Error(code, text))
    session.close(reason)


def drop_if_slow(session: Any, kib: int) -> None:
    """The SOCKET_WARNING callback: a client with :data:`SLOW_CONSUMER_KIB`
    pending is dropped at once, its unsent output thrown away."""
    if kib >= SLOW_CONSUMER_KIB and not session.closed:
        logger.warning("%s (%s) does not read: %d KiB pending, disconnecting", _nick(session),
                       session.peer, kib)
        session.drop("not reading")


def pace(session: Any, policy: FloodPolicy, now: float) -> bool:
    """Apply the flood policy to one line received at ``now``: True to
    handle it, False when the client was flooding and is being
    disconnected. A throttled client is told once and its line is held
    back for the policy's delay: blocks the calling greenlet that long."""
    verdict = policy.line(now)
    if verdict.disconnect:
        refuse(session, ErrorCode.FLOOD, "flooding: disconnecting", "flooding")
        return False
    if verdict.warn:
        logger.info("%s (%s) throttled: over %g lines/s", _nick(session), session.peer, policy.rate)
        session.deliver(Error(ErrorCode.FLOOD, f"slow down: over {policy.rate:g} lines/s, throttled"))
    if verdict.delay:
        gevent.sleep(verdict.delay)
    return True
