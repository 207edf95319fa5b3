"""Chat events -> IRC messages, sans-I/O.

:class:`IrcRenderer` writes what the IRC door sends: the core's events
(:mod:`gsocket.chat.events`) as the messages an IRC client expects
(``PRIVMSG``, ``JOIN``, ``PART``, ``QUIT``, ``NICK``, ``TOPIC``,
``NOTICE``), and the numeric replies. Every message it returns obeys the
512-byte rule: a long text (a line-protocol user may write 4096 bytes) is
cut into several messages by :func:`~gsocket.chat.irc_protocol.format_split`.

Rooms are channels: room ``lobby`` is ``#lobby``. Users are written
``nick!nick@HOST`` (HOST: :attr:`IrcRenderer.user_host`): the chat knows
no user names or hosts, and clients only need the nick.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple

from .events import (
    Error, Event, Help, History, Joined, Left, Members, Notice, Private, Renamed, RoomList, Said,
    Topic, Welcome,
)
from .irc_protocol import MAX_CONTENT, Numeric, format_message, format_split

__all__ = ["IrcRenderer", "channel", "room_of", "ACTION", "PART_REASON"]

#: The CTCP ACTION wrapper (a ``/me``): ``\\x01ACTION text\\x01``.
ACTION = "\x01ACTION "
#: The :class:`~gsocket.chat.events.Left` reason that is a PART (also with
#: ``": TEXT"`` after it, a PART's own reason); every other reason (quit,
#: disconnected, kicked, server stopped) is a QUIT.
PART_REASON = "left"


def channel(room: str) -> str:
    """The channel of a room: ``#`` + its name."""
    return "#" + room


def room_of(target: str) -> Optional[str]:
    """The room a channel names (``#lobby`` -> ``lobby``), or None when
    ``target`` is not a channel."""
    return target[1:] if target.startswith("#") and len(target) > 1 else None


