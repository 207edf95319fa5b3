"""The chat core, sans-I/O: users, rooms, history, and what each action sends
to whom.

Doors (the line protocol, later IRC and the web) register a :class:`Session`
per client with :meth:`ChatCore.connect` and hand it what the client does:
whole lines of the line protocol (:meth:`ChatCore.handle_line`) or the
operations themselves (:meth:`join`, :meth:`say`, :meth:`private`,
:meth:`rename`, ...). Each call returns an :class:`Outbox`: which events go
to which sessions, which events go to the other nodes, which sessions to
close. The caller (:mod:`gsocket.chat.server`) carries it out. The core
never touches a socket.

The rest of the service, other nodes behind Redis, is a :class:`Cluster`
handed in (None: standalone, everything is here). Its queries (claim a
nick, who is where, a room's history) may block the calling greenlet; its
answers of None mean "unknown right now" (Redis is down), and the core then
goes on with what it knows locally, so local rooms keep working.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from typing import Deque, Dict, Iterable, List, Optional, Set, Tuple

from .events import (
    Error, ErrorCode, Help, History, Joined, Left, Members, Notice, Private, Renamed,
    RoomList, Said, Topic, Welcome,
)
from .interfaces import Cluster, Kick, Outbox, Outgoing, Session, User
from .protocol import (
    HELP, HelpCmd, JoinCmd, MeCmd, MsgCmd, NickCmd, QuitCmd, RoomsCmd, SayCmd, WhoCmd,
    clean_text, name_key, parse_command, valid_name,
)

__all__ = ["Session", "Cluster", "User", "Outbox", "ChatCore", "Kick", "LOBBY", "HISTORY_SIZE"]

logger = logging.getLogger("gsocket.chat")

#: Where every session starts.
LOBBY = "lobby"
#: Messages of a room kept and shown on joining it.
HISTORY_SIZE = 20
#: Rooms whose history (and topic) this node keeps (the oldest empty one goes first).
MAX_ROOMS = 10_000
#: Longest topic kept, in characters.
TOPIC_SIZE = 300


class ChatCore:
    """Users and rooms of this node; with a cluster, of the whole service."""

    def __init__(self, cluster: Optional[Cluster] = None, history_size: int = HISTORY_SIZE,
                 lobby: str = LOBBY) -> None:
        if not valid_name(lobby):
            raise ValueError(f"bad lobby name {lobby!r}")
        self.cluster = cluster
        self.history_size = history_size
        self.lobby = lobby
        #: Local users by nick key.
        self.users: Dict[str, User] = {}
        #: Local members by room key.
        self.rooms: Dict[str, Set[User]] = {}
        #: Room display names by key.
        self.room_names: Dict[str, str] = {}
        self.history: Dict[str, Deque[Said]] = {}
        #: The topic of each room by key (IRC's TOPIC), as last set on any node.
        self.topics: Dict[str, Topic] = {}
        #: Nick keys being claimed by a greenlet blocked in cluster.claim.
        self.reserved: Set[str] = set()
        self._guests = itertools.count(1)

    # ------------------------------------------------------------------ queries

    def user(self, nick: str) -> Optional[User]:
        """The local user with that nick (any case), or None."""
        return self.users.get(name_key(nick))

    def local_members(self, room: str) -> List[User]:
        """Local members of ``room``, by nick."""
        return sorted(self.rooms.get(name_key(room), ()), key=lambda member: member.key)

    def members(self, room: str) -> List[str]:
        """Nicks in ``room`` across the service (local only while the
        cluster is unreachable), sorted case-insensitively. May block."""
        key = name_key(room)
        nicks = {member.key: member.nick for member in self.rooms.get(key, ())}
        remote = self.cluster.remote_presence() if self.cluster is not None else None
        for nick, rooms in (remote or {}).items():
            if any(name_key(name) == key for name in rooms):
                nicks.setdefault(name_key(nick), nick)
        return [nicks[k] for k in sorted(nicks)]

    def room_counts(self) -> List[Tuple[str, int]]:
        """(room, members) for every non-empty room of the service, by name. May block."""
        names: Dict[str, str] = {}
        members: Dict[str, Set[str]] = {}
        for key, local in self.rooms.items():
            if local:
                names[key] = self.room_names.get(key, key)
                members[key] = {member.key for member in local}
        remote = self.cluster.remote_presence() if self.cluster is not None else None
        for nick, rooms in (remote or {}).items():
            for name in rooms:
                key = name_key(name)
                names.setdefault(key, name)
                members.setdefault(key, set()).add(name_key(nick))
        return [(names[key], len(members[key])) for key in sorted(names)]

    def presence(self) -> Dict[str, Tuple[str, ...]]:
        """nick -> rooms of every local user (what the cluster advertises)."""
        return {user.nick: tuple(user.rooms) for user in self.users.values()}

    # ------------------------------------------------------------------ sessions

    def connect(self, session: Session) -> Tuple[User, Outbox]:
        """A new client: give it a guest nick, put it in the lobby. Its
        outbox starts with the lobby's history, then the greeting. May block."""
        nick = self._guest_nick()
        user = User(session, nick)
        self.users[user.key] = user
        self.reserved.discard(user.key)
        outbox = Outbox()
        self._enter(user, self.lobby, outbox, greet=True)
        logger.debug("%s connected as %s", session.peer, nick)
        return user, outbox

    def _guest_nick(self) -> str:
        cluster = self.cluster
        while True:
            number = cluster.next_guest() if cluster is not None else None
            if number is None:
                number = next(self._guests)
            nick = f"guest{number}"
            key = name_key(nick)
            if key in self.users or key in self.reserved:
                continue
            self.reserved.add(key)
            if cluster is None or cluster.claim(nick):
                return nick
            self.reserved.discard(key)

    def register(self, session: Session, nick: str) -> Optional[User]:
        """A client that picks its nick before it enters (IRC): a user
        called ``nick``, in no room and not greeted, if ``nick`` is valid and
        nobody in the service holds it; None otherwise. May block."""
        if not valid_name(nick):
            return None
        key = name_key(nick)
        if key in self.users or key in self.reserved:
            return None
        self.reserved.add(key)
        try:
            claimed = self.cluster is None or self.cluster.claim(nick)
        finally:
            self.reserved.discard(key)
        if not claimed:
            return None
        if key in self.users:     # taken here while we waited for the cluster
            if self.cluster is not None:
                self.cluster.release(nick)
            return None
        user = User(session, nick)
        self.users[key] = user
        logger.debug("%s registered as %s", session.peer, nick)
        return user

    def disconnect(self, user: User, reason: str = "disconnected") -> Outbox:
        """The client is gone: it leaves its rooms, its nick is free. Safe
        to call twice. May block (the cluster)."""
        outbox = Outbox()
        if not user.connected:
            return outbox
        user.connected = False
        for room in list(user.rooms):
            self._leave(user, room, reason, outbox)
        if self.users.get(user.key) is user:
            del self.users[user.key]
        if self.cluster is not None:
            self.cluster.set_presence(user.nick, ())
            self.cluster.release(user.nick)
        return outbox

    # ------------------------------------------------------------------ the line protocol

    def handle_line(self, user: User, line: str) -> Outbox:
        """One line of the line protocol (decoded, without LF). May block."""
        command = parse_command(line)
        if command is None:
            return Outbox()
        if isinstance(command, Error):
            outbox = Outbox()
            outbox.reply(user, command)
            return outbox
        return self.handle(user, command)

    def handle(self, user: User, command: object) -> Outbox:
        """A parsed command of :mod:`gsocket.chat.protocol`. May block."""
        kind = type(command)
        if kind is SayCmd:
            return self.say(user, command.text)  # type: ignore[attr-defined]
        if kind is MeCmd:
            return self.say(user, command.text, action=True)  # type: ignore[attr-defined]
        if kind is MsgCmd:
            return self.private(user, command.nick, command.text)  # type: ignore[attr-defined]
        if kind is NickCmd:
            return self.rename(user, command.name)  # type: ignore[attr-defined]
        if kind is JoinCmd:
            return self.join(user, command.room, leave_others=True)  # type: ignore[attr-defined]
        outbox = Outbox()
        if kind is WhoCmd:
            room = user.room or self.lobby
            outbox.reply(user, Members(self._room_name(room), tuple(self.members(room))))
        elif kind is RoomsCmd:
            outbox.reply(user, RoomList(tuple(self.room_counts())))
        elif kind is HelpCmd:
            outbox.reply(user, Help(HELP))
        elif kind is QuitCmd:
            outbox.reply(user, Notice("bye"))
            outbox.close(user.session, "quit")
        else:
            outbox.reply(user, Error(ErrorCode.UNKNOWN_COMMAND, "unknown command (try /help)"))
        return outbox

    # ------------------------------------------------------------------ operations

    def say(self, user: User, text: str, action: bool = False, room: Optional[str] = None) -> Outbox:
        """A message (``action``: /me) to ``room`` (default: the current
        one), for every other member; recorded in its history. Never blocks."""
        outbox = Outbox()
        text = clean_text(text)
        target = room if room is not None else user.room
        if not text or target is None or not user.connected:
            return outbox
        key = name_key(target)
        members = self.rooms.get(key)
        if members is None or user not in members:
            outbox.reply(user, Error(ErrorCode.BAD_ROOM, f"you are not in {target}"))
            return outbox
        said = Said(self._room_name(key), user.nick, text, action)
        self._record(key, said)
        outbox.send(said, tuple([member.session for member in members if member is not user]))
        outbox.publish(said, record=True)
        return outbox

    def private(self, user: User, nick: str, text: str, action: bool = False) -> Outbox:
        """A private message to ``nick`` wherever it is. May block."""
        outbox = Outbox()
        text = clean_text(text)
        if not text or not user.connected:
            return outbox
        if not valid_name(nick):
            outbox.reply(user, Error(ErrorCode.BAD_NICK, f"bad nick {clean_text(nick)[:40]!r}"))
            return outbox
        target = self.users.get(name_key(nick))
        if target is user:
            outbox.reply(user, Error(ErrorCode.NO_SUCH_NICK, "that is you"))
            return outbox
        message = Private(user.nick, target.nick if target is not None else nick, text, action)
        if target is not None:
            outbox.send(message, (target.session,))
            return outbox
        if self.cluster is not None and self.cluster.locate(nick):
            outbox.publish(message)
            return outbox
        outbox.reply(user, Error(ErrorCode.NO_SUCH_NICK, f"no such nick: {nick}"))
        return outbox

    def rename(self, user: User, new: str) -> Outbox:
        """Change ``user``'s nick to ``new`` if nobody in the service holds
        it; everyone in the user's rooms hears it. May block."""
        outbox = Outbox()
        if not valid_name(new):
            outbox.reply(user, Error(ErrorCode.BAD_NICK,
                                     f"bad nick {clean_text(new)[:40]!r}: use 1-32 of A-Z a-z 0-9 _ -"))
            return outbox
        if new == user.nick:
            outbox.reply(user, Notice(f"you are already {new}"))
            return outbox
        key = name_key(new)
        if key != user.key:
            if key in self.users or key in self.reserved:
                outbox.reply(user, Error(ErrorCode.NICK_TAKEN, f"nick {new} is taken"))
                return outbox
            self.reserved.add(key)
            try:
                claimed = self.cluster is None or self.cluster.claim(new)
            finally:
                self.reserved.discard(key)
            if not claimed:
                outbox.reply(user, Error(ErrorCode.NICK_TAKEN, f"nick {new} is taken"))
                return outbox
            if not user.connected or key in self.users:   # changed while we waited
                if self.cluster is not None:
                    self.cluster.release(new)
                if user.connected:
                    outbox.reply(user, Error(ErrorCode.NICK_TAKEN, f"nick {new} is taken"))
                return outbox
        return self._apply_rename(user, new, outbox)

    def _apply_rename(self, user: User, new: str, outbox: Outbox) -> Outbox:
        old, old_key = user.nick, user.key
        if self.users.get(old_key) is user:
            del self.users[old_key]
        user.nick = new
        user.key = name_key(new)
        self.users[user.key] = user
        rooms = tuple(self._room_name(room) for room in user.rooms)
        renamed = Renamed(old, new, rooms)
        outbox.send(renamed, tuple([user.session] + self._audience(user.rooms, exclude=user)))
        outbox.publish(renamed)
        if self.cluster is not None:
            self.cluster.set_presence(new, tuple(user.rooms))
            if old_key != user.key:
                self.cluster.set_presence(old, ())
                self.cluster.release(old)
        return outbox

    def join(self, user: User, room: str, leave_others: bool = True) -> Outbox:
        """Enter ``room`` (its history first, then the confirmation); with
        ``leave_others`` (the line protocol) leave every other room. May block."""
        outbox = Outbox()
        if room.startswith("#"):
            room = room[1:]
        if not valid_name(room):
            outbox.reply(user, Error(ErrorCode.BAD_ROOM,
                                     f"bad room {clean_text(room)[:40]!r}: use 1-32 of A-Z a-z 0-9 _ -"))
            return outbox
        key = name_key(room)
        if any(name_key(joined) == key for joined in user.rooms):
            if leave_others and len(user.rooms) > 1:
                for other in [r for r in user.rooms if name_key(r) != key]:
                    self._leave(user, other, "left", outbox)
                self._advertise(user)
            outbox.reply(user, Notice(f"you are already in {self._room_name(key)}"))
            return outbox
        if leave_others:
            for other in list(user.rooms):
                self._leave(user, other, "left", outbox)
        self._enter(user, room, outbox)
        return outbox

    def part(self, user: User, room: str, reason: str = "left") -> Outbox:
        """Leave ``room`` (IRC's PART); the line protocol always has a room,
        so it never calls this. May block."""
        outbox = Outbox()
        key = name_key(room[1:] if room.startswith("#") else room)
        joined = [r for r in user.rooms if name_key(r) == key]
        if not joined:
            outbox.reply(user, Error(ErrorCode.BAD_ROOM, f"you are not in {room}"))
            return outbox
        self._leave(user, joined[0], reason, outbox)
        outbox.reply(user, Left(self._room_name(key), user.nick, reason))
        self._advertise(user)
        return outbox

    def topic(self, room: str) -> Optional[Topic]:
        """The topic of ``room`` (None: none set). Never blocks."""
        topic = self.topics.get(name_key(room[1:] if room.startswith("#") else room))
        return topic if topic is not None and topic.text else None

    def set_topic(self, user: User, room: str, text: str) -> Outbox:
        """Set (empty ``text``: clear) the topic of ``room``, where ``user``
        must be; every member, ``user`` too, hears it. Never blocks."""
        outbox = Outbox()
        key = name_key(room[1:] if room.startswith("#") else room)
        if not any(name_key(joined) == key for joined in user.rooms):
            outbox.reply(user, Error(ErrorCode.BAD_ROOM, f"you are not in {room}"))
            return outbox
        topic = Topic(self._room_name(key), user.nick, clean_text(text)[:TOPIC_SIZE])
        self._store_topic(key, topic)
        outbox.send(topic, self._sessions(key))
        outbox.publish(topic)
        return outbox

    def _store_topic(self, key: str, topic: Topic) -> None:
        topics = self.topics
        topics.pop(key, None)
        if not topic.text:
            return
        if len(topics) >= MAX_ROOMS:    # memory bound: forget the oldest topic of an empty room
            idle = next((k for k in topics if k not in self.rooms), next(iter(topics)))
            del topics[idle]
        topics[key] = topic

    def _enter(self, user: User, room: str, outbox: Outbox, greet: bool = False) -> None:
        key = name_key(room)
        name = self.room_names.setdefault(key, room)
        members = self.rooms.setdefault(key, set())
        others = tuple([member.session for member in members])
        members.add(user)
        user.rooms.append(name)
        self._advertise(user)
        entries = None
        if self.cluster is not None:
            entries = self.cluster.room_history(name)
        if entries is None:
            entries = list(self.history.get(key, ()))
        if entries:
            outbox.reply(user, History(name, tuple(entries[-self.history_size:])))
        joined = Joined(name, user.nick)
        outbox.reply(user, Welcome(user.nick, name) if greet else joined)
        outbox.send(joined, others)
        outbox.publish(joined)

    def _leave(self, user: User, room: str, reason: str, outbox: Outbox) -> None:
        key = name_key(room)
        members = self.rooms.get(key)
        if members is not None:
            members.discard(user)
            if not members:
                del self.rooms[key]
                if key not in self.history:
                    self.room_names.pop(key, None)
        user.rooms = [r for r in user.rooms if name_key(r) != key]
        left = Left(self._room_name(key), user.nick, reason)
        if members:
            outbox.send(left, tuple([member.session for member in members]))
        outbox.publish(left)

    def _advertise(self, user: User) -> None:
        if self.cluster is not None and user.connected:
            self.cluster.set_presence(user.nick, tuple(user.rooms))

    # ------------------------------------------------------------------ the service

    def receive(self, event: Outgoing) -> Outbox:
        """An event published by another node: deliver it to the local
        users concerned. Never blocks."""
        outbox = Outbox()
        kind = type(event)
        if kind is Said:
            said: Said = event  # type: ignore[assignment]
            key = name_key(said.room)
            self._record(key, said)
            outbox.send(said, self._sessions(key))
        elif kind is Joined or kind is Left:
            outbox.send(event, self._sessions(name_key(event.room)))  # type: ignore[union-attr, arg-type]
        elif kind is Renamed:
            outbox.send(event, tuple(self._audience(event.rooms)))  # type: ignore[union-attr, arg-type]
        elif kind is Private:
            target = self.users.get(name_key(event.recipient))  # type: ignore[union-attr]
            if target is not None:
                outbox.send(event, (target.session,))  # type: ignore[arg-type]
        elif kind is Topic:
            topic: Topic = event  # type: ignore[assignment]
            key = name_key(topic.room)
            self._store_topic(key, topic)
            outbox.send(topic, self._sessions(key))
        elif kind is Notice:
            outbox.send(event, tuple([user.session for user in self.users.values()]))  # type: ignore[arg-type]
        elif kind is Kick:
            kick: Kick = event  # type: ignore[assignment]
            target = self.users.get(name_key(kick.nick))
            if target is not None:
                outbox.reply(target, Notice(f"you were {kick.reason}"))
                outbox.close(target.session, kick.reason)
        return outbox

    def announce(self, text: str, everywhere: bool = True) -> Outbox:
        """A notice to every local user (and, ``everywhere``, to the other
        nodes' users too). Never blocks."""
        outbox = Outbox()
        notice = Notice(clean_text(text))
        outbox.send(notice, tuple([user.session for user in self.users.values()]))
        if everywhere:
            outbox.publish(notice)
        return outbox

    def kick(self, nick: str, reason: str = "kicked") -> Optional[Outbox]:
        """Disconnect ``nick`` (a local user, or one on another node); None
        if nobody has that nick. May block."""
        outbox = Outbox()
        target = self.users.get(name_key(nick))
        if target is not None:
            outbox.reply(target, Notice(f"you were {reason}"))
            outbox.close(target.session, reason)
            return outbox
        if self.cluster is not None and self.cluster.locate(nick):
            outbox.publish(Kick(nick, reason))
            return outbox
        return None

    def nick_lost(self, nick: str) -> Outbox:
        """Another node holds ``nick`` (claimed while the link was down):
        the local user of that nick becomes a guest again. May block."""
        outbox = Outbox()
        user = self.users.get(name_key(nick))
        if user is None or not user.connected:
            return outbox
        new = self._guest_nick()
        outbox.reply(user, Error(ErrorCode.NICK_LOST,
                                 f"nick {user.nick} was taken on another server while the link "
                                 f"between servers was down; you are now {new}"))
        return self._apply_rename(user, new, outbox)

    # ------------------------------------------------------------------ helpers

    def _room_name(self, room: str) -> str:
        key = name_key(room)
        return self.room_names.get(key, room)

    def _sessions(self, key: str) -> Tuple[Session, ...]:
        return tuple([member.session for member in self.rooms.get(key, ())])

    def _audience(self, rooms: Iterable[str], exclude: Optional[User] = None) -> List[Session]:
        seen: Dict[int, Session] = {}
        for room in rooms:
            for member in self.rooms.get(name_key(room), ()):
                if member is not exclude:
                    seen[id(member)] = member.session
        return list(seen.values())

    def _record(self, key: str, said: Said) -> None:
        history = self.history.get(key)
        if history is None:
            if len(self.history) >= MAX_ROOMS:
                self._forget_idle_room()
            history = self.history[key] = deque(maxlen=self.history_size)
            self.room_names.setdefault(key, said.room)
        history.append(said)

    def _forget_idle_room(self) -> None:
        """Drop the history of the oldest room nobody is in (memory bound)."""
        for key in self.history:
            if key not in self.rooms:
                del self.history[key]
                self.room_names.pop(key, None)
                return
