"""Events <-> the JSON messages nodes exchange over Redis, sans-I/O.

One message per event: ``{"n": NODE, "t": TYPE, ...fields}``. :func:`decode`
never raises: anything it does not understand (another version, garbage
someone published) is None and is dropped by the caller.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Tuple

from .core import Kick, Outgoing
from .events import Joined, Left, Notice, Private, Renamed, Said, Topic
from .protocol import valid_name

__all__ = ["encode", "decode", "encode_said", "decode_said"]


def _said(d: Dict[str, Any]) -> Said:
    return Said(str(d["room"]), str(d["nick"]), str(d["text"]), bool(d.get("action", False)))


def encode_said(said: Said) -> str:
    """A history entry as JSON."""
    return json.dumps({"room": said.room, "nick": said.nick, "text": said.text,
                       "action": said.action}, ensure_ascii=False)


def decode_said(data: Any) -> Optional[Said]:
    """A history entry, or None if it is not one."""
    try:
        d = json.loads(data)
        said = _said(d)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return said if valid_name(said.room) and valid_name(said.nick) else None


def encode(event: Outgoing, node: str) -> str:
    """The JSON message for ``event`` sent by ``node``."""
    kind = type(event)
    body: Dict[str, Any]
    if kind is Said:
        body = {"t": "said", "room": event.room, "nick": event.nick,  # type: ignore[union-attr]
                "text": event.text, "action": event.action}  # type: ignore[union-attr]
    elif kind is Private:
        body = {"t": "pm", "from": event.sender, "to": event.recipient,  # type: ignore[union-attr]
                "text": event.text, "action": event.action}  # type: ignore[union-attr]
    elif kind is Joined:
        body = {"t": "join", "room": event.room, "nick": event.nick}  # type: ignore[union-attr]
    elif kind is Left:
        body = {"t": "left", "room": event.room, "nick": event.nick,  # type: ignore[union-attr]
                "reason": event.reason}  # type: ignore[union-attr]
    elif kind is Renamed:
        body = {"t": "nick", "old": event.old, "new": event.new,  # type: ignore[union-attr]
                "rooms": list(event.rooms)}  # type: ignore[union-attr]
    elif kind is Topic:
        body = {"t": "topic", "room": event.room, "nick": event.nick,  # type: ignore[union-attr]
                "text": event.text}  # type: ignore[union-attr]
    elif kind is Notice:
        body = {"t": "notice", "text": event.text}  # type: ignore[union-attr]
    elif kind is Kick:
        body = {"t": "kick", "nick": event.nick, "reason": event.reason}  # type: ignore[union-attr]
    else:
        raise TypeError(f"{kind.__name__} does not cross nodes")
    body["n"] = node
    return json.dumps(body, ensure_ascii=False)


def decode(data: Any) -> Optional[Tuple[str, Outgoing]]:
    """(node, event) of a message, or None for anything unexpected."""
    try:
        d = json.loads(data)
        node = str(d["n"])
        kind = d["t"]
        event: Outgoing
        if kind == "said":
            event = _said(d)
        elif kind == "pm":
            event = Private(str(d["from"]), str(d["to"]), str(d["text"]), bool(d.get("action", False)))
        elif kind == "join":
            event = Joined(str(d["room"]), str(d["nick"]))
        elif kind == "left":
            event = Left(str(d["room"]), str(d["nick"]), str(d.get("reason", "left")))
        elif kind == "nick":
            event = Renamed(str(d["old"]), str(d["new"]), tuple(str(r) for r in d["rooms"]))
        elif kind == "topic":
            event = Topic(str(d["room"]), str(d["nick"]), str(d["text"]))
        elif kind == "notice":
            event = Notice(str(d["text"]))
        elif kind == "kick":
            event = Kick(str(d["nick"]), str(d.get("reason", "kicked")))
        else:
            return None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return node, event