class IrcRenderer:
    """Renders events and replies for the IRC door. ``server_name`` is the
    prefix of server messages and numerics; ``user_host`` the host part
    of every user's prefix. Holds no per-client state: ``me`` (the
    recipient's nick, ``*`` before it has one) is passed in."""

    def __init__(self, server_name: str = "gsocket", user_host: str = "gsocket") -> None:
        if not server_name or " " in server_name or not user_host or " " in user_host:
            raise ValueError("server_name and user_host must be non-empty words")
        self.server_name = server_name
        self.user_host = user_host
        # Fan-out renders one event for many clients in a row: keep the last.
        self._last_event: object = None
        self._last_data = b""

    # ------------------------------------------------------------------ pieces

    def prefix(self, nick: str) -> str:
        """``nick!nick@HOST``: how a user appears as a message's source."""
        return f"{nick}!{nick}@{self.user_host}"

    def numeric(self, code: str, me: str, *params: str) -> bytes:
        """One numeric reply to ``me`` (long last parameters are cut into
        several messages)."""
        return b"".join(format_split(code, me or "*", *_safe(params), prefix=self.server_name))

    def server(self, command: str, *params: str) -> bytes:
        """A message from the server itself (``NOTICE``, ``PONG``, ``CAP``...)."""
        return b"".join(format_split(command, *_safe(params), prefix=self.server_name))

    def from_user(self, nick: str, command: str, *params: str) -> bytes:
        """A message whose source is user ``nick`` (``PRIVMSG``, ``JOIN``...)."""
        return b"".join(format_split(command, *_safe(params), prefix=self.prefix(nick)))

    def notice(self, me: str, text: str) -> bytes:
        """A server NOTICE to ``me``, one message per line of ``text``."""
        return b"".join(self.server("NOTICE", me or "*", line) for line in text.split("\n") if line)

    def text(self, nick: str, command: str, target: str, text: str, action: bool) -> bytes:
        """``PRIVMSG``/``NOTICE`` from ``nick`` to ``target``; an action is
        wrapped in CTCP ACTION, each piece of a long one on its own."""
        if not action:
            return self.from_user(nick, command, target, text)
        text = text.translate(_TEXT_SAFE)
        head = len(f":{self.prefix(nick)} {command} {target} :{ACTION}\x01".encode("utf-8"))
        pieces = _pieces(text, MAX_CONTENT - head)
        return b"".join(format_message(command, target, f"{ACTION}{piece}\x01", prefix=self.prefix(nick))
                        for piece in pieces)

    # ------------------------------------------------------------------ replies

    def welcome(self, me: str, version: str, created: str, network: str) -> bytes:
        """The registration replies 001-005, as bytes ready to send."""
        host = self.server_name
        return b"".join([
            self.numeric(Numeric.RPL_WELCOME, me, f"Welcome to the {network} chat, {self.prefix(me)}"),
            self.numeric(Numeric.RPL_YOURHOST, me, f"Your host is {host}, running gsocket-{version}"),
            self.numeric(Numeric.RPL_CREATED, me, f"This server was created {created}"),
            self.numeric(Numeric.RPL_MYINFO, me, host, f"gsocket-{version}", "i", "t"),
            self.numeric(Numeric.RPL_ISUPPORT, me, "CHANTYPES=#", "PREFIX=", "NICKLEN=32",
                         "CHANNELLEN=33", "TOPICLEN=300", "CASEMAPPING=ascii", f"NETWORK={network}",
                         "are supported by this server"),
        ])

    def motd(self, me: str, lines: Optional[Sequence[str]]) -> bytes:
        """The message of the day (375, 372..., 376), or 422 when there is none."""
        if not lines:
            return self.numeric(Numeric.ERR_NOMOTD, me, "MOTD File is missing")
        out = [self.numeric(Numeric.RPL_MOTDSTART, me, f"- {self.server_name} Message of the day - ")]
        out.extend(self.numeric(Numeric.RPL_MOTD, me, f"- {line}") for line in lines)
        out.append(self.numeric(Numeric.RPL_ENDOFMOTD, me, "End of /MOTD command."))
        return b"".join(out)

    def names(self, me: str, room: str, nicks: Iterable[str]) -> bytes:
        """353 lines (as many as the nicks need) and 366 for ``room``."""
        name = channel(room)
        head = len(f":{self.server_name} {Numeric.RPL_NAMREPLY} {me} = {name} :".encode("utf-8"))
        out: List[bytes] = []
        line: List[str] = []
        size = head
        for nick in nicks:
            if line and size + len(nick) + 1 > MAX_CONTENT:
                out.append(self.numeric(Numeric.RPL_NAMREPLY, me, "=", name, " ".join(line)))
                line, size = [], head
            line.append(nick)
            size += len(nick) + 1
        if line:
            out.append(self.numeric(Numeric.RPL_NAMREPLY, me, "=", name, " ".join(line)))
        out.append(self.numeric(Numeric.RPL_ENDOFNAMES, me, name, "End of /NAMES list."))
        return b"".join(out)

    def who(self, me: str, mask: str, rows: Iterable[Tuple[str, str]]) -> bytes:
        """352 for each (channel or ``*``, nick) row, then 315 for ``mask``."""
        host, server = self.user_host, self.server_name
        out = [self.numeric(Numeric.RPL_WHOREPLY, me, where, nick, host, server, nick, "H", f"0 {nick}")
               for where, nick in rows]
        out.append(self.numeric(Numeric.RPL_ENDOFWHO, me, mask, "End of /WHO list."))
        return b"".join(out)

    def room_list(self, me: str, rooms: Iterable[Tuple[str, int, str]]) -> bytes:
        """321, a 322 per (room, members, topic), 323."""
        out = [self.numeric(Numeric.RPL_LISTSTART, me, "Channel", "Users  Name")]
        out.extend(self.numeric(Numeric.RPL_LIST, me, channel(room), str(count), topic)
                   for room, count, topic in rooms)
        out.append(self.numeric(Numeric.RPL_LISTEND, me, "End of /LIST"))
        return b"".join(out)

    def topic(self, me: str, room: str, topic: Optional[Topic]) -> bytes:
        """332 with the topic of ``room``, or 331 when it has none."""
        if topic is None or not topic.text:
            return self.numeric(Numeric.RPL_NOTOPIC, me, channel(room), "No topic is set")
        return self.numeric(Numeric.RPL_TOPIC, me, channel(topic.room), topic.text)

    # ------------------------------------------------------------------ events

    def event(self, event: Event, me: str) -> bytes:
        """``event`` as the messages a client with nick ``me`` is sent (may
        be empty: the line protocol's greeting has no IRC form). Never raises."""
        if event is self._last_event:
            return self._last_data
        data, shared = self._event(event, me)
        if shared:       # the same bytes for every recipient: worth keeping
            self._last_event, self._last_data = event, data
        return data

    def _event(self, event: Event, me: str) -> Tuple[bytes, bool]:
        kind = type(event)
        if kind is Said:
            said: Said = event  # type: ignore[assignment]
            return self.text(said.nick, "PRIVMSG", channel(said.room), said.text, said.action), True
        if kind is Joined:
            return self.from_user(event.nick, "JOIN", channel(event.room)), True  # type: ignore[union-attr]
        if kind is Left:
            left: Left = event  # type: ignore[assignment]
            if left.reason == PART_REASON:
                return self.from_user(left.nick, "PART", channel(left.room)), True
            if left.reason.startswith(PART_REASON + ": "):
                text = left.reason[len(PART_REASON) + 2:]
                return self.from_user(left.nick, "PART", channel(left.room), text), True
            return self.from_user(left.nick, "QUIT", _quit_text(left.reason)), True
        if kind is Renamed:
            return self.from_user(event.old, "NICK", event.new), True  # type: ignore[union-attr]
        if kind is Topic:
            topic: Topic = event  # type: ignore[assignment]
            return self.from_user(topic.nick, "TOPIC", channel(topic.room), topic.text), True
        if kind is Private:
            pm: Private = event  # type: ignore[assignment]
            return self.text(pm.sender, "PRIVMSG", me, pm.text, pm.action), False
        if kind is History:
            history: History = event  # type: ignore[assignment]
            target = channel(history.room)
            return b"".join(self.server("NOTICE", target, _history_line(entry))
                            for entry in history.entries), True
        if kind is Members:
            members: Members = event  # type: ignore[assignment]
            return self.names(me, members.room, members.nicks), False
        if kind is RoomList:
            rooms: RoomList = event  # type: ignore[assignment]
            return self.room_list(me, [(room, count, "") for room, count in rooms.rooms]), False
        if kind is Help:
            help_: Help = event  # type: ignore[assignment]
            return self.notice(me, "\n".join(f"{usage}: {what}" for usage, what in help_.commands)), False
        if kind is Welcome:
            return b"", False
        if kind is Notice or kind is Error:
            return self.notice(me, event.text), False  # type: ignore[union-attr]
        return self.notice(me, repr(event)), False


