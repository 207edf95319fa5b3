"""The line protocol of docs/chat.md, sans-I/O: framing, names, commands.

:class:`LineSplitter` turns received bytes into lines (LF or CR LF, at most
:data:`MAX_LINE` bytes each); :func:`decode_line` checks the UTF-8;
:func:`parse_command` turns one line of text into a command. Nothing here
raises on any input except :class:`LineTooLong` from the splitter, the one
documented error (the caller answers it with a ``! `` line and disconnects).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

from .events import Error, ErrorCode

__all__ = [
    "MAX_LINE", "NAME_PATTERN", "LineTooLong", "LineSplitter", "decode_line", "valid_name",
    "name_key", "clean_text", "Command", "SayCmd", "NickCmd", "JoinCmd", "RoomsCmd", "WhoCmd",
    "MsgCmd", "MeCmd", "HelpCmd", "QuitCmd", "parse_command", "HELP",
]

#: Longest line a client may send, in bytes, without its LF / CR LF.
MAX_LINE = 4096

#: Nicks and room names: 1 to 32 of these characters.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")

# C0 controls (but tab) and DEL would let one client drive other
# people's terminals (escape sequences, carriage returns); they are removed.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class LineTooLong(ValueError):
    """A line (or the unterminated rest of one) passed MAX_LINE bytes."""


class LineSplitter:
    """Bytes in, lines out (without LF or CR LF), in order, whatever the
    chunking. Raises :class:`LineTooLong` as soon as a line is known to be
    longer than ``max_line``; after that the splitter is unusable."""

    __slots__ = ("max_line", "_buffer", "_searched")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._searched = 0

    def feed(self, data: bytes) -> List[bytes]:
        """Every whole line completed by ``data``; the rest is kept."""
        buffer = self._buffer
        buffer += data
        lines: List[bytes] = []
        start = 0
        limit = self.max_line
        search = self._searched
        while True:
            end = buffer.find(b"\n", search)
            if end < 0:
                break
            stop = end - 1 if end > start and buffer[end - 1] == 0x0D else end
            if stop - start > limit:
                raise LineTooLong(f"line of {stop - start} bytes (limit {limit})")
            lines.append(bytes(buffer[start:stop]))
            start = search = end + 1
        if start:
            del buffer[:start]
        rest = len(buffer)
        # A trailing CR may be the first half of a CR LF: allow it one byte.
        if rest > limit + (1 if rest and buffer[-1] == 0x0D else 0):
            raise LineTooLong(f"line of more than {limit} bytes")
        self._searched = rest
        return lines

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held back."""
        return len(self._buffer)


def decode_line(raw: bytes) -> Optional[str]:
    """The line as text, or None if it is not valid UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def valid_name(name: str) -> bool:
    """True when ``name`` is a valid nick or room name (1..32 of [A-Za-z0-9_-])."""
    return isinstance(name, str) and NAME_PATTERN.match(name) is not None


def name_key(name: str) -> str:
    """The case-insensitive key of a nick or room (names are ASCII)."""
    return name.lower()


def clean_text(text: str) -> str:
    """``text`` without control characters (tabs stay), ends stripped."""
    return _CONTROLS.sub("", text).strip()


# ---------------------------------------------------------------------- commands

@dataclass(frozen=True)
class SayCmd:
    """A message to the current room."""

    text: str


@dataclass(frozen=True)
class NickCmd:
    """``/nick NAME``: take a new nick."""

    name: str


@dataclass(frozen=True)
class JoinCmd:
    """``/join ROOM``: leave the current room for ``room``."""

    room: str


@dataclass(frozen=True)
class RoomsCmd:
    """``/rooms``: list the rooms with member counts."""


@dataclass(frozen=True)
class WhoCmd:
    """``/who``: list the members of the current room."""


@dataclass(frozen=True)
class MsgCmd:
    """``/msg NICK text``: a private message to ``nick``."""

    nick: str
    text: str


@dataclass(frozen=True)
class MeCmd:
    """``/me text``: an action in the current room."""

    text: str


@dataclass(frozen=True)
class HelpCmd:
    """``/help``: the list of commands."""


@dataclass(frozen=True)
class QuitCmd:
    """``/quit``: end the session and disconnect."""


Command = Union[SayCmd, NickCmd, JoinCmd, RoomsCmd, WhoCmd, MsgCmd, MeCmd, HelpCmd, QuitCmd]

#: (usage, what it does), as /help shows them.
HELP: Tuple[Tuple[str, str], ...] = (
    ("/nick NAME", "change your nick (1-32 of A-Z a-z 0-9 _ -)"),
    ("/join ROOM", "leave this room for ROOM (created if new)"),
    ("/rooms", "rooms and how many are in each"),
    ("/who", "who is in this room"),
    ("/msg NICK text", "a private message"),
    ("/me text", "an action"),
    ("/help", "this list"),
    ("/quit", "leave"),
    ("text", "a message to this room (start it with // to send a leading /)"),
)


def _usage(usage: str) -> Error:
    return Error(ErrorCode.USAGE, f"usage: {usage}")


def _name_error(kind: str, name: str) -> Error:
    code = ErrorCode.BAD_NICK if kind == "nick" else ErrorCode.BAD_ROOM
    shown = name if len(name) <= 40 else name[:40] + "..."
    return Error(code, f"bad {kind} {clean_text(shown)!r}: use 1-32 of A-Z a-z 0-9 _ -")


def parse_command(line: str) -> Union[Command, Error, None]:
    """One line of text -> a command, an :class:`Error` to show the user,
    or None for a line to ignore (blank). Never raises."""
    if not line or line.isspace():
        return None
    if not line.startswith("/"):
        text = clean_text(line)
        return SayCmd(text) if text else None
    if line.startswith("//"):
        text = clean_text(line[1:])
        return SayCmd(text) if text else None
    word, _, rest = line[1:].partition(" ")
    word = word.lower()
    rest = rest.strip()
    if word == "nick":
        if not rest or " " in rest:
            return _usage("/nick NAME")
        return NickCmd(rest) if valid_name(rest) else _name_error("nick", rest)
    if word == "join":
        if not rest or " " in rest:
            return _usage("/join ROOM")
        room = rest[1:] if rest.startswith("#") else rest   # IRC habit
        return JoinCmd(room) if valid_name(room) else _name_error("room", rest)
    if word == "msg":
        nick, _, text = rest.partition(" ")
        text = clean_text(text)
        if not nick or not text:
            return _usage("/msg NICK text")
        if not valid_name(nick):
            return _name_error("nick", nick)
        return MsgCmd(nick, text)
    if word == "me":
        text = clean_text(rest)
        return MeCmd(text) if text else _usage("/me text")
    if word == "rooms":
        return RoomsCmd()
    if word == "who":
        return WhoCmd()
    if word == "help":
        return HelpCmd()
    if word == "quit":
        return QuitCmd()
    shown = clean_text(word)[:40]
    return Error(ErrorCode.UNKNOWN_COMMAND, f"unknown command /{shown} (try /help)")
