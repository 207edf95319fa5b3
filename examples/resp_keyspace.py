"""The data of the RESP example server, sans-I/O: numbered databases of keys
with optional expiry times, plus the WATCH registry that key writes touch.

A value is ``bytes`` (a Redis string) or a ``deque`` of bytes (a Redis
list). Expiry is in milliseconds of wall-clock time (``clock()`` seconds,
``time.time`` by default, injectable for tests). Like Redis, an expired key
is removed when it is next looked at; :meth:`Keyspace.expire_due` also
removes keys whose time has come, cheapest first, from a heap of deadlines,
so that memory goes back without anyone asking (Redis' active expiry).
"""

from __future__ import annotations

import heapq
import time
from typing import Callable, Deque, Dict, Iterator, List, Optional, Set, Tuple, Union

__all__ = ["Keyspace", "Value", "Watcher", "glob_match", "type_name"]

Value = Union[bytes, Deque[bytes]]


class Watcher:
    """Something that WATCHes keys (a client): ``dirty`` turns True when one
    of them is written, deleted or expires."""

    __slots__ = ("dirty", "watched")

    def __init__(self) -> None:
        self.dirty = False
        self.watched: Set[Tuple[int, bytes]] = set()


def type_name(value: Optional[Value]) -> bytes:
    """Redis' TYPE name of a value (``none`` for a missing key)."""
    if value is None:
        return b"none"
    return b"string" if isinstance(value, bytes) else b"list"