#: What no IRC parameter may hold (a CR or LF would end the message early,
#: letting a chat text inject commands): a space in texts, ``_`` in words.
_TEXT_SAFE = str.maketrans("\r\n\0", "   ")
_WORD_SAFE = str.maketrans("\r\n\0 ", "____")


def _safe(params: Sequence[str]) -> Sequence[str]:
    """``params`` made valid: chat texts and client-given words (a WHO mask,
    a PING token) may hold what IRC cannot carry."""
    if not params:
        return params
    *middle, last = params
    words = [word.translate(_WORD_SAFE).lstrip(":") or "*" for word in middle]
    return (*words, last.translate(_TEXT_SAFE))


def _quit_text(reason: str) -> str:
    if reason == "quit":
        return "Quit"
    if reason.startswith("quit: "):
        return "Quit: " + reason[len("quit: "):]
    return reason.capitalize() if reason else "Quit"


def _history_line(said: Said) -> str:
    if said.action:
        return f"[history] * {said.nick} {said.text}"
    return f"[history] <{said.nick}> {said.text}"


def _pieces(text: str, budget: int) -> List[str]:
    """``text`` cut into pieces of at most ``budget`` UTF-8 bytes, at
    character boundaries."""
    pieces: List[str] = []
    current: List[str] = []
    size = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if current and size + width > budget:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    if current or not pieces:
        pieces.append("".join(current))
    return pieces
