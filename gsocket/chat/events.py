"""What happens in the chat, independent of any door's wire format.

The core (:mod:`gsocket.chat.core`) turns what users do into these events and
says which sessions receive each one; every door renders them in its own
format (the line door as section 8's text lines, an IRC door as IRC
messages). Events are frozen and carry only plain values, so they can also
cross nodes (:mod:`gsocket.chat.codec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, Union

__all__ = [
    "Said", "Private", "Joined", "Left", "Renamed", "Welcome", "History", "Members",
    "RoomList", "Help", "Notice", "Error", "Event", "ErrorCode", "Topic",
]


@dataclass(frozen=True)
class Said:
    """``nick`` said ``text`` in ``room`` (``action``: a /me)."""

    room: str
    nick: str
    text: str
    action: bool = False


@dataclass(frozen=True)
class Private:
    """A private message from ``sender`` to ``recipient``."""

    sender: str
    recipient: str
    text: str
    action: bool = False


@dataclass(frozen=True)
class Joined:
    """``nick`` entered ``room`` (joined it or connected into it)."""

    room: str
    nick: str


@dataclass(frozen=True)
class Left:
    """``nick`` left ``room``; ``reason``: "left" (a /join elsewhere or a
    part), "left: TEXT" (a part with a reason), "quit", "disconnected",
    "kicked" or "server stopped"."""

    room: str
    nick: str
    reason: str = "left"


@dataclass(frozen=True)
class Renamed:
    """``old`` is now ``new``; ``rooms`` are the rooms whose members hear it."""

    old: str
    new: str
    rooms: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Topic:
    """``nick`` set the topic of ``room`` to ``text`` (empty: cleared)."""

    room: str
    nick: str
    text: str


@dataclass(frozen=True)
class Welcome:
    """The greeting of a new session: its nick and first room."""

    nick: str
    room: str


@dataclass(frozen=True)
class History:
    """The last messages of ``room`` (oldest first), sent on joining it."""

    room: str
    entries: Tuple[Said, ...]


@dataclass(frozen=True)
class Members:
    """Reply to /who: the members of ``room`` across the whole service."""

    room: str
    nicks: Tuple[str, ...]


@dataclass(frozen=True)
class RoomList:
    """Reply to /rooms: (room, member count) pairs, sorted by name."""

    rooms: Tuple[Tuple[str, int], ...]


@dataclass(frozen=True)
class Help:
    """Reply to /help: (usage, what it does) pairs."""

    commands: Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class Notice:
    """A notice from the service (an announcement, a status change, the
    reply to a command that has nothing else to say)."""

    text: str


class ErrorCode:
    """The kinds of :class:`Error`, so that doors can map them (IRC numerics)."""

    UNKNOWN_COMMAND = "unknown-command"
    USAGE = "usage"
    BAD_NICK = "bad-nick"
    NICK_TAKEN = "nick-taken"
    NO_SUCH_NICK = "no-such-nick"
    BAD_ROOM = "bad-room"
    INVALID_UTF8 = "invalid-utf8"
    LINE_TOO_LONG = "line-too-long"
    FLOOD = "flood"
    NICK_LOST = "nick-lost"


@dataclass(frozen=True)
class Error:
    """Something the user asked for went wrong; ``code`` is an ErrorCode."""

    code: str
    text: str


Event = Union[Said, Private, Joined, Left, Renamed, Welcome, History, Members, RoomList,
              Help, Notice, Error, Topic]
