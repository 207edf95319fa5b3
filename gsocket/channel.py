"""Channel: a request/response client that reconnects (skynet's socketchannel).

    from gsocket.channel import Channel

    def line(sock):                       # order mode: replies come in request order
        return True, sock.readline()

    ch = Channel("127.0.0.1", 6379)
    ch.request(b"PING\\r\\n", line)        # -> b"+PONG\\r"

    def reply(sock):                      # session mode: the reply names its request
        session, _, data = sock.readline().partition(b" ")
        return int(session), True, data

    ch = Channel("127.0.0.1", 9000, response=reply)
    ch.request(b"7 hello\\n", 7)           # any greenlet, any order

Theory of operation
-------------------
A channel holds at most one live connection (a *link*): a socket id of
:mod:`gsocket.socket` plus a dispatcher greenlet that reads the replies (in
session mode for as long as the link lives; in order mode only while
requests wait, so an idle channel holds no greenlet and a peer close is
noticed through ``socket.onclose``).
``request`` writes in the caller's greenlet (``socket.write`` never blocks,
so concurrent requests never interleave their bytes), registers the caller
with the link (a FIFO in order mode, a session table in session mode) and
waits. The dispatcher calls the response function with the link's ``sock``
(``read(n)``, ``readline(sep)``, raising :class:`ChannelError` once the
socket closed) and hands each result to its waiter. Every waiter belongs to
one link: when that link dies (the peer closed, a response function raised,
a request timed out in order mode, ``close()``), all its waiters fail at
once with :class:`ChannelError`; nothing waits on a dead connection.

Connecting is lazy, as in skynet: the first request (or one after a drop)
connects, one greenlet at a time while the others wait for it. One
*attempt* tries the current address, the original one, then each
``backup``; after ``socket.open`` succeeds, ``auth(channel)`` runs in the
connecting greenlet and may itself call ``request`` (those go straight to
the new connection); if auth raises, the next address is tried. The
address that worked becomes the current one. A failed attempt fails the
requests waiting for it, and the next attempt is not made before a backoff
delay: ``backoff`` seconds, doubled after each failed attempt up to
``max_backoff``, reset by a success. Requests arriving during that delay
wait it out (so a retry loop cannot hammer a dead server), then try again.

Bounds (nothing waits forever)
------------------------------
- each ``socket.open``: ``connect_timeout`` seconds (default 5);
- a request that needs a connection: at most the backoff delay left
  (<= ``max_backoff``, default 5 s) plus one attempt (each address's
  ``connect_timeout`` plus ``auth``), then ChannelError;
- a reply: ``timeout`` seconds per request (default 30; per call with
  ``request(..., timeout=)``; None waits as long as the connection lives).
  In order mode a timeout drops the connection (the stream position is
  lost; the other requests on it fail too); in session mode only that
  request fails and a late reply is logged as an unknown session;
- ``close()``: pending requests fail at once; ``connect()`` without
  ``once`` retries until it succeeds, ``close()`` is called, or its
  ``timeout`` passes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

import gevent
from gevent import Timeout
from gevent.event import Event
from greenlet import getcurrent

from . import socket as gs
from ._channel_link import (
    Address, ChannelError, ChannelSocket, Link as _Link, Pending as _Pending, ResponseError,
    before_block, check_port, fields,
)

__all__ = ["Channel", "ChannelError", "ResponseError", "ChannelSocket"]

logger = logging.getLogger("gsocket.channel")

# Defined in ._channel_link; they belong to this module's API.
for _public in (ChannelError, ResponseError, ChannelSocket):
    _public.__module__ = __name__

BackupEntry = Union[str, Tuple[str, int], Dict[str, Any]]

_DEFAULT: Any = object()


class Channel:
    """A request/response client with reconnect (see the module docstring).

    ``response`` given: session mode, ``response(sock) -> (session, ok,
    data[, more])``; otherwise order mode, each ``request`` names its own
    ``response(sock) -> (ok, data[, more])``. ``more`` true gathers the
    parts into a list. ``auth(channel)`` runs after every (re)connect.
    ``backup``: addresses tried after the current one, each a host (the
    channel's port), a ``(host, port)`` tuple or ``{"host":, "port":}``.
    ``overload(flag)`` is called with True when more than 1 MiB waits to be
    sent, False when it drained. Keyword-only bounds: see the module
    docstring.
    """

    def __init__(self, host: str, port: int, response: Optional[Callable[[ChannelSocket], Any]] = None,
                 auth: Optional[Callable[["Channel"], Any]] = None, nodelay: bool = False,
                 backup: Optional[Sequence[BackupEntry]] = None, *,
                 overload: Optional[Callable[[bool], Any]] = None, connect_timeout: float = 5.0,
                 timeout: Optional[float] = 30.0, backoff: float = 0.1, max_backoff: float = 5.0) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty str, got {host!r}")
        check_port(port)
        for name, value in (("connect_timeout", connect_timeout), ("backoff", backoff),
                            ("max_backoff", max_backoff), ("timeout", timeout)):
            if value is None and name == "timeout":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        for name, fn in (("response", response), ("auth", auth), ("overload", overload)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable")
        self.host, self.port = host, port
        self._primary: Address = (host, port)
        self._backup: List[Address] = self._parse_backup(backup)
        self._response = response
        self._auth = auth
        self.nodelay = bool(nodelay)
        self._overload = overload
        self._overloaded = False
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._link: Optional[_Link] = None
        self._links: Set[_Link] = set()
        self._closed = False
        self._closed_event = Event()
        self._connecting: Optional[Event] = None
        self._auth_greenlet: Any = None
        self._auth_link: Optional[_Link] = None
        self._failures = 0
        self._next_attempt = 0.0
        self._last_error = "not connected"

    # ------------------------------------------------------------------ public API

    @property
    def address(self) -> Address:
        """The (host, port) of the last successful connection (or the one
        given, before any)."""
        return (self.host, self.port)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (requests then fail). Never blocks."""
        return self._closed

    @property
    def connected(self) -> bool:
        """True while a connection is up (a peer close may not be seen yet)."""
        link = self._link
        return link is not None and link.alive and gs.disconnected(link.id) is False

    def request(self, data: Any, response: Any = None, *, timeout: Any = _DEFAULT) -> Any:
        """Send ``data`` (bytes, str or a list of them) and return the
        reply's data. Order mode: ``response`` is the function that reads
        this request's reply. Session mode: ``response`` is the session
        the reply will carry. Without ``response``: send only, return None.
        Blocks the calling greenlet (see the bounds in the module
        docstring). Raises ResponseError when the reply says not ok,
        ChannelError when there is no connection, it drops, or the reply
        times out (``timeout`` seconds; the channel's by default)."""
        if timeout is _DEFAULT:
            timeout = self.timeout
        elif timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                      or timeout < 0):
            raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
        session_mode = self._response is not None
        if response is not None and not session_mode and not callable(response):
            raise TypeError("order mode: response must be a function of the channel socket")
        link = self._current_link()
        pending: Optional[_Pending] = None
        if response is not None:
            pending = _Pending()
            if session_mode:
                if response in link.sessions:
                    raise ValueError(f"session {response!r} is already waiting for a reply")
                link.sessions[response] = pending
        try:
            written = gs.write(link.id, data)
        except BaseException:
            if session_mode and pending is not None:
                link.sessions.pop(response, None)
            raise
        if not written:
            message = f"write to {link.address[0]}:{link.address[1]} failed: connection lost"
            self._drop(link, message)
            raise ChannelError(message)
        if pending is None:
            return None
        if not session_mode:
            link.queue.append((response, pending))
            if link.dispatcher is None:
                link.dispatcher = gevent.spawn(self._dispatch_by_order, link)
        return self._wait(link, pending, response, timeout)

    def connect(self, once: bool = False, timeout: Optional[float] = None) -> None:
        """Connect now (reopening a closed channel). ``once``: one attempt
        over every address, ChannelError if it fails. Otherwise retry with
        the backoff until connected, ``close()`` (ChannelError), or
        ``timeout`` seconds (ChannelError). Blocks the calling greenlet."""
        if self._closed:
            self._closed = False
            self._closed_event = Event()
        link = self._link
        if link is not None and link.alive and gs.disconnected(link.id) is False:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        self._connect(once, deadline)

    def close(self) -> None:
        """Close the connection; pending requests fail with ChannelError at
        once and later ones too (until ``connect()``). Idempotent; never
        blocks."""
        if self._closed:
            return
        self._closed = True
        self._closed_event.set()
        for link in list(self._links):
            self._drop(link, "channel closed")
        connecting = self._connecting
        if connecting is not None:
            connecting.set()        # waiters see the channel closed

    def changehost(self, host: str, port: Optional[int] = None) -> None:
        """Use another address from the next connection on, and drop the
        current connection (its pending requests fail)."""
        if port is not None:
            check_port(port)
            self.port = port
        self.host = host
        self._primary = (self.host, self.port)
        link = self._link
        if link is not None:
            self._drop(link, "host changed")

    def changebackup(self, backup: Optional[Sequence[BackupEntry]]) -> None:
        """Replace the backup addresses (used from the next attempt on)."""
        self._backup = self._parse_backup(backup)

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "session" if self._response is not None else "order"
        state = "closed" if self._closed else ("connected" if self.connected else "idle")
        return f"<Channel {self.host}:{self.port} {mode} mode, {state}>"

    # ------------------------------------------------------------------ connecting

    def _parse_backup(self, backup: Optional[Sequence[BackupEntry]]) -> List[Address]:
        addresses: List[Address] = []
        for entry in backup or ():
            if isinstance(entry, str):
                address = (entry, self.port)
            elif isinstance(entry, dict):
                address = (entry["host"], entry.get("port", self.port))
            elif isinstance(entry, (tuple, list)) and len(entry) == 2:
                address = (entry[0], entry[1])
            else:
                raise ValueError(f"a backup address is a host, (host, port) or a dict, not {entry!r}")
            if not isinstance(address[0], str) or not address[0]:
                raise ValueError(f"bad backup host in {entry!r}")
            check_port(address[1])
            addresses.append(address)
        return addresses

    def _addresses(self) -> List[Address]:
        """Current address, the original one, then the backups; no repeats."""
        result: List[Address] = []
        for address in [(self.host, self.port), self._primary, *self._backup]:
            if address not in result:
                result.append(address)
        return result

    def _current_link(self) -> _Link:
        """The connection to send on, connecting (once) if there is none."""
        if self._closed:
            raise ChannelError("channel closed")
        if self._auth_greenlet is getcurrent():
            link = self._auth_link
            if link is None or not link.alive:
                raise ChannelError("connection lost during auth")
            return link
        link = self._link
        if link is not None:
            if link.alive and gs.disconnected(link.id) is False:   # None: the id is gone
                return link
            logger.info("channel %s:%d: disconnect detected", *link.address)
            self._link = None
            if link.idle():
                self._drop(link, "connection closed by peer")
            # else its dispatcher still reads the replies already buffered
        return self._connect(True, None)

    def _connect(self, once: bool, deadline: Optional[float]) -> _Link:
        while True:
            if self._closed:
                raise ChannelError("channel closed")
            link = self._link
            if link is not None and link.alive:
                return link
            if deadline is not None and time.monotonic() >= deadline:
                raise ChannelError(f"connect timed out: {self._last_error}")
            connecting = self._connecting
            if connecting is not None:       # another greenlet connects: wait for its attempt
                before_block()
                connecting.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
                link = self._link
                if link is not None and link.alive and not self._closed:
                    return link
                if once:
                    raise ChannelError(self._last_error if not self._closed else "channel closed")
                continue
            connecting = self._connecting = Event()
            try:
                delay = self._next_attempt - time.monotonic()
                if deadline is not None:
                    delay = min(delay, deadline - time.monotonic())
                if delay > 0:
                    before_block()
                    self._closed_event.wait(delay)
                    if self._closed:
                        raise ChannelError("channel closed")
                try:
                    link = self._attempt()
                except ChannelError as exc:
                    self._failures += 1
                    wait = min(self.backoff * 2 ** (self._failures - 1), self.max_backoff)
                    self._next_attempt = time.monotonic() + wait
                    self._last_error = str(exc)
                    if once or self._closed:
                        raise
                    logger.info("channel: %s; next attempt in %.2f s", exc, wait)
                    continue
                self._failures = 0
                self._next_attempt = 0.0
                return link
            finally:
                self._connecting = None
                connecting.set()

    def _attempt(self) -> _Link:
        """One pass over the addresses; the new link, or ChannelError."""
        addresses = self._addresses()
        errors: List[str] = []
        index = 0
        while index < len(addresses):
            host, port = addresses[index]
            index += 1
            if index > 1:
                logger.info("channel: connect to backup host %s:%d", host, port)
            try:
                socket_id = gs.open(host, port, timeout=self.connect_timeout)
            except OSError as exc:       # refused, unreachable, resolver, TimeoutError
                errors.append(f"{host}:{port}: {exc or type(exc).__name__}")
                continue
            if self._closed:
                gs.close(socket_id)
                raise ChannelError("channel closed")
            link = self._start_link(socket_id, (host, port))
            self.host, self.port = host, port        # auth sees where it is (skynet sets it too)
            if self._auth is not None and not self._authenticate(link, errors):
                for address in self._addresses():    # auth may have changed the backups
                    if address not in addresses:
                        addresses.append(address)
                continue
            self._link = link
            logger.info("channel: connected to %s:%d", host, port)
            return link
        raise ChannelError("cannot connect: " + "; ".join(errors))

    def _authenticate(self, link: _Link, errors: List[str]) -> bool:
        self._auth_greenlet = getcurrent()
        self._auth_link = link
        try:
            assert self._auth is not None
            self._auth(self)
        except Exception as exc:   # noqa: BLE001 - any auth failure means: next address
            logger.warning("channel %s:%d: auth failed: %r", link.address[0], link.address[1], exc)
            errors.append(f"{link.address[0]}:{link.address[1]}: auth failed: {exc}")
            self._drop(link, f"auth failed: {exc}")
            return False
        finally:
            self._auth_greenlet = None
            self._auth_link = None
        if not link.alive or gs.disconnected(link.id) is not False:   # the peer closed during auth
            errors.append(f"{link.address[0]}:{link.address[1]}: connection lost during auth")
            self._drop(link, "connection lost during auth")
            return False
        return True

    def _start_link(self, socket_id: int, address: Address) -> _Link:
        link = _Link(socket_id, address)
        self._links.add(link)
        if self.nodelay:
            gs.nodelay(socket_id)
        if self._overload is not None:
            if self._overloaded:
                self._overloaded = False
                self._call_overload(False)
            gs.warning(socket_id, lambda _id, kib: self._on_warning(link, kib))
        if self._response is None:
            # No greenlet while idle: request() starts one for a burst.
            gs.onclose(socket_id, lambda _id: self._on_peer_close(link))
        else:
            link.dispatcher = gevent.spawn(self._dispatch_by_session, link)
        return link

    # ------------------------------------------------------------------ link events (dispatcher callbacks)

    def _on_peer_close(self, link: _Link) -> None:
        # An idle order-mode link reads nothing, so only this tells it the
        # peer went away (skynet's autoclose). A busy one finds out by reading.
        if link.alive and link.idle():
            logger.info("channel %s:%d: socket closed by peer", *link.address)
            self._drop(link, "connection closed by peer")

    def _on_warning(self, link: _Link, kib: int) -> None:
        if not link.alive or link is not self._link:
            return
        if kib == 0:
            if self._overloaded:
                self._overloaded = False
                self._call_overload(False)
        elif not self._overloaded:
            self._overloaded = True
            self._call_overload(True)
        else:
            logger.warning("channel %s:%d: %d KiB waiting to be sent", link.address[0], link.address[1], kib)

    def _call_overload(self, flag: bool) -> None:
        try:
            assert self._overload is not None
            self._overload(flag)
        except Exception:
            logger.exception("channel overload callback failed")

    # ------------------------------------------------------------------ waiting and failing

    def _wait(self, link: _Link, pending: _Pending, session: Any, timeout: Optional[float]) -> Any:
        before_block()
        if timeout is None:
            return pending.outcome(pending.waiter.get())
        expired = Timeout(timeout)
        expired.start()
        try:
            result = pending.waiter.get()
        except Timeout as exc:
            if exc is not expired:
                raise
            if pending.done:         # resolved at the last moment
                result = pending.waiter.get()
            else:
                message = f"no reply within {timeout} s"
                if self._response is not None:
                    if link.sessions.get(session) is pending:
                        del link.sessions[session]
                    pending.done = True
                else:                # the stream position is lost: drop the connection
                    self._drop(link, f"an earlier request got no reply within {timeout} s")
                raise ChannelError(message) from None
        finally:
            expired.close()
        return pending.outcome(result)

    def _drop(self, link: _Link, message: str, cause: Optional[BaseException] = None) -> None:
        """End a link: every request waiting on it fails now. Its
        dispatcher, if any, wakes (the socket is shut down) and closes the
        id; without one the id is closed here (no reader: never blocks)."""
        if not link.alive:
            return
        link.alive = False
        if self._link is link:
            self._link = None
        waiting = [pending for _, pending in link.queue] + list(link.sessions.values())
        link.queue.clear()
        link.sessions.clear()
        for pending in waiting:
            pending.fail(message, cause)
        if link.dispatcher is None:
            self._links.discard(link)
            gs.close(link.id)
        else:
            gs.shutdown(link.id)

    def _finish(self, link: _Link) -> None:
        """The dispatcher's last words: a dead link's id is closed."""
        link.dispatcher = None
        if link.alive:
            self._drop(link, "connection closed")
        else:
            self._links.discard(link)
            gs.close(link.id)

    # ------------------------------------------------------------------ dispatchers (one greenlet per link)

    def _dispatch_by_order(self, link: _Link) -> None:
        """Read the replies of the queued requests, then end (idle links
        have no greenlet; an idle peer close is seen by onclose)."""
        sock = link.sock
        try:
            while link.alive:
                if not link.queue:
                    link.dispatcher = None    # no yield since the check: request() starts a new one
                    return
                response, pending = link.queue[0]
                try:
                    ok, data = self._read_ordered(response, sock)
                except Exception as exc:   # noqa: BLE001 - the connection is unusable
                    self._fail_link(link, exc)
                    return
                if link.queue and link.queue[0][1] is pending:
                    link.queue.popleft()
                pending.resolve(ok, data)
        finally:
            if link.dispatcher is getcurrent() or not link.alive:
                self._finish(link)

    @staticmethod
    def _read_ordered(response: Callable[[ChannelSocket], Any], sock: ChannelSocket) -> Tuple[Any, Any]:
        ok, data, more = fields(response(sock), 2, "an order-mode response function")
        if not (ok and more):
            return ok, data
        parts = [data]
        while True:
            ok, data, more = fields(response(sock), 2, "an order-mode response function")
            if not ok:
                return ok, data
            parts.append(data)
            if not more:
                return True, parts

    def _dispatch_by_session(self, link: _Link) -> None:
        sock = link.sock
        response = self._response
        assert response is not None
        try:
            while link.alive:
                try:
                    session, ok, data, more = fields(response(sock), 3, "the session response function")
                    if session is None:
                        raise ValueError("the response function returned no session")
                    pending = link.sessions.get(session)
                except Exception as exc:   # noqa: BLE001 - the connection is unusable
                    self._fail_link(link, exc)
                    return
                if pending is None:
                    logger.warning("channel %s:%d: unknown session %r", link.address[0], link.address[1],
                                   session)
                    continue
                if ok and more:
                    if pending.parts is None:
                        pending.parts = []
                    pending.parts.append(data)
                    continue
                del link.sessions[session]
                if ok and pending.parts is not None:
                    data = [*pending.parts, data]
                pending.resolve(ok, data)
        finally:
            self._finish(link)

    def _fail_link(self, link: _Link, exc: BaseException) -> None:
        if not link.alive:
            return
        if isinstance(exc, ChannelError):
            message = f"connection to {link.address[0]}:{link.address[1]} lost"
        else:
            logger.warning("channel %s:%d: response failed: %r", link.address[0], link.address[1], exc)
            message = f"response failed: {exc}"
        self._drop(link, message, exc)
