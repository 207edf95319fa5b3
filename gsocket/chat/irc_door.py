"""The IRC door (docs/chat.md, ``--irc PORT``): the chat's rooms as IRC
channels (room ``lobby`` is ``#lobby``), for irssi, weechat, HexChat, ii.

Each client gets a greenlet. It splits the input into IRC lines
(:class:`~gsocket.chat.irc_protocol.IrcSplitter`: a line over 512 bytes is
dropped and answered with 417), parses them
(:func:`~gsocket.chat.irc_protocol.parse`), applies the line door's flood
policy, and carries out each command on the chat core; what the core sends
the client is rendered by :class:`~gsocket.chat.irc_render.IrcRenderer`.

Registration is RFC 2812's: ``NICK`` and ``USER`` (and ``CAP END`` after a
``CAP LS``: this server offers no capabilities), then 001-005 and the
MOTD. The nick is claimed in the one namespace of the whole service (a
nick held by a line-protocol or web user, on any node, is 433). A
registered IRC user is in no room until it JOINs one; unlike the line
protocol, it may be in several.

A client that sends nothing for ``ping_interval`` seconds is sent a PING;
if it still sends nothing for ``ping_timeout`` seconds it is dropped
("Ping timeout"), as every IRC server does.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .. import __version__
from .. import driver as _driver
from .. import socket
from .door import Door, drop_if_slow, pace
from .events import Error, ErrorCode, History, Notice
from .irc_protocol import IrcSplitter, Message, Numeric, TooLong, format_message, parse
from .irc_render import ACTION, PART_REASON, IrcRenderer, channel, room_of
from .limits import FloodPolicy
from .line_door import LineSession
from .protocol import name_key, valid_name

__all__ = ["IrcDoor", "IrcSession", "PING_INTERVAL", "PING_TIMEOUT", "DEFAULT_MOTD"]

logger = logging.getLogger("gsocket.chat")

#: Seconds of silence from a client before the server PINGs it.
PING_INTERVAL = 90.0
#: Seconds a PINGed client has to send anything before it is dropped.
PING_TIMEOUT = 60.0
#: The message of the day (None or empty: 422, no MOTD).
DEFAULT_MOTD: Tuple[str, ...] = (
    "This is a gsocket chat server: its rooms are channels, #lobby first.",
    "People on IRC, on the line protocol (nc) and in browsers see each other.",
    "/list shows the rooms; /join #ROOM enters one (1-32 of A-Z a-z 0-9 _ -).",
)

#: Commands a client may send before it is registered.
_BEFORE_REGISTRATION = frozenset({"CAP", "NICK", "USER", "PASS", "PING", "PONG", "QUIT"})


class IrcSession(LineSession):
    """One IRC client (the core's Session): events are rendered as IRC
    messages, coalesced per turn of the event loop like the line door's."""

    door = "irc"
    __slots__ = ("renderer", "wanted_nick", "user_given", "negotiating", "registered")

    def __init__(self, socket_id: int, peer: str, driver: Any, renderer: IrcRenderer) -> None:
        super().__init__(socket_id, peer, driver)
        self.renderer = renderer
        #: The nick asked for with NICK before registration.
        self.wanted_nick: Optional[str] = None
        #: USER was sent.
        self.user_given = False
        #: A CAP LS was sent and no CAP END yet: registration waits.
        self.negotiating = False
        self.registered = False

    @property
    def nick(self) -> str:
        """The client's nick, ``*`` while it has none."""
        if self.user is not None:
            return str(self.user.nick)
        return self.wanted_nick or "*"

    def render(self, event: Any) -> bytes:
        """``event`` as IRC messages for this client."""
        return self.renderer.event(event, self.nick)

    def numeric(self, code: str, *params: str) -> None:
        """Queue a numeric reply to this client; never blocks."""
        self.queue(self.renderer.numeric(code, self.nick, *params))

    def close(self, reason: str) -> None:
        """Send ``ERROR :Closing Link`` and close after the queued output
        (graceful); never blocks."""
        if not self.closed:
            self.queue(format_message("ERROR", f"Closing Link: {self.peer} ({reason})"[:400]))
        super().close(reason)

    def __repr__(self) -> str:
        return f"<IrcSession {self.id} {self.nick} {self.peer}>"


class IrcDoor(Door):
    """Serves IRC clients on one listener (``listen``, ``close``:
    :class:`~gsocket.chat.door.Door`). ``server_name``: the server's name
    in messages; ``network``: the name in the welcome and ISUPPORT;
    ``motd``: lines of the message of the day (None: 422)."""

    def __init__(self, service: Any, spawn: Callable[..., Any], *, line_rate: float = 20.0,
                 line_burst: int = 40, flood_patience: float = 5.0, server_name: str = "gsocket",
                 network: str = "gsocket", motd: Optional[Sequence[str]] = DEFAULT_MOTD,
                 ping_interval: float = PING_INTERVAL, ping_timeout: float = PING_TIMEOUT) -> None:
        super().__init__(service, spawn)
        if ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be positive")
        if not network or " " in network:
            raise ValueError(f"bad network name {network!r}")
        self.renderer = IrcRenderer(server_name)
        self.network = network
        self.motd = tuple(motd) if motd else None
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.line_rate = line_rate
        self.line_burst = line_burst
        self.flood_patience = flood_patience
        self.created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self._commands: Dict[str, Callable[[IrcSession, Message], None]] = {
            "CAP": self._cap, "NICK": self._nick, "USER": self._user, "PASS": self._pass,
            "PING": self._ping, "PONG": self._pong, "QUIT": self._quit, "JOIN": self._join,
            "PART": self._part, "PRIVMSG": self._privmsg, "NOTICE": self._notice,
            "NAMES": self._names, "WHO": self._who, "WHOIS": self._whois, "TOPIC": self._topic,
            "LIST": self._list, "MODE": self._mode, "MOTD": self._motd, "AWAY": self._away,
        }

    # ------------------------------------------------------------------ the connection

    def serve(self, socket_id: int, peer: str) -> None:
        """Serve one client until it quits, times out, is disconnected or
        the server stops. Blocks the calling greenlet (its own)."""
        try:
            socket.start(socket_id)
        except ConnectionError:
            return
        socket.nodelay(socket_id)
        session = IrcSession(socket_id, peer, _driver.current(), self.renderer)
        socket.warning(socket_id, lambda id, kib: drop_if_slow(session, kib))
        try:
            self._read_lines(session)
        finally:
            if session.user is not None:
                self.service.disconnect(session.user, session.close_reason or "disconnected")
            socket.close(socket_id)

    def _read_lines(self, session: IrcSession) -> None:
        socket_id = session.id
        splitter = IrcSplitter()
        policy = FloodPolicy(self.line_rate, self.line_burst, self.flood_patience)
        clock = time.monotonic
        pinged = False
        while not session.closed:
            try:
                data = socket.read(socket_id, timeout=self.ping_timeout if pinged else self.ping_interval)
            except TimeoutError:
                if pinged:
                    logger.info("irc %s (%s): ping timeout", session.nick, session.peer)
                    session.close(f"ping timeout: {self.ping_timeout:g} seconds")
                    return
                session.queue(self.renderer.server("PING", self.renderer.server_name))
                pinged = True
                continue
            if data is None:
                return
            pinged = False
            for item in splitter.feed(data):
                if isinstance(item, TooLong):
                    session.numeric(Numeric.ERR_INPUTTOOLONG, "Input line was too long")
                    continue
                message = parse(item)
                if message is None:
                    continue
                if not pace(session, policy, clock()):
                    return
                self.handle(session, message)
                if session.closed:
                    return

    def handle(self, session: IrcSession, message: Message) -> None:
        """Carry out one command of ``session``. May block (the cluster)."""
        command = message.command
        if not session.registered and command not in _BEFORE_REGISTRATION:
            if command in self._commands:
                session.numeric(Numeric.ERR_NOTREGISTERED, "You have not registered")
            else:
                session.numeric(Numeric.ERR_UNKNOWNCOMMAND, command, "Unknown command")
            return
        handler = self._commands.get(command)
        if handler is None:
            session.numeric(Numeric.ERR_UNKNOWNCOMMAND, command, "Unknown command")
            return
        handler(session, message)

    # ------------------------------------------------------------------ registration

    def _cap(self, session: IrcSession, message: Message) -> None:
        sub = message.param(0).upper()
        me = session.nick
        if sub == "LS":
            if not session.registered:
                session.negotiating = True
            session.queue(self.renderer.server("CAP", me, "LS", ""))
        elif sub == "LIST":
            session.queue(self.renderer.server("CAP", me, "LIST", ""))
        elif sub == "REQ":
            session.queue(self.renderer.server("CAP", me, "NAK", message.param(1)))
        elif sub == "END":
            session.negotiating = False
            self._try_register(session)
        else:
            session.numeric("410", sub or "*", "Invalid CAP command")

    def _nick(self, session: IrcSession, message: Message) -> None:
        new = message.param(0)
        if not new:
            session.numeric(Numeric.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        if not valid_name(new):
            session.numeric(Numeric.ERR_ERRONEUSNICKNAME, new[:40],
                            "Erroneous nickname: use 1-32 of A-Z a-z 0-9 _ -")
            return
        user = session.user
        if user is None:
            session.wanted_nick = new
            self._try_register(session)
            return
        if new == user.nick:
            return

        def intercept(event: Any) -> bool:
            if isinstance(event, Error) and event.code == ErrorCode.NICK_TAKEN:
                session.numeric(Numeric.ERR_NICKNAMEINUSE, new, "Nickname is already in use")
                return True
            if isinstance(event, Error) and event.code == ErrorCode.BAD_NICK:
                session.numeric(Numeric.ERR_ERRONEUSNICKNAME, new, "Erroneous nickname")
                return True
            return isinstance(event, Notice)       # "you are already NICK"

        self.service.perform(self.service.core.rename(user, new), session, intercept)

    def _user(self, session: IrcSession, message: Message) -> None:
        if session.registered:
            session.numeric(Numeric.ERR_ALREADYREGISTRED, "You may not reregister")
            return
        if len(message.params) < 4:
            session.numeric(Numeric.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
            return
        session.user_given = True
        self._try_register(session)

    def _pass(self, session: IrcSession, message: Message) -> None:
        if session.registered:
            session.numeric(Numeric.ERR_ALREADYREGISTRED, "You may not reregister")

    def _try_register(self, session: IrcSession) -> None:
        nick = session.wanted_nick
        if session.registered or nick is None or not session.user_given or session.negotiating:
            return
        user = self.service.register(session, nick)
        if user is None:
            session.wanted_nick = None
            session.queue(self.renderer.numeric(Numeric.ERR_NICKNAMEINUSE, "*", nick,
                                                "Nickname is already in use"))
            return
        session.user = user
        session.registered = True
        session.queue(self.renderer.welcome(nick, __version__, self.created, self.network))
        session.queue(self.renderer.motd(nick, self.motd))

    def _motd(self, session: IrcSession, message: Message) -> None:
        session.queue(self.renderer.motd(session.nick, self.motd))

    # ------------------------------------------------------------------ liveness

    def _ping(self, session: IrcSession, message: Message) -> None:
        if not message.params:
            session.numeric("409", "No origin specified")
            return
        name = self.renderer.server_name
        session.queue(self.renderer.server("PONG", name, message.param(0)))

    def _pong(self, session: IrcSession, message: Message) -> None:
        """Any input counts as a sign of life: nothing more to do."""

    def _quit(self, session: IrcSession, message: Message) -> None:
        text = message.param(0).strip()[:200]
        session.close(f"quit: {text}" if text else "quit")

    # ------------------------------------------------------------------ channels

    def _rooms(self, session: IrcSession, message: Message, command: str) -> Optional[List[str]]:
        """The comma-separated channels of the first parameter (461 if none)."""
        if not message.param(0):
            session.numeric(Numeric.ERR_NEEDMOREPARAMS, command, "Not enough parameters")
            return None
        return [target for target in message.param(0).split(",") if target]

    def _room(self, session: IrcSession, target: str) -> Optional[str]:
        """The room of channel ``target``, or None after a 403."""
        room = room_of(target)
        if room is None or not valid_name(room):
            session.numeric(Numeric.ERR_NOSUCHCHANNEL, target[:50], "No such channel")
            return None
        return room

    @staticmethod
    def _in_room(session: IrcSession, room: str) -> bool:
        key = name_key(room)
        return any(name_key(joined) == key for joined in session.user.rooms)

    def _join(self, session: IrcSession, message: Message) -> None:
        targets = self._rooms(session, message, "JOIN")
        if targets is None:
            return
        if targets == ["0"]:        # RFC 2812: JOIN 0 leaves every channel
            for room in list(session.user.rooms):
                self.service.perform(self.service.core.part(session.user, room), session)
            return
        core = self.service.core
        for target in targets:
            room = self._room(session, target)
            if room is None or self._in_room(session, room):
                continue
            history: List[History] = []

            def intercept(event: Any, history: List[History] = history) -> bool:
                if isinstance(event, History):   # after the JOIN, not before
                    history.append(event)
                    return True
                return isinstance(event, Notice)

            self.service.perform(core.join(session.user, room, leave_others=False), session, intercept)
            if not self._in_room(session, room):
                continue
            topic = core.topic(room)
            if topic is not None:
                session.queue(self.renderer.topic(session.nick, room, topic))
            session.queue(self.renderer.names(session.nick, room, core.members(room)))
            for entry in history:
                session.deliver(entry)

    def _part(self, session: IrcSession, message: Message) -> None:
        targets = self._rooms(session, message, "PART")
        for target in targets or ():
            room = self._room(session, target)
            if room is None:
                continue
            if not self._in_room(session, room):
                session.numeric(Numeric.ERR_NOTONCHANNEL, target, "You're not on that channel")
                continue
            reason = f"{PART_REASON}: {message.param(1)}" if message.param(1) else PART_REASON
            self.service.perform(self.service.core.part(session.user, room, reason), session)

    def _topic(self, session: IrcSession, message: Message) -> None:
        targets = self._rooms(session, message, "TOPIC")
        if targets is None:
            return
        room = self._room(session, targets[0])
        if room is None:
            return
        core = self.service.core
        if len(message.params) < 2:
            session.queue(self.renderer.topic(session.nick, room, core.topic(room)))
            return
        if not self._in_room(session, room):
            session.numeric(Numeric.ERR_NOTONCHANNEL, channel(room), "You're not on that channel")
            return
        self.service.perform(core.set_topic(session.user, room, message.param(1)), session)

    def _names(self, session: IrcSession, message: Message) -> None:
        targets = [target for target in message.param(0).split(",") if target]
        if not targets:
            session.numeric(Numeric.RPL_ENDOFNAMES, "*", "End of /NAMES list.")
            return
        core = self.service.core
        for target in targets:
            room = room_of(target)
            if room is None or not valid_name(room):
                session.numeric(Numeric.RPL_ENDOFNAMES, target[:50], "End of /NAMES list.")
                continue
            session.queue(self.renderer.names(session.nick, room, core.members(room)))

    def _list(self, session: IrcSession, message: Message) -> None:
        core = self.service.core
        wanted = {name_key(room) for room in (room_of(t) for t in message.param(0).split(",")) if room}
        rows = []
        for room, count in core.room_counts():
            if not wanted or name_key(room) in wanted:
                topic = core.topic(room)
                rows.append((room, count, topic.text if topic is not None else ""))
        session.queue(self.renderer.room_list(session.nick, rows))

    # ------------------------------------------------------------------ users

    def _who(self, session: IrcSession, message: Message) -> None:
        mask = message.param(0) or "*"
        core = self.service.core
        room = room_of(mask)
        rows: List[Tuple[str, str]] = []
        if room is not None and valid_name(room):
            rows = [(channel(room), nick) for nick in core.members(room)]
        elif valid_name(mask):
            nick = self._find_nick(mask)
            if nick is not None:
                rows = [("*", nick)]
        session.queue(self.renderer.who(session.nick, mask[:50], rows))

    def _whois(self, session: IrcSession, message: Message) -> None:
        # WHOIS [server] nick: the nick is the last parameter.
        target = message.params[-1] if message.params else ""
        if not target:
            session.numeric(Numeric.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = self._find_nick(target) if valid_name(target) else None
        if nick is None:
            session.numeric(Numeric.ERR_NOSUCHNICK, target[:50], "No such nick/channel")
        else:
            host = self.renderer.user_host
            session.numeric("311", nick, nick, host, "*", nick)
            local = self.service.core.user(nick)
            if local is not None and local.rooms:
                session.numeric("319", nick, " ".join(channel(room) for room in local.rooms))
            session.numeric("312", nick, self.renderer.server_name, f"gsocket-chat ({self.network})")
        session.numeric("318", target[:50], "End of /WHOIS list.")

    def _find_nick(self, nick: str) -> Optional[str]:
        """The nick as its holder spells it, on any node; None if nobody has it."""
        core = self.service.core
        local = core.user(nick)
        if local is not None:
            return local.nick
        if core.cluster is None:
            return None
        key = name_key(nick)
        for remote in (core.cluster.remote_presence() or {}):
            if name_key(remote) == key:
                return remote
        return None

    def _away(self, session: IrcSession, message: Message) -> None:
        # Away messages are not kept (nobody is told): the replies keep clients content.
        if message.param(0):
            session.numeric("306", "You have been marked as being away")
        else:
            session.numeric("305", "You are no longer marked as being away")

    def _mode(self, session: IrcSession, message: Message) -> None:
        target = message.param(0)
        if not target:
            session.numeric(Numeric.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
            return
        room = room_of(target)
        if room is not None:
            if not valid_name(room):
                session.numeric(Numeric.ERR_NOSUCHCHANNEL, target[:50], "No such channel")
            elif len(message.params) == 1:
                session.numeric(Numeric.RPL_CHANNELMODEIS, channel(room), "+")
            elif message.param(1).lstrip("+") == "b":           # the ban list: empty
                session.numeric(Numeric.RPL_ENDOFBANLIST, channel(room), "End of channel ban list")
            else:
                session.numeric(Numeric.ERR_CHANOPRIVSNEEDED, channel(room), "You're not channel operator")
            return
        if name_key(target) != session.user.key:
            session.numeric(Numeric.ERR_USERSDONTMATCH, "Cannot change mode for other users")
        elif len(message.params) == 1:
            session.numeric(Numeric.RPL_UMODEIS, "+")
        elif set(message.param(1)) <= set("+-iw"):
            # Invisible / wallops: no meaning here; acknowledged so clients do not retry.
            session.queue(self.renderer.from_user(session.nick, "MODE", session.nick, message.param(1)))
        else:
            session.numeric(Numeric.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")

    # ------------------------------------------------------------------ messages

    def _privmsg(self, session: IrcSession, message: Message) -> None:
        self._message(session, message, "PRIVMSG", quiet=False)

    def _notice(self, session: IrcSession, message: Message) -> None:
        # RFC 2812: no automatic reply, errors included, is ever sent for a NOTICE.
        self._message(session, message, "NOTICE", quiet=True)

    def _message(self, session: IrcSession, message: Message, command: str, quiet: bool) -> None:
        if not message.param(0):
            if not quiet:
                session.numeric(Numeric.ERR_NORECIPIENT, f"No recipient given ({command})")
            return
        text = message.param(1)
        if not text:
            if not quiet:
                session.numeric(Numeric.ERR_NOTEXTTOSEND, "No text to send")
            return
        action = False
        if text.startswith("\x01"):
            ctcp = text.strip("\x01")
            word = ACTION.lstrip("\x01")
            if not ctcp.upper().startswith(word):
                return              # CTCP VERSION, PING...: nothing here answers them
            text, action = ctcp[len(word):], True
        core = self.service.core
        user = session.user
        for target in message.param(0).split(",")[:4]:
            room = room_of(target)
            if room is not None:
                if not valid_name(room):
                    if not quiet:
                        session.numeric(Numeric.ERR_NOSUCHCHANNEL, target[:50], "No such channel")
                elif not self._in_room(session, room):
                    if not quiet:
                        session.numeric(Numeric.ERR_CANNOTSENDTOCHAN, target[:50], "Cannot send to channel")
                else:
                    self.service.perform(core.say(user, text, action, room=room))
                continue
            if valid_name(target) and name_key(target) == user.key:
                session.queue(self.renderer.text(user.nick, command, user.nick, text, action))
                continue

            def intercept(event: Any, target: str = target) -> bool:
                if isinstance(event, Error):
                    if not quiet:
                        session.numeric(Numeric.ERR_NOSUCHNICK, target[:50], "No such nick/channel")
                    return True
                return False

            self.service.perform(core.private(user, target, text, action), session, intercept)
