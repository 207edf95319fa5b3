"""The Redis bridge: this node's link to the other nodes of the chat service.

Implements the core's :class:`~gsocket.chat.core.Cluster` with redis-py. The
process must be monkey-patched by gevent before redis is imported (the
``gsocket chat --redis`` command does it), so that redis-py's sockets block
only the calling greenlet.

Keys (``P`` is the prefix, default ``gsocket-chat``)::

    P:events                pub/sub channel: every event that crosses nodes (JSON, codec.py)
    P:nick:<nick>           "<node>|<token>": who holds a nick; TTL, refreshed by heartbeats
    P:node:<node>           the node is alive; TTL, refreshed by heartbeats
    P:presence:<node>       hash nick -> "room,room": where that node's users are; TTL too
    P:nodes                 set of node ids (dead ones are dropped by whoever notices)
    P:history:<room>        capped list (newest first) of the room's last messages
    P:guests                counter for guest nicks

A node killed with SIGKILL stops refreshing: its nicks and presence expire
after ``ttl`` seconds, so it leaves no ghosts. Heartbeats run every ttl/3.

Losing Redis: every call answers at once with "unknown" (the core goes on
locally), local users are told once, a background loop reconnects with
backoff (0.1 s doubling to 5 s), then re-advertises this node's users,
re-claims their nicks (a nick another node took meanwhile is handed back:
``on_nick_lost``) and tells the users the link is back.

Writes that need no answer (publish, presence, release) go through one
queue drained by a writer greenlet in pipelined batches, in order; while
Redis is down they are dropped (the resync after reconnecting restores
presence).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket as _stdlib_socket
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

import gevent
from gevent.event import Event as _GeventEvent
from gevent.queue import Queue

from .codec import decode, decode_said, encode, encode_said
from .core import Outgoing
from .events import Said
from .protocol import name_key

__all__ = ["RedisCluster", "RedisUnavailable", "check_url", "PRESENCE_TTL"]

logger = logging.getLogger("gsocket.chat.redis")

#: Seconds a node's nicks and presence outlive its last heartbeat.
PRESENCE_TTL = float(os.environ.get("GSOCKET_CHAT_PRESENCE_TTL", "30"))
#: Days a room's history outlives its last message.
HISTORY_DAYS = 7
#: Writes queued at most while the writer catches up (beyond: dropped, logged).
QUEUE_LIMIT = 100_000
#: Writes per pipeline.
BATCH = 512

# A nick is held while its key exists AND its node is alive: a node killed
# between two heartbeats never keeps a nick longer than its presence.
# ARGV: node, token number, ttl, prefix.
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. '|' then
  local owner = string.match(v, '^(.*)|[^|]*$')
  if owner and redis.call('EXISTS', ARGV[4] .. ':node:' .. owner) == 1 then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1
"""
# 1: held by a live node other than ARGV[1]; 0 otherwise. ARGV: node, prefix.
_LOCATE = """
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then return 0 end
local owner = string.match(v, '^(.*)|[^|]*$')
if owner and redis.call('EXISTS', ARGV[2] .. ':node:' .. owner) == 1 then return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: nick keys; ARGV[1]: ttl, ARGV[2]: prefix, ARGV[i+2]: the token held
# for KEYS[i]. Returns the indexes (1-based) of the nicks a live other node holds.
_REFRESH = """
local lost = {}
for i, key in ipairs(KEYS) do
  local token = ARGV[i + 2]
  local v = redis.call('GET', key)
  if v == token then redis.call('EXPIRE', key, ARGV[1])
  else
    local owner = v and string.match(v, '^(.*)|[^|]*$')
    if owner and redis.call('EXISTS', ARGV[2] .. ':node:' .. owner) == 1 then
      table.insert(lost, i)
    else redis.call('SET', key, token, 'EX', ARGV[1]) end
  end
