"""Events -> the text lines of the line protocol (docs/chat.md), sans-I/O.

Messages are ``[ROOM] NICK: TEXT`` (actions ``[ROOM] * NICK TEXT``), private
messages ``[pm] NICK: TEXT``, notices start with ``* ``, errors with ``! ``,
and history entries are notices: ``* [ROOM] NICK: TEXT``. The web door
carries the same lines, one per WebSocket message.
"""

from __future__ import annotations

from typing import Any, List, Tuple

from .events import (
    Error, Event, Help, History, Joined, Left, Members, Notice, Private, Renamed, RoomList, Said,
    Topic, Welcome,
)

__all__ = ["render_lines", "render_bytes", "said_line"]


def said_line(said: Said) -> str:
    """``[ROOM] NICK: TEXT`` or ``[ROOM] * NICK TEXT``."""
    if said.action:
        return f"[{said.room}] * {said.nick} {said.text}"
    return f"[{said.room}] {said.nick}: {said.text}"


def render_lines(event: Event) -> List[str]:
    """The lines (without LF) the line protocol shows for ``event``."""
    kind = type(event)
    if kind is Said:
        return [said_line(event)]  # type: ignore[arg-type]
    if kind is Private:
        pm: Private = event  # type: ignore[assignment]
        return [f"[pm] * {pm.sender} {pm.text}" if pm.action else f"[pm] {pm.sender}: {pm.text}"]
    if kind is Joined:
        return [f"* {event.nick} joined {event.room}"]  # type: ignore[union-attr]
    if kind is Left:
        left: Left = event  # type: ignore[assignment]
        if left.reason == "left":
            why = ""
        else:
            why = f" ({left.reason.removeprefix('left: ')})"
        return [f"* {left.nick} left {left.room}{why}"]
    if kind is Renamed:
        return [f"* {event.old} is now known as {event.new}"]  # type: ignore[union-attr]
    if kind is Welcome:
        welcome: Welcome = event  # type: ignore[assignment]
        return [f"* welcome {welcome.nick}, you are in {welcome.room}: type to talk, "
                f"/nick NAME to pick a nick, /help for commands"]
    if kind is History:
        return ["* " + said_line(entry) for entry in event.entries]  # type: ignore[union-attr]
    if kind is Members:
        members: Members = event  # type: ignore[assignment]
        count = len(members.nicks)
        return [f"* {members.room} ({count}): {', '.join(members.nicks)}"]
    if kind is RoomList:
        room_list: RoomList = event  # type: ignore[assignment]
        rooms: Tuple[Tuple[str, int], ...] = room_list.rooms
        listed = ", ".join(f"{name} ({count})" for name, count in rooms)
        return [f"* rooms: {listed}" if rooms else "* rooms: none"]
    if kind is Help:
        width = max(len(usage) for usage, _ in event.commands)  # type: ignore[union-attr]
        return ["* commands:"] + [f"*   {usage:<{width}}  {what}"
                                  for usage, what in event.commands]  # type: ignore[union-attr]
    if kind is Topic:
        topic: Topic = event  # type: ignore[assignment]
        if not topic.text:
            return [f"* {topic.nick} cleared the topic of {topic.room}"]
        return [f"* {topic.nick} set the topic of {topic.room}: {topic.text}"]
    if kind is Notice:
        return [f"* {event.text}"]  # type: ignore[union-attr]
    if kind is Error:
        return [f"! {event.text}"]  # type: ignore[union-attr]
    return [f"* {event!r}"]


# Fan-out renders one event for many sessions in a row: keep the last one.
_last: List[Any] = [None, b""]


def render_bytes(event: Event) -> bytes:
    """The lines of ``event`` as UTF-8 bytes, each ending in LF. The last
    result is reused while the same event object is rendered again."""
    cache = _last
    if cache[0] is event:
        return cache[1]  # type: ignore[no-any-return]
    data = "".join(line + "\n" for line in render_lines(event)).encode("utf-8")
    cache[0] = event
    cache[1] = data
    return data
