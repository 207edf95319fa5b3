"""The "legacy" business code of examples/legacy_app.py: written for threads
and blocking calls, knowing nothing of gevent or gsocket. Each method makes
one legacy call and returns one line of text:

- ``lookup``: ``urllib.request`` GET to the backend;
- ``shout``: ``http.client`` POST to the backend;
- ``raw``: a blocking ``socket.create_connection`` speaking HTTP/1.0 by hand;
- ``nap``: ``time.sleep``;
- ``cached``: redis-py, falling back to ``lookup`` on a miss;
- ``in_thread``: any of the above in a ``threading.Thread``.

Every call also writes an audit line (``audit NAME MS``) to ``audit``, a
blocking socket of its own, the way old code reports to a log collector.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.request
from typing import Any, Callable, Optional
from urllib.parse import quote, urlsplit

__all__ = ["LegacyClient"]


class LegacyClient:
    """Blocking calls to the legacy backend (and to Redis, if given)."""

    def __init__(self, backend_url: str, audit: Optional[socket.socket] = None,
                 redis_url: Optional[str] = None, timeout: float = 30.0) -> None:
        self.backend_url = backend_url.rstrip("/")
        parts = urlsplit(self.backend_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.audit = audit
        self._audit_lock = threading.Lock()
        self.redis: Any = None
        if redis_url:
            import redis                     # only needed for the cache command
            self.redis = redis.Redis.from_url(redis_url, protocol=2, socket_timeout=timeout)

    def _audited(self, name: str, call: Callable[[], str]) -> str:
        started = time.monotonic()
        try:
            return call()
        finally:
            if self.audit is not None:
                line = "audit %s %d\n" % (name, (time.monotonic() - started) * 1000)
                with self._audit_lock:
                    self.audit.sendall(line.encode())

    def lookup(self, word: str) -> str:
        """GET /lookup with urllib.request."""
        def call() -> str:
            url = f"{self.backend_url}/lookup?word={quote(word)}"
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                return response.read().decode()
        return self._audited("lookup", call)

    def shout(self, text: str) -> str:
        """POST /echo with http.client."""
        def call() -> str:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                connection.request("POST", "/echo", body=text.encode(),
                                   headers={"Content-Type": "text/plain"})
                response = connection.getresponse()
                return response.read().decode()
            finally:
                connection.close()
        return self._audited("shout", call)

    def raw(self, word: str) -> str:
        """GET /lookup over a blocking TCP socket, HTTP/1.0 written by hand."""
        def call() -> str:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
                sock.sendall(b"GET /lookup?word=%s HTTP/1.0\r\nHost: %s\r\n\r\n"
                             % (quote(word).encode(), self.host.encode()))
                response = b""
                while chunk := sock.recv(65536):
                    response += chunk
            head, _, body = response.partition(b"\r\n\r\n")
            status = head.split(b"\r\n", 1)[0].decode(errors="replace")
            if " 200 " not in status:
                raise RuntimeError(f"backend answered {status!r}")
            return body.decode()
        return self._audited("raw", call)

    def nap(self, seconds: float) -> str:
        """time.sleep."""
        def call() -> str:
            time.sleep(seconds)
            return "slept %d ms" % (seconds * 1000)
        return self._audited("nap", call)

    def cached(self, word: str) -> str:
        """The lookup of ``word`` from Redis, or from the backend (then
        stored in Redis for a minute)."""
        if self.redis is None:
            raise RuntimeError("no Redis configured (--redis URL)")

        def call() -> str:
            key = f"legacy:lookup:{word}"
            value = self.redis.get(key)
            if value is not None:
                return "hit: " + value.decode()
            fresh = self.lookup(word)
            self.redis.set(key, fresh, ex=60)
            return "miss: " + fresh
        return self._audited("cached", call)

    def in_thread(self, work: Callable[[], Any], done: Callable[[Any], Any]) -> threading.Thread:
        """Run ``work()`` in a new thread that hands its result (or the
        exception) to ``done``; returns the started thread."""
        def run() -> None:
            try:
                result = work()
            except Exception as exc:   # noqa: BLE001 - reported to done
                result = exc
            done(result)
        thread = threading.Thread(target=run, name="legacy-worker", daemon=True)
        thread.start()
        return thread