end
return lost
"""


class RedisUnavailable(RuntimeError):
    """Redis could not be reached at start (or the URL is wrong)."""


def check_url(url: str) -> None:
    """ValueError with a clear message unless ``url`` is a redis:// URL
    redis-py accepts (imports redis: patch the process first)."""
    import redis
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"bad Redis URL {url!r}: expected redis://HOST:PORT/DB")
    try:
        pool = redis.ConnectionPool.from_url(url)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bad Redis URL {url!r}: {exc}") from None
    pool.disconnect()


class RedisCluster:
    """This node in a chat service spread over Redis (see the module doc).

    ``on_event(event)`` gets every event another node published;
    ``on_status(up)`` each change of the link; ``on_nick_lost(nick)`` a nick
    this node held that another node has now; ``local_presence()`` returns
    nick -> rooms of this node's users (for the resync). All are called in
    the bridge's greenlets and must not block for long.
    """

    def __init__(self, url: str, on_event: Callable[[Outgoing], None],
                 on_status: Callable[[bool], None], on_nick_lost: Callable[[str], None],
                 local_presence: Callable[[], Dict[str, Tuple[str, ...]]],
                 prefix: str = "gsocket-chat", ttl: Optional[float] = None,
                 node: Optional[str] = None) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        check_url(url)
        self.url = url
        self.prefix = prefix
        self.ttl = max(1, int(round(ttl if ttl is not None else PRESENCE_TTL)))
        self.heartbeat = max(0.2, self.ttl / 3.0)
        self.node = node or f"{_stdlib_socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.on_event = on_event
        self.on_status = on_status
        self.on_nick_lost = on_nick_lost
        self.local_presence = local_presence
        self._redis_errors = (redis.RedisError, OSError)
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=16, timeout=5, socket_timeout=5, socket_connect_timeout=2,
            decode_responses=True)
        self.redis = redis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
        self._claim = self.redis.register_script(_CLAIM)
        self._release = self.redis.register_script(_RELEASE)
        self._refresh = self.redis.register_script(_REFRESH)
        self._locate = self.redis.register_script(_LOCATE)
        self.channel = f"{prefix}:events"
        #: nick key -> the token this node holds it with.
        self.tokens: Dict[str, str] = {}
        self._nicks: Dict[str, str] = {}        # nick key -> display nick
        self._token_counter = itertools.count(1)
        self.up = False
        self._stopping = False
        self._queue: Queue = Queue()
        self._wake = _GeventEvent()
        self._greenlets: List[gevent.Greenlet] = []
        self._pubsub: Any = None

    # ------------------------------------------------------------------ keys

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    def _nick_key(self, nick: str) -> str:
        return self._key("nick", name_key(nick))

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 3.0) -> None:
        """Reach Redis (RedisUnavailable if it cannot within ``timeout``),
        register this node and start the subscriber, writer and heartbeat
        greenlets. Blocks the calling greenlet until subscribed."""
        try:
            with gevent.Timeout(timeout, RedisUnavailable(f"Redis at {self.url} did not answer "
                                                          f"within {timeout:g} s")):
                self.redis.ping()
        except self._redis_errors as exc:
            raise RedisUnavailable(f"cannot reach Redis at {self.url}: {exc}") from None
        subscribed = _GeventEvent()
        self._greenlets = [
            gevent.spawn(self._subscriber, subscribed),
            gevent.spawn(self._writer),
            gevent.spawn(self._heartbeats),
        ]
        if not subscribed.wait(timeout):
            self.stop()
            raise RedisUnavailable(f"cannot subscribe on Redis at {self.url}")
        logger.info("node %s linked through Redis %s (presence TTL %d s)", self.node, self.url, self.ttl)

    def stop(self) -> None:
        """Leave the service: delete this node's keys and nicks, stop the
        greenlets. Blocks briefly (one pipeline; nothing if Redis is down)."""
        if self._stopping:
            return
        self._stopping = True
        self._queue.put(None)
        if self._greenlets:
            subscriber, writer, heartbeats = self._greenlets
            subscriber.kill(block=False)
            heartbeats.kill(block=False)
            writer.join(2)     # what was queued before goes out first
            writer.kill(block=False)
        if self.up:
            try:
                with gevent.Timeout(2):
                    pipe = self.redis.pipeline(transaction=False)
                    pipe.delete(self._key("node", self.node), self._key("presence", self.node))
                    pipe.srem(f"{self.prefix}:nodes", self.node)
                    for key, token in self.tokens.items():
                        self._release(keys=[self._key("nick", key)], args=[token], client=pipe)
                    pipe.execute()
            except (gevent.Timeout, *self._redis_errors) as exc:
                logger.warning("could not remove this node's keys from Redis: %s", exc)
        self.up = False
        gevent.joinall(self._greenlets, timeout=2)
        if self._pubsub is not None:
            self._close_pubsub()
        self.redis.close()
        self.redis.connection_pool.disconnect()

    # ------------------------------------------------------------------ link state

    def _failed(self, what: str, exc: BaseException) -> None:
        if self._stopping:
            return
        if self.up:
            logger.warning("lost Redis (%s: %s); local rooms keep working, reconnecting", what, exc)
            self.up = False
            self.on_status(False)
        self._wake.set()

    def _call(self, what: str, fn: Callable[[], Any], default: Any) -> Any:
        if not self.up:
            return default
        try:
            return fn()
        except self._redis_errors as exc:
            self._failed(what, exc)
            return default

    # ------------------------------------------------------------------ Cluster

    def claim(self, nick: str) -> bool:
        """Take ``nick`` for this node (True while Redis is down). Blocks."""
        key = name_key(nick)
        token = f"{self.node}|{next(self._token_counter)}"
        won = self._call("claim", lambda: self._claim(
            keys=[self._nick_key(nick)],
            args=[self.node, token.rpartition("|")[2], self.ttl, self.prefix]), 1)
        if won:
            self.tokens[key] = token
            self._nicks[key] = nick
        return bool(won)

    def release(self, nick: str) -> None:
        """Give ``nick`` back (queued to Redis); never blocks."""
        key = name_key(nick)
        token = self.tokens.pop(key, None)
        self._nicks.pop(key, None)
        if token is not None:
            self._enqueue(("release", self._nick_key(nick), token))

    def next_guest(self) -> Optional[int]:
        """INCR of the service's guest counter; None while Redis is down."""
        value = self._call("guest", lambda: self.redis.incr(f"{self.prefix}:guests"), None)
        return int(value) if value is not None else None

    def locate(self, nick: str) -> Optional[bool]:
        """Whether another node holds ``nick`` now (None: unknown). Blocks."""
        value = self._call("locate", lambda: self._locate(keys=[self._nick_key(nick)],
                                                        args=[self.node, self.prefix]), None)
        return None if value is None else bool(value)

    def remote_presence(self) -> Optional[Dict[str, Tuple[str, ...]]]:
        """nick -> rooms of the users of every other live node. Blocks."""
        return self._call("presence", self._read_presence, None)  # type: ignore[no-any-return]

    def _read_presence(self) -> Dict[str, Tuple[str, ...]]:
        nodes = [str(n) for n in self.redis.smembers(f"{self.prefix}:nodes") if n != self.node]
        if not nodes:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for node in nodes:
            pipe.exists(self._key("node", node))
            pipe.hgetall(self._key("presence", node))
        replies = pipe.execute()
        presence: Dict[str, Tuple[str, ...]] = {}
        dead = []
        for index, node in enumerate(nodes):
            alive, users = replies[2 * index], replies[2 * index + 1]
            if not alive:
                dead.append(node)
                continue
            for nick, rooms in users.items():
                presence[str(nick)] = tuple(room for room in str(rooms).split(",") if room)
        if dead:
            self.redis.srem(f"{self.prefix}:nodes", *dead)
            logger.info("nodes gone from the service: %s", ", ".join(dead))
        return presence

    def room_history(self, room: str) -> Optional[List[Said]]:
        """The room's shared history, oldest first; None while down. Blocks."""
        raw = self._call("history", lambda: self.redis.lrange(self._key("history", name_key(room)),
                                                             0, 19), None)
        if raw is None:
            return None
        entries = [decode_said(item) for item in reversed(raw)]
        return [entry for entry in entries if entry is not None]

    def set_presence(self, nick: str, rooms: Tuple[str, ...]) -> None:
        """Advertise where this node's user ``nick`` is (queued)."""
        self._enqueue(("presence", nick, ",".join(rooms)))

    def publish(self, event: Outgoing, record: bool = False) -> None:
        """Send ``event`` to the other nodes (queued); ``record``: a Said
        that also goes into its room's shared history."""
        self._enqueue(("publish", encode(event, self.node), event if record else None))

    # ------------------------------------------------------------------ the writer

    def _enqueue(self, item: Tuple[Any, ...]) -> None:
        if not self.up or self._stopping:
            return
        if self._queue.qsize() >= QUEUE_LIMIT:
            logger.warning("Redis writes queue full (%d): dropping", QUEUE_LIMIT)
            return
        self._queue.put(item)

    def _writer(self) -> None:
        queue = self._queue
        history_ttl = HISTORY_DAYS * 86400
        while True:
            item = queue.get()
            batch = [item]
            while len(batch) < BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            pipe = self.redis.pipeline(transaction=False)
            done = False
            for entry in batch:
                if entry is None:
                    done = True
                    continue
                kind = entry[0]
                if kind == "publish":
                    pipe.publish(self.channel, entry[1])
                    said = entry[2]
                    if said is not None:
                        key = self._key("history", name_key(said.room))
                        pipe.lpush(key, encode_said(said))
                        pipe.ltrim(key, 0, 19)
                        pipe.expire(key, history_ttl)
                elif kind == "presence":
                    key = self._key("presence", self.node)
                    if entry[2]:
                        pipe.hset(key, entry[1], entry[2])
                        pipe.expire(key, self.ttl)
                    else:
                        pipe.hdel(key, entry[1])
                elif kind == "release":
                    self._release(keys=[entry[1]], args=[entry[2]], client=pipe)
            if len(pipe):
                if self.up:
                    try:
                        pipe.execute()
                    except self._redis_errors as exc:
                        self._failed("write", exc)
                else:
                    pipe.reset()
            if done:
                return

    # ------------------------------------------------------------------ subscriber and heartbeats

    def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        try:
            pubsub.close()
        except Exception:   # noqa: BLE001 - a broken connection may fail to close
            pass

    def _subscriber(self, subscribed: _GeventEvent) -> None:
        backoff = 0.1
        was_up = False
        while not self._stopping:
            try:
                pubsub = self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                self._resync()
            except self._redis_errors as exc:
                if self._pubsub is not None:
                    self._close_pubsub()
                logger.debug("Redis not back yet (%s); retry in %.1f s", exc, backoff)
                self._wake.clear()
                self._wake.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            self.up = True
            subscribed.set()
            if was_up:
                logger.warning("Redis is back: cross-node chat resumes")
                self.on_status(True)
            was_up = True
            try:
                self._listen(pubsub)
            except self._redis_errors as exc:
                self._failed("subscriber", exc)
            self._close_pubsub()

    def _listen(self, pubsub: Any) -> None:
        own = self.node
        while self.up and not self._stopping:
            message = pubsub.get_message(timeout=0.5)
            if message is None or message.get("type") != "message":
                continue
            decoded = decode(message["data"])
            if decoded is None:
                logger.debug("dropped an unreadable message on %s", self.channel)
                continue
            node, event = decoded
            if node != own:
                try:
                    self.on_event(event)
                except Exception:
                    logger.exception("handling %r from %s failed", event, node)

    def _resync(self) -> None:
        """After (re)connecting: advertise this node and all its users, re-claim
        their nicks. Raises redis errors (the subscriber retries)."""
        presence = self.local_presence()
        pipe = self.redis.pipeline(transaction=False)
        node_key, presence_key = self._key("node", self.node), self._key("presence", self.node)
        pipe.set(node_key, "1", ex=self.ttl)
        pipe.sadd(f"{self.prefix}:nodes", self.node)
        pipe.delete(presence_key)
        if presence:
            pipe.hset(presence_key, mapping={nick: ",".join(rooms) for nick, rooms in presence.items()})
            pipe.expire(presence_key, self.ttl)
        pipe.execute()
        for nick in presence:
            key = name_key(nick)
            if key not in self.tokens:
                self.tokens[key] = f"{self.node}|{next(self._token_counter)}"
                self._nicks[key] = nick
        self._refresh_nicks()

    def _refresh_nicks(self, node_alive: bool = False) -> None:
        keys = list(self.tokens)
        pipe = self.redis.pipeline(transaction=False)
        if keys:
            self._refresh(keys=[self._key("nick", key) for key in keys],
                          args=[str(self.ttl), self.prefix, *[self.tokens[key] for key in keys]],
                          client=pipe)
        if node_alive:
            pipe.set(self._key("node", self.node), "1", ex=self.ttl)
            pipe.sadd(f"{self.prefix}:nodes", self.node)
            pipe.expire(self._key("presence", self.node), self.ttl)
        if not len(pipe):
            return
        replies = pipe.execute()
        lost_indexes = replies[0] if keys else ()
        for index in lost_indexes or ():
            key = keys[int(index) - 1]
            nick = self._nicks.pop(key, key)
            self.tokens.pop(key, None)
            logger.warning("nick %s is held by another node now", nick)
            try:
                self.on_nick_lost(nick)
            except Exception:
                logger.exception("handing nick %s back failed", nick)

    def _heartbeats(self) -> None:
        while not self._stopping:
            gevent.sleep(self.heartbeat)
            if not self.up:
                continue
            try:
                # One pipeline: the nicks' and the node's expiry move together.
                self._refresh_nicks(node_alive=True)
            except self._redis_errors as exc:
                self._failed("heartbeat", exc)