class Keyspace:
    """``databases`` numbered dictionaries of keys, with expiry and WATCH."""

    def __init__(self, databases: int = 16, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.data: List[Dict[bytes, Value]] = [{} for _ in range(databases)]
        self.expires: List[Dict[bytes, int]] = [{} for _ in range(databases)]
        self._deadlines: List[Tuple[int, int, bytes]] = []   # heap of (when_ms, db, key)
        self._watchers: Dict[Tuple[int, bytes], Set[Watcher]] = {}

    @property
    def databases(self) -> int:
        """How many databases there are (SELECT 0 .. databases - 1)."""
        return len(self.data)

    def now_ms(self) -> int:
        """The clock, in integer milliseconds."""
        return int(self.clock() * 1000)

    # ------------------------------------------------------------------ reading

    def lookup(self, db: int, key: bytes) -> Optional[Value]:
        """The value of ``key``, or None when it is missing or expired (an
        expired key is deleted here)."""
        value = self.data[db].get(key)
        if value is not None and key in self.expires[db] and self.expires[db][key] <= self.now_ms():
            self._delete(db, key)
            return None
        return value

    def get_expire(self, db: int, key: bytes) -> int:
        """The key's expiry time in ms, or -1 when it has none."""
        return self.expires[db].get(key, -1)

    def keys(self, db: int) -> Iterator[bytes]:
        """The live keys of ``db`` (expired ones are skipped, not removed)."""
        now = self.now_ms()
        expires = self.expires[db]
        for key in list(self.data[db]):
            when = expires.get(key)
            if when is None or when > now:
                yield key

    def size(self, db: int) -> int:
        """How many keys ``db`` holds (after removing those due to expire)."""
        self.expire_due()
        return len(self.data[db])

    def expiring(self, db: int) -> int:
        """How many keys of ``db`` have an expiry time."""
        return len(self.expires[db])

    # ------------------------------------------------------------------ writing

    def set(self, db: int, key: bytes, value: Value, keep_ttl: bool = False) -> None:
        """Store ``value`` under ``key``; its expiry time goes unless ``keep_ttl``."""
        self.data[db][key] = value
        if not keep_ttl:
            self.expires[db].pop(key, None)
        self.touch(db, key)

    def delete(self, db: int, key: bytes) -> bool:
        """Remove ``key``; True if it existed (and had not expired)."""
        if self.lookup(db, key) is None:
            return False
        self._delete(db, key)
        return True

    def _delete(self, db: int, key: bytes) -> None:
        del self.data[db][key]
        self.expires[db].pop(key, None)
        self.touch(db, key)

    def set_expire(self, db: int, key: bytes, when_ms: int) -> None:
        """Make an existing key expire at ``when_ms``."""
        self.expires[db][key] = when_ms
        heapq.heappush(self._deadlines, (when_ms, db, key))
        if len(self._deadlines) > 64 + 2 * sum(len(expires) for expires in self.expires):
            self._rebuild_deadlines()
        self.touch(db, key)

    def persist(self, db: int, key: bytes) -> bool:
        """Drop the key's expiry time; True if it had one."""
        if self.expires[db].pop(key, None) is None:
            return False
        self.touch(db, key)
        return True

    def flush(self, db: Optional[int] = None) -> None:
        """Empty database ``db`` (every database when None)."""
        for index in range(self.databases) if db is None else (db,):
            if self._watchers:
                for watched_db, key in list(self._watchers):
                    if watched_db == index and key in self.data[index]:
                        self.touch(index, key)
            self.data[index].clear()
            self.expires[index].clear()
        self._rebuild_deadlines()

    def expire_due(self, limit: int = 100_000) -> int:
        """Delete up to ``limit`` keys whose expiry time has passed; returns
        how many went. Never blocks; costs O(log n) per key."""
        now = self.now_ms()
        deadlines = self._deadlines
        removed = 0
        while deadlines and deadlines[0][0] <= now and removed < limit:
            when, db, key = heapq.heappop(deadlines)
            if self.expires[db].get(key) == when:   # not an outdated entry
                self._delete(db, key)
                removed += 1
        return removed

    def _rebuild_deadlines(self) -> None:
        self._deadlines = [(when, db, key) for db, expires in enumerate(self.expires)
                           for key, when in expires.items()]
        heapq.heapify(self._deadlines)

    # ------------------------------------------------------------------ WATCH

    def watch(self, watcher: Watcher, db: int, key: bytes) -> None:
        """Mark ``watcher`` dirty when ``key`` of ``db`` changes."""
        self._watchers.setdefault((db, key), set()).add(watcher)
        watcher.watched.add((db, key))

    def unwatch(self, watcher: Watcher) -> None:
        """Forget every key ``watcher`` watches, and its dirty flag."""
        for entry in watcher.watched:
            watchers = self._watchers.get(entry)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[entry]
        watcher.watched.clear()
        watcher.dirty = False

    def touch(self, db: int, key: bytes) -> None:
        """Tell the watchers of ``key`` it changed (every write calls this)."""
        if self._watchers:
            for watcher in self._watchers.get((db, key), ()):
                watcher.dirty = True


def glob_match(pattern: bytes, string: bytes, nocase: bool = False) -> bool:
    """Redis' glob matching (KEYS, CONFIG GET): ``*`` any run, ``?`` one
    byte, ``[abc]`` / ``[^abc]`` / ``[a-z]`` classes, ``\\`` quotes the next
    byte; an unterminated class ends with the pattern. Returns whether
    ``string`` matches all of ``pattern``. Iterative (the last ``*`` is the
    only backtracking point), so no pattern can exhaust the stack."""
    if nocase:
        pattern, string = pattern.lower(), string.lower()
    if not string:
        return not pattern          # as in Redis, even "*" does not match b""
    plen, slen = len(pattern), len(string)
    p = s = 0
    star = -1                       # index of the last '*' seen
    star_s = 0                      # where the string stood when it was seen
    while s < slen:
        if p < plen:
            char = pattern[p]
            if char == 0x2A:                                # '*'
                star, star_s = p, s
                p += 1
                continue
            if char == 0x3F:                                # '?'
                matched, after = True, p + 1
            elif char == 0x5B:                              # '['
                last, matched = _match_class(pattern, p + 1, string[s])
                after = last + 1
            else:
                if char == 0x5C and p + 1 < plen:           # '\\' quotes the next byte
                    p += 1
                matched, after = pattern[p] == string[s], p + 1
            if matched:
                p, s = after, s + 1
                continue
        if star < 0:
            return False
        star_s += 1                 # let the last '*' take one more byte
        p, s = star + 1, star_s
    while p < plen and pattern[p] == 0x2A:
        p += 1
    return p == plen


def _match_class(pattern: bytes, p: int, byte: int) -> Tuple[int, bool]:
    """Match ``byte`` against the class starting at pattern[p] (after the
    ``[``); returns (index of the closing ``]`` or of the last byte, matched)."""
    plen = len(pattern)
    negate = p < plen and pattern[p] == 0x5E                # '^'
    if negate:
        p += 1
    matched = False
    while True:
        if p < plen and pattern[p] == 0x5C and plen - p >= 2:
            p += 1
            if pattern[p] == byte:
                matched = True
        elif p < plen and pattern[p] == 0x5D:               # ']'
            break
        elif p >= plen:
            p -= 1              # an unterminated class ends with the pattern
            break
        elif plen - p >= 3 and pattern[p + 1] == 0x2D:      # a range 'a-z'
            start, end = sorted((pattern[p], pattern[p + 2]))
            p += 2
            if start <= byte <= end:
                matched = True
        elif pattern[p] == byte:
            matched = True
        p += 1
    return p, matched != negate
