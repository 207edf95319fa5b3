"""The chat server: the core, its doors, the Redis bridge and the console,
wired together, with a graceful shutdown.

:class:`ChatService` is what doors talk to: it runs the core and carries out
the outboxes it returns (deliveries to sessions, events to the other nodes,
sessions to close). :class:`ChatServer` owns the listeners and greenlets.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import gevent
from gevent.event import Event as _GeventEvent
from gevent.pool import Group

from .core import ChatCore, Cluster, Outbox, Outgoing, Session, User
from .events import Notice
from .line_door import LineDoor

__all__ = ["ChatService", "ChatServer", "SHUTDOWN_NOTICE"]

logger = logging.getLogger("gsocket.chat")

SHUTDOWN_NOTICE = "the server is shutting down, bye"


class ChatService:
    """The core plus the carrying-out of its outboxes: every door calls
    :meth:`connect`, :meth:`line` (or :meth:`perform` of a core operation's
    outbox) and :meth:`disconnect`."""

    def __init__(self, cluster: Optional[Cluster] = None, publish: Optional[Callable[..., None]] = None,
                 history_size: int = 20) -> None:
        self.core = ChatCore(cluster, history_size=history_size)
        self._publish = publish
        self.sessions: Set[Session] = set()

    def perform(self, outbox: Outbox, own: Optional[Session] = None,
                intercept: Optional[Callable[[Any], bool]] = None) -> None:
        """Deliver, publish, then close what ``outbox`` says. Never blocks
        (publishing is queued by the bridge). ``intercept``: a door's
        say on the events for its own session ``own`` (the replies to the
        command it is carrying out); those it returns True for are not
        delivered (the door answered them in its own way)."""
        for event, sessions in outbox.deliveries:
            for session in sessions:
                if session is own and intercept is not None and intercept(event):
                    continue
                session.deliver(event)
        publish = self._publish
        if publish is not None:
            for outgoing, record in outbox.published:
                publish(outgoing, record)
        for session, reason in outbox.closing:
            session.close(reason)

    def connect(self, session: Session) -> User:
        """Register a new client; it gets the lobby's history and greeting. May block."""
        user, outbox = self.core.connect(session)
        self.sessions.add(session)
        logger.info("%s %s connected as %s", session.door, session.peer, user.nick)
        self.perform(outbox)
        return user

    def register(self, session: Session, nick: str) -> Optional[User]:
        """Register a client that picked its nick first (IRC): no room, no
        greeting; None if ``nick`` is taken or invalid. May block."""
        user = self.core.register(session, nick)
        if user is not None:
            self.sessions.add(session)
            logger.info("%s %s registered as %s", session.door, session.peer, nick)
        return user

    def line(self, user: User, text: str) -> None:
        """One line of the line protocol from ``user``. May block."""
        self.perform(self.core.handle_line(user, text))

    def disconnect(self, user: User, reason: str) -> None:
        """The client is gone. May block."""
        if not user.connected:
            return
        self.sessions.discard(user.session)
        logger.info("%s %s (%s) disconnected: %s", user.session.door, user.session.peer,
                    user.nick, reason)
        self.perform(self.core.disconnect(user, reason))

    def receive(self, event: Outgoing) -> None:
        """An event from another node."""
        self.perform(self.core.receive(event))

    def announce(self, text: str, everywhere: bool = True) -> int:
        """A notice to every user (``everywhere``: on every node); returns
        how many local users got it."""
        outbox = self.core.announce(text, everywhere)
        self.perform(outbox)
        return len(self.core.users)


