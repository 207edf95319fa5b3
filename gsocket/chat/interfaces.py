"""The door interface (:class:`Session`), the cluster interface
(:class:`Cluster`), and the records the core hands around (:class:`User`,
:class:`Outbox`, :class:`Kick`). Sans-I/O: plain classes and protocols.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Protocol, Sequence, Tuple, Union

from .events import Event, Said
from .protocol import name_key

__all__ = ["Session", "Cluster", "User", "Outbox", "Kick", "Outgoing"]


class Session(Protocol):
    """One client of a door: the door interface.

    A door makes one per connection and renders, in its own format, every
    event the core sends it. Both methods are called from any greenlet and
    must never block.
    """

    #: "line", "irc", "web": for logs and the console.
    door: str
    #: The peer's "host:port".
    peer: str

    def deliver(self, event: Event) -> None:
        """Render ``event`` and queue it for the client."""

    def close(self, reason: str) -> None:
        """End the connection after what is queued; the door then calls
        :meth:`ChatCore.disconnect` with ``reason``."""


class Cluster(Protocol):
    """The other nodes of the service (Redis). Queries may block the
    calling greenlet; None means "unknown now" (the link is down)."""

    def claim(self, nick: str) -> bool:
        """Take ``nick`` for this node; False if another node holds it
        (True while the link is down: reconciled when it is back)."""

    def release(self, nick: str) -> None:
        """Give ``nick`` back, so that someone else may take it."""

    def next_guest(self) -> Optional[int]:
        """A service-wide counter for guest nicks, or None."""

    def locate(self, nick: str) -> Optional[bool]:
        """Is ``nick`` connected to another node?"""

    def remote_presence(self) -> Optional[Dict[str, Tuple[str, ...]]]:
        """nick -> rooms of every user on the other nodes."""

    def room_history(self, room: str) -> Optional[List[Said]]:
        """The room's last messages, oldest first."""

    def set_presence(self, nick: str, rooms: Tuple[str, ...]) -> None:
        """This node's user ``nick`` is in ``rooms`` (empty: gone)."""


class Kick:
    """A control event between nodes: close ``nick``'s session."""

    __slots__ = ("nick", "reason")

    def __init__(self, nick: str, reason: str = "kicked") -> None:
        self.nick = nick
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Kick) and (other.nick, other.reason) == (self.nick, self.reason)

    def __repr__(self) -> str:
        return f"Kick({self.nick!r}, {self.reason!r})"


Outgoing = Union[Event, Kick]


class User:
    """A client as the core knows it."""

    __slots__ = ("session", "nick", "key", "rooms", "connected")

    def __init__(self, session: Session, nick: str) -> None:
        self.session = session
        self.nick = nick
        self.key = name_key(nick)
        #: Rooms joined, in order; the last is the current one (line protocol).
        self.rooms: List[str] = []
        self.connected = True

    @property
    def room(self) -> Optional[str]:
        """The current room: where plain lines go."""
        return self.rooms[-1] if self.rooms else None

    def __repr__(self) -> str:
        return f"<User {self.nick} in {self.rooms}>"


class Outbox:
    """What one call of the core asks for: ``deliveries`` (event, sessions),
    events to ``publish`` to the other nodes (with ``record``: add to the
    room's shared history), and sessions to ``closing`` (with a reason)."""

    __slots__ = ("deliveries", "published", "closing")

    def __init__(self) -> None:
        self.deliveries: List[Tuple[Event, Sequence[Session]]] = []
        self.published: List[Tuple[Outgoing, bool]] = []
        self.closing: List[Tuple[Session, str]] = []

    def send(self, event: Event, sessions: Sequence[Session]) -> None:
        """Deliver ``event`` to each of ``sessions`` (nothing when empty)."""
        if sessions:
            self.deliveries.append((event, sessions))

    def reply(self, user: User, event: Event) -> None:
        """Deliver ``event`` to ``user``'s own session only."""
        self.deliveries.append((event, (user.session,)))

    def publish(self, event: Outgoing, record: bool = False) -> None:
        """Hand ``event`` to the other nodes (``record``: add it to the room's history)."""
        self.published.append((event, record))

    def close(self, session: Session, reason: str) -> None:
        """Ask for ``session`` to be closed, telling it ``reason``."""
        self.closing.append((session, reason))

    def extend(self, other: "Outbox") -> "Outbox":
        """Append everything ``other`` asks for; return this outbox."""
        self.deliveries.extend(other.deliveries)
        self.published.extend(other.published)
        self.closing.extend(other.closing)
        return self

    def events_for(self, session: Session) -> List[Event]:
        """The events delivered to ``session``, in order (for tests and logs)."""
        return [event for event, sessions in self.deliveries if session in sessions]

    def __repr__(self) -> str:
        return (f"<Outbox {len(self.deliveries)} deliveries, {len(self.published)} published, "
                f"{len(self.closing)} closing>")