class ChatServer:
    """A chat server: ``start()`` listens and returns the port; ``stop()``
    shuts down gracefully; ``wait()`` blocks until stopped.

    ``redis``: a redis:// URL to join a service spread over Redis (the
    process must be monkey-patched first); ``reuseport``: share the port
    with other processes (``--workers``); ``console``: (host, port) of the
    admin console; ``presence_ttl``: seconds before a dead node's users
    disappear. Flood limits: ``line_rate``, ``line_burst``, ``flood_patience``.
    ``web`` and ``irc``: the ports of the browser and IRC doors (0: any
    free port; see ``web_address``, ``irc_address``); ``irc_options``:
    keyword arguments for :class:`~gsocket.chat.irc_door.IrcDoor` (ping
    intervals, server name).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8888, *, redis: Optional[str] = None,
                 reuseport: bool = False, console: Optional[Tuple[str, int]] = None,
                 presence_ttl: Optional[float] = None, line_rate: float = 20.0, line_burst: int = 40,
                 flood_patience: float = 5.0, redis_prefix: str = "gsocket-chat",
                 web: Optional[int] = None, irc: Optional[int] = None,
                 irc_options: Optional[Dict[str, Any]] = None) -> None:
        self.host = host
        self.port = port
        self.redis_url = redis
        self.reuseport = reuseport
        self.console_address = console
        self.presence_ttl = presence_ttl
        self.redis_prefix = redis_prefix
        self.greenlets = Group()
        self.cluster: Any = None
        self.service = ChatService()
        self.door = LineDoor(self.service, self.greenlets.spawn, line_rate=line_rate,
                             line_burst=line_burst, flood_patience=flood_patience)
        self.console_id: Optional[int] = None
        self.address: Optional[Tuple[str, int]] = None
        #: ``web``: the browser door's port (``--web``); its address once listening.
        self.web_port = web
        self.web_door: Any = None
        self.web_address: Optional[Tuple[str, int]] = None
        if web is not None:
            from .web_door import WebDoor
            self.web_door = WebDoor(self.service, self.greenlets.spawn, line_rate=line_rate,
                                    line_burst=line_burst, flood_patience=flood_patience)
        #: ``irc``: the IRC door's port (``--irc``); its address once listening.
        self.irc_port = irc
        self.irc_door: Any = None
        self.irc_address: Optional[Tuple[str, int]] = None
        if irc is not None:
            from .irc_door import IrcDoor
            self.irc_door = IrcDoor(self.service, self.greenlets.spawn, line_rate=line_rate,
                                    line_burst=line_burst, flood_patience=flood_patience,
                                    **(irc_options or {}))
        self._stopped = _GeventEvent()
        self._stopping = False

    # ------------------------------------------------------------------ start

    def start(self) -> int:
        """Join Redis (when asked), listen, start the console; returns the
        port. Raises OSError (address in use), RedisUnavailable or
        ValueError (bad Redis URL). Blocks the calling greenlet while
        reaching Redis."""
        if self.redis_url is not None:
            self._start_cluster(self.redis_url)
        try:
            listen_id = self.door.listen(self.host, self.port, reuseport=self.reuseport)
            from .. import socket
            address = socket.address(listen_id)
            assert address is not None
            self.address = (address[0], address[1])
            if self.web_door is not None:
                self.web_address = self._start_door(self.web_door, self.web_port, "web")
                logger.info("chat web page on http://%s:%d/", *self.web_address)
            if self.irc_door is not None:
                self.irc_address = self._start_door(self.irc_door, self.irc_port, "irc")
                logger.info("chat IRC door on %s:%d", *self.irc_address)
            if self.console_address is not None:
                self._start_console(*self.console_address)
        except BaseException:
            for door in self._doors():
                door.close()
            if self.cluster is not None:
                self.cluster.stop()
            raise
        logger.info("chat listening on %s:%d (%s)", self.address[0], self.address[1],
                    f"Redis {self.redis_url}" if self.redis_url else "standalone")
        return self.address[1]

    def _start_cluster(self, url: str) -> None:
        from .redis_bridge import RedisCluster
        service = self.service
        cluster = RedisCluster(
            url, on_event=service.receive, on_status=self._link_changed,
            on_nick_lost=lambda nick: service.perform(service.core.nick_lost(nick)),
            local_presence=service.core.presence, prefix=self.redis_prefix, ttl=self.presence_ttl)
        cluster.start()
        self.cluster = cluster
        service.core.cluster = cluster
        service._publish = cluster.publish

    def _doors(self) -> List[Any]:
        return [door for door in (self.door, self.web_door, self.irc_door) if door is not None]

    def _start_door(self, door: Any, port: Optional[int], what: str) -> Tuple[str, int]:
        """Start a door on the chat's host; its address. OSError naming the door."""
        from .. import socket
        try:
            listen_id = door.listen(self.host, port or 0, reuseport=self.reuseport)
        except OSError as exc:   # say which address: the chat port's or this door's
            raise OSError(exc.errno, exc.strerror, f"{self.host}:{port} ({what})") from None
        address = socket.address(listen_id)
        assert address is not None
        return (address[0], address[1])

    def _link_changed(self, up: bool) -> None:
        if up:
            text = "the link to the other chat servers is back: everyone hears you again"
        else:
            text = ("lost the link to the other chat servers: only people on this server hear "
                    "you for now")
        self.service.announce(text, everywhere=False)

    def _start_console(self, host: str, port: int) -> None:
        from .. import console
        try:
            self.console_id = console.start(host, port, commands=self.console_commands())
        except OSError as exc:   # say which address: the chat port's or the console's
            raise OSError(exc.errno, exc.strerror, f"{host}:{port} (console)") from None

    def console_commands(self) -> Dict[str, Callable[[List[str]], str]]:
        """The chat's console commands: rooms, kick NICK, broadcast TEXT."""
        service = self.service

        def rooms(args: List[str]) -> str:
            counts = service.core.room_counts()
            return "\n".join(f"{name} {count}" for name, count in counts) or "no rooms"

        def kick(args: List[str]) -> str:
            if len(args) != 1:
                raise ValueError("usage: kick NICK")
            outbox = service.core.kick(args[0], "kicked by an operator")
            if outbox is None:
                raise ValueError(f"no such nick: {args[0]}")
            service.perform(outbox)
            return f"kicked {args[0]}"

        def broadcast(args: List[str]) -> str:
            text = getattr(args, "line", " ".join(args)).strip()
            if not text:
                raise ValueError("usage: broadcast TEXT")
            count = service.announce(text)
            return f"broadcast to {count} local users" + (" and every other node" if self.cluster else "")

        def users(args: List[str]) -> str:
            listed = sorted(service.core.users.values(), key=lambda user: user.key)
            return "\n".join(f"{u.nick} {u.session.door} {u.session.peer} {','.join(u.rooms)}"
                             for u in listed) or "no users"

        return {"rooms": rooms, "kick": kick, "broadcast": broadcast, "users": users}

    # ------------------------------------------------------------------ stop

    def stop(self, grace: float = 3.0) -> None:
        """Graceful shutdown: stop accepting, tell every client, close each
        after its queued output, wait up to ``grace`` seconds for them to
        finish, then drop the rest, leave Redis and close the console.
        Blocks the calling greenlet until done; safe to call twice."""
        if self._stopping:
            self._stopped.wait()
            return
        self._stopping = True
        # Each door's socket.stop closes its listener at once, then waits
        # for its clients; meanwhile every client is told and closed.
        stoppers = [gevent.spawn(door.stop, grace) for door in self._doors()]
        gevent.sleep(0)
        service = self.service
        notice = Notice(SHUTDOWN_NOTICE)
        sessions = list(service.sessions)
        for session in sessions:
            session.deliver(notice)
            session.close("server stopped")
        logger.info("stopping: told %d clients", len(sessions))
        forced = sum(stopper.get()[1] for stopper in stoppers)
        if forced:
            logger.warning("%d clients did not finish in %.1f s: closed them", forced, grace)
        if not self.greenlets.join(timeout=1):
            self.greenlets.kill(timeout=1)
        if self.console_id is not None:
            from .. import console
            console.stop(self.console_id)
            self.console_id = None
        if self.cluster is not None:
            self.cluster.stop()
        logger.info("chat stopped")
        self._stopped.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until :meth:`stop` finished; False on timeout."""
        return self._stopped.wait(timeout)

    def spawn_stop(self) -> gevent.Greenlet:
        """Start :meth:`stop` in a new greenlet (from a signal handler)."""
        return gevent.spawn(self.stop)
