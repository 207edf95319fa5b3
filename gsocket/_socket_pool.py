"""The state behind gsocket.socket: one SocketPool per driver (socket.lua's
socket_pool), an entry per socket id it started.

Theory of operation
-------------------
The pool is registered as an owner with its driver. An entry holds a read
buffer (:class:`gsocket.buffer.ReadBuffer`), the connection flags, and at
most one greenlet waiting to read. The dispatcher pushes DATA into the
buffer and wakes the waiting reader once what it asked for is there;
everything else runs in the caller's greenlet and blocks only that greenlet.

Read backpressure follows skynet: more than 128 KiB unread while no reader
waits for it pauses the socket, and the next read that has to wait resumes
it. The same rule bounds the bytes kept for an id between ``abandon`` and
the next ``start``; if its peer closes and nobody starts it within
:data:`ABANDONED_GRACE` seconds, the id is closed and its bytes dropped.
Paused at the limit, an abandoned id reads nothing, so its peer's close is
no event: every :data:`ABANDONED_CHECK` seconds the pool asks the server
whether the peer closed (``SocketServer.peer_closed``).

The pool reaches the sockets only through the driver's and the server's
public operations.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

from gevent import Timeout
from gevent.hub import Waiter
from greenlet import getcurrent

from .buffer import ReadBuffer
from .driver import forget_lookup
from .events import (
    SKYNET_SOCKET_TYPE_ACCEPT, SKYNET_SOCKET_TYPE_CLOSE, SKYNET_SOCKET_TYPE_CONNECT,
    SKYNET_SOCKET_TYPE_DATA, SKYNET_SOCKET_TYPE_ERROR, SKYNET_SOCKET_TYPE_UDP,
    SKYNET_SOCKET_TYPE_WARNING, SocketMessage,
)

__all__ = ["SocketPool", "Entry", "BUFFER_LIMIT", "ABANDONED_GRACE", "ABANDONED_CHECK", "pool_of"]

logger = logging.getLogger("gsocket.socket")

#: skynet socket.lua BUFFER_LIMIT: unread bytes that pause a socket nobody reads.
BUFFER_LIMIT = 128 * 1024
#: Seconds an abandoned id whose peer closed waits for a ``start`` before it
#: is closed and its buffered bytes dropped (a hand-over in flight usually
#: takes a loop turn; picked generously).
ABANDONED_GRACE = 5.0
#: Seconds between two checks of a paused abandoned id's peer (one poll(2)
#: of one fd each; picked to be cheap and still free the bytes soon).
ABANDONED_CHECK = 1.0

# What a waiting reader wants (``entry.read_required``).
WANT_ANY = 0          # read() / block(): any data; ints > 0: read(n)
WANT_CLOSE = True     # readall(): wait for the close

#: server.start's error text for a socket whose peer already closed.
_START_ON_CLOSED = "socket closed"


class Entry:
    """What the pool knows about one socket id."""

    __slots__ = (
        "id", "buffer", "connected", "connect_error", "read_required", "reader",
        "callback", "paused", "closing", "buffer_limit", "on_warning", "protocol",
        "is_listener", "stream",
    )

    def __init__(self, socket_id: int, protocol: str = "TCP", buffer: Optional[ReadBuffer] = None) -> None:
        self.id = socket_id
        self.buffer = buffer if buffer is not None else ReadBuffer()
        self.connected = True
        self.connect_error: Optional[str] = None
        self.read_required: Any = None
        self.reader: Optional[Waiter] = None
        self.callback: Optional[Callable[..., Any]] = None
        self.paused: Optional[bool] = None   # None: may pause; True: paused; False: never again
        self.closing: Optional[Waiter] = None
        self.buffer_limit: Optional[int] = None
        self.on_warning: Optional[Callable[[int, int], Any]] = None
        self.protocol = protocol
        self.is_listener = False
        #: The server's stream of this id (SocketServer.stream), looked up
        #: by the first write or drain; None until then and for other kinds.
        self.stream: Any = None


class SocketPool:
    """The gsocket.socket state of one Driver (socket.lua's socket_pool)."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.server = driver.server
        self.loop = driver.hub.loop
        self.hub = driver.hub
        self.call_soon = self.server.call_soon
        #: The OS thread of the driver's hub (socket calls check it).
        self.thread_ident = driver.thread_ident
        self.entries: Dict[int, Entry] = {}
        self.onclose: Dict[int, Callable[[int], Any]] = {}
        #: Bytes kept between abandon(id) and the next start(id).
        self.abandoned: Dict[int, ReadBuffer] = {}
        self._abandoned_timers: Dict[int, Any] = {}
        #: Repeating timers checking the peer of a paused abandoned id.
        self._abandoned_checks: Dict[int, Any] = {}
        #: id -> Waiter of a greenlet waiting for a TLS handshake (wait_open_id).
        self.open_waiters: Dict[int, Waiter] = {}
        self.opaque = driver.register(self.dispatch)
        driver.register_direct(self.opaque, self.on_bytes)
        self.handlers = {
            SKYNET_SOCKET_TYPE_DATA: self.on_data,
            SKYNET_SOCKET_TYPE_CONNECT: self.on_connect,
            SKYNET_SOCKET_TYPE_CLOSE: self.on_close,
            SKYNET_SOCKET_TYPE_ACCEPT: self.on_accept,
            SKYNET_SOCKET_TYPE_ERROR: self.on_error,
            SKYNET_SOCKET_TYPE_UDP: self.on_udp,
            SKYNET_SOCKET_TYPE_WARNING: self.on_warning,
        }

    def release(self) -> None:
        """Wake every waiting reader (they get None) and forget all ids."""
        for entry in list(self.entries.values()):
            entry.connected = False
            self.wake(entry)
        self.entries.clear()
        self.onclose.clear()
        for socket_id in list(self.abandoned):
            self.forget_abandoned(socket_id)

    # ------------------------------------------------------------------ queries

    def entry(self, socket_id: int) -> Optional[Entry]:
        """The entry of a started id, or None (TypeError for a non-int id)."""
        entry = self.entries.get(socket_id)
        if entry is None and (isinstance(socket_id, bool) or not isinstance(socket_id, int)):
            raise TypeError(f"socket id must be an int, not {type(socket_id).__name__}")
        return entry

    def known_to_server(self, socket_id: int) -> bool:
        """True while the server still has this id (of any kind)."""
        return self.server.exists(socket_id)

    # ------------------------------------------------------------------ dispatch (in the dispatcher)

    def dispatch(self, kind: int, message: SocketMessage) -> None:
        """The owner callback registered with the driver."""
        self.handlers[kind](message)

    def wake(self, entry: Entry) -> None:
        """Wake the greenlet waiting to read ``entry`` (soon, never now)."""
        reader = entry.reader
        if reader is not None:
            entry.read_required = None
            self.call_soon(reader.switch, None)

    def pause_reading(self, entry: Entry, size: int) -> None:
        if entry.paused is None:
            logger.debug("pause socket %d: %d bytes unread", entry.id, size)
            entry.paused = True
            self.server.pause(entry.id)

    def on_data(self, message: SocketMessage) -> None:
        """DATA through the dispatcher."""
        self.on_bytes(message.id, message.data)  # type: ignore[arg-type]  # DATA: bytes

    def on_bytes(self, socket_id: int, data: bytes) -> None:
        """Bytes read from ``socket_id``: buffer them, wake the reader if it
        has what it waits for, pause the socket if nobody reads. Runs in the
        dispatcher, or in the hub (register_direct); never blocks."""
        entry = self.entries.get(socket_id)
        if entry is None:
            buffer = self.abandoned.get(socket_id)
            if buffer is not None:   # between abandon() and start(): keep it, bounded
                if buffer.push(data) > BUFFER_LIMIT:
                    self._pause_abandoned(socket_id)   # start() reads again
                return
            # Usually data that was in flight when we closed the id.
            logger.debug("socket: drop package from %d (%d bytes)", socket_id, len(data))
            return
        size = entry.buffer.push(data)
        required = entry.read_required
        if type(required) is int:
            if size >= required:
                if size > BUFFER_LIMIT:
                    self.pause_reading(entry, size)
                reader = entry.reader   # self.wake(entry), inlined: every read's path
                entry.read_required = None
                self.call_soon(reader.switch, None)   # type: ignore[union-attr]  # waits
            return
        limit = entry.buffer_limit
        if limit is not None and size > limit:
            logger.warning("socket buffer overflow: fd=%d size=%d limit=%d", entry.id, size, limit)
            entry.paused = False
            self.server.close(entry.id)
            entry.connected = False
            self.wake(entry)
            return
        if required is None:
            if size > BUFFER_LIMIT:
                self.pause_reading(entry, size)
        elif required is not WANT_CLOSE:   # a separator
            if entry.buffer.has_line(required):
                if size > BUFFER_LIMIT:
                    self.pause_reading(entry, size)
                self.wake(entry)
        # readall(): never pause, or the peer's close could never be seen.

    def opened(self, socket_id: int, ok: bool) -> None:
        """OPEN (``ok``), ERROR or CLOSE of an id whose handshake is awaited."""
        waiter = self.open_waiters.pop(socket_id, None)
        if waiter is not None:
            self.loop.run_callback(waiter.switch, ok)

    def on_connect(self, message: SocketMessage) -> None:
        if self.open_waiters:
            self.opened(message.id, True)
        entry = self.entries.get(message.id)
        if entry is not None and not entry.connected and entry.connect_error is None:
            entry.connected = True
            self.wake(entry)

    def on_close(self, message: SocketMessage) -> None:
        socket_id = message.id
        if self.open_waiters:
            self.opened(socket_id, False)
        entry = self.entries.get(socket_id)
        if entry is None:
            if socket_id in self.abandoned:
                self._abandoned_peer_closed(socket_id)
            else:
                # An id nobody here tracks: make sure it does not linger
                # half-closed (skynet #1358).
                self.server.close(socket_id)
        else:
            entry.connected = False
            self.wake(entry)
        callback = self.onclose.pop(socket_id, None)
        if callback is not None:
            callback(socket_id)

    def on_accept(self, message: SocketMessage) -> None:
        entry = self.entries.get(message.id)
        new_id = message.ud
        if entry is None or entry.callback is None:
            logger.warning("socket: accept on unknown listener %d; closing %d", message.id, new_id)
            self.server.close(new_id)
            return
        try:
            entry.callback(new_id, message.data)
        except Exception:
            logger.exception("socket: accept callback of listener %d failed; closing %d",
                             message.id, new_id)
            self.close_after_failure(new_id)

    def close_after_failure(self, socket_id: int) -> None:
        """Close an id whose accept callback raised, whoever holds it now."""
        entry = self.entries.pop(socket_id, None)
        if entry is not None:
            entry.connected = False
            self.wake(entry)
        self.forget_abandoned(socket_id)
        self.server.close(socket_id)

    def on_error(self, message: SocketMessage) -> None:
        if self.open_waiters:
            self.opened(message.id, False)
        entry = self.entries.get(message.id)
        if entry is None:
            logger.warning("socket: error on unknown %d: %s", message.id, message.data)
            self.server.shutdown(message.id)
            return
        if entry.callback is not None:
            kind = "listener" if entry.is_listener else "udp socket"
            logger.warning("socket: error on %s %d: %s", kind, message.id, message.data)
            return
        if entry.connected and message.data != _START_ON_CLOSED:
            logger.info("socket: error on %d: %s", message.id, message.data)
        entry.connect_error = message.data  # type: ignore[assignment]
        entry.connected = False
        self.server.shutdown(message.id)
        self.wake(entry)

    def on_udp(self, message: SocketMessage) -> None:
        entry = self.entries.get(message.id)
        if entry is None or entry.callback is None:
            logger.warning("socket: drop udp package from %d", message.id)
            return
        entry.callback(message.data, message.address)

    def on_warning(self, message: SocketMessage) -> None:
        entry = self.entries.get(message.id)
        if entry is None:
            return
        if entry.on_warning is not None:
            entry.on_warning(message.id, message.ud)
        else:
            logger.warning("WARNING: %d K bytes need to send out (fd = %d)", message.ud, message.id)

    # ------------------------------------------------------------------ abandoned ids

    def _pause_abandoned(self, socket_id: int) -> None:
        self.server.pause(socket_id)
        if socket_id not in self._abandoned_checks:
            timer = self.loop.timer(ABANDONED_CHECK, ABANDONED_CHECK)
            self._abandoned_checks[socket_id] = timer
            timer.start(self._check_abandoned, socket_id)

    def _check_abandoned(self, socket_id: int) -> None:
        if socket_id not in self.abandoned:
            self._stop_check(socket_id)
        elif self.server.peer_closed(socket_id) or not self.known_to_server(socket_id):
            self._stop_check(socket_id)
            self._abandoned_peer_closed(socket_id)

    def _stop_check(self, socket_id: int) -> None:
        timer = self._abandoned_checks.pop(socket_id, None)
        if timer is not None:
            timer.stop()
            timer.close()

    def _abandoned_peer_closed(self, socket_id: int) -> None:
        if socket_id in self._abandoned_timers:
            return
        timer = self.loop.timer(ABANDONED_GRACE)
        self._abandoned_timers[socket_id] = timer
        timer.start(self._abandoned_expired, socket_id)

    def _abandoned_expired(self, socket_id: int) -> None:
        if socket_id in self.abandoned:
            logger.debug("socket: abandoned %d closed by its peer and never started: closing", socket_id)
            self.forget_abandoned(socket_id)
            self.server.close(socket_id)

    def forget_abandoned(self, socket_id: int) -> Optional[ReadBuffer]:
        """Drop what is kept for an abandoned id; return its buffer."""
        self._stop_check(socket_id)
        timer = self._abandoned_timers.pop(socket_id, None)
        if timer is not None:
            timer.stop()
            timer.close()
        return self.abandoned.pop(socket_id, None)

    # ------------------------------------------------------------------ waiting (in the caller)

    def suspend(self, entry: Entry, required: Any, timeout: Optional[float]) -> None:
        """Block the calling greenlet until the dispatcher wakes it (data,
        close, error, abandon) or ``timeout`` passes (TimeoutError)."""
        if entry.reader is not None:
            raise RuntimeError(f"socket {entry.id} is already being read by another greenlet")
        if entry.paused:
            logger.debug("resume socket %d", entry.id)
            entry.paused = None
            self.server.resume(entry.id)
        if getcurrent() is self.driver.dispatcher:   # an owner callback blocks here
            self.driver.before_block()
        waiter = Waiter(self.hub)
        entry.reader = waiter
        entry.read_required = required
        try:
            if timeout is None:
                waiter.get()
            else:
                _wait_at_most(waiter, entry.id, timeout)
        finally:
            entry.reader = None
            entry.read_required = None
            closer = entry.closing
            if closer is not None:
                entry.closing = None
                self.loop.run_callback(closer.switch, None)

    # ------------------------------------------------------------------ operations (hub thread)

    def start_id(self, socket_id: int, on_accept: Optional[Callable[[int, str], Any]]) -> int:
        """socket.start in the hub's thread (arguments already checked)."""
        if not self.known_to_server(socket_id):
            self.entries.pop(socket_id, None)
            self.forget_abandoned(socket_id)
            raise ConnectionError(f"socket {socket_id}: invalid socket")
        entry = self.entries.get(socket_id)
        if on_accept is not None:
            if entry is None:
                entry = self.entries[socket_id] = Entry(socket_id)
                entry.is_listener = True
            entry.callback = on_accept
            self.server.start(socket_id, self.opaque)
            return socket_id
        if entry is not None and entry.is_listener:
            raise ValueError(f"socket {socket_id} is a listener: start it with an on_accept callback")
        if entry is None:
            kept = None
            if self.abandoned or self._abandoned_timers or self._abandoned_checks:
                kept = self.forget_abandoned(socket_id)
            entry = self.entries[socket_id] = Entry(socket_id, buffer=kept)
        entry.paused = None if entry.paused is not False else False
        # A socket whose peer already closed: the server answers ERROR
        # "socket closed", and the entry reports closed with its bytes kept.
        self.server.start(socket_id, self.opaque)
        return socket_id

    def wait_open_id(self, socket_id: int) -> bool:
        """Block the calling greenlet while the TLS handshake of a started
        id runs: True once it is open (at once for other ids), False if it
        failed or closed first."""
        if not self.server.handshaking(socket_id):
            return True
        waiter = Waiter(self.hub)
        self.open_waiters[socket_id] = waiter
        try:
            return bool(waiter.get())
        finally:
            self.open_waiters.pop(socket_id, None)

    def close_id(self, socket_id: int) -> None:
        """socket.close in the hub's thread."""
        entry = self.entry(socket_id)
        if entry is None:
            return
        entry.paused = False
        entry.connected = False
        self.server.close(socket_id)
        if entry.reader is not None and getcurrent() is self.hub:   # hopped from a thread: no waiting
            self.wake(entry)
        elif entry.reader is not None and entry.closing is None:   # a second closer need not wait
            self.driver.before_block()
            waiter = Waiter(self.hub)
            entry.closing = waiter
            self.wake(entry)
            waiter.get()
        if self.entries.get(socket_id) is entry:
            del self.entries[socket_id]

    def shutdown_id(self, socket_id: int) -> None:
        """socket.shutdown in the hub's thread."""
        entry = self.entry(socket_id)
        self.server.shutdown(socket_id)
        if entry is not None:
            entry.connected = False
            self.wake(entry)

    def close_fd_id(self, socket_id: int) -> None:
        """socket.close_fd in the hub's thread."""
        if socket_id in self.entries:
            raise RuntimeError(f"socket {socket_id} is started here: use socket.close")
        self.forget_abandoned(socket_id)
        self.server.close(socket_id)

    def abandon_id(self, socket_id: int) -> None:
        """socket.abandon in the hub's thread."""
        entry = self.entries.pop(socket_id, None)
        if entry is None:
            return
        self.onclose.pop(socket_id, None)
        self.abandoned[socket_id] = buffer = entry.buffer
        entry.buffer = ReadBuffer()
        was_connected = entry.connected
        entry.connected = False
        self.wake(entry)
        if not was_connected:   # its CLOSE came already: no event will free it
            self._abandoned_peer_closed(socket_id)
        elif buffer.size > BUFFER_LIMIT:
            self._pause_abandoned(socket_id)

    def pause_id(self, socket_id: int) -> None:
        """socket.pause in the hub's thread."""
        entry = self.entry(socket_id)
        if entry is not None and entry.paused is None:
            entry.paused = True
            self.server.pause(socket_id)

    def limit_id(self, socket_id: int, nbytes: int) -> None:
        """socket.limit in the hub's thread."""
        entry = self.entry(socket_id)
        if entry is None:
            raise ConnectionError(f"socket {socket_id}: invalid socket")
        entry.buffer_limit = nbytes

    def warning_id(self, socket_id: int, callback: Optional[Callable[[int, int], Any]]) -> None:
        """socket.warning in the hub's thread."""
        entry = self.entry(socket_id)
        if entry is None:
            raise ConnectionError(f"socket {socket_id}: invalid socket")
        entry.on_warning = callback

    def onclose_id(self, socket_id: int, callback: Callable[[int], Any]) -> None:
        """socket.onclose in the hub's thread: stored while the id is open,
        called at once for an id that is already closed or unknown."""
        entry = self.entry(socket_id)
        if entry is not None:
            still_open = entry.connected
        else:
            still_open = socket_id not in self.abandoned and self.known_to_server(socket_id)
        if still_open:
            self.onclose[socket_id] = callback
            return
        self.onclose.pop(socket_id, None)
        try:
            callback(socket_id)
        except Exception:
            logger.exception("socket: onclose callback of %d failed", socket_id)

    def udp_entry_id(self, socket_id: int, callback: Optional[Callable[..., Any]]) -> None:
        """socket.udp_connect's part in the hub's thread, once the server
        took the destination: track the id here (a live one) and replace
        its callback when one is given."""
        entry = self.entries.get(socket_id)
        if entry is None and not self.known_to_server(socket_id):
            return
        if entry is None:
            entry = self.entries[socket_id] = Entry(socket_id, protocol="UDP")
        if callback is not None:
            entry.callback = callback


def _wait_at_most(waiter: Waiter, socket_id: int, timeout: float) -> None:
    # Apart from SocketPool.suspend: compiled, its ``with`` would make the C
    # frame of every waiting reader larger, and each waiting greenlet keeps
    # a copy of its C stack (idle memory per connection).
    with Timeout(timeout, TimeoutError(f"socket {socket_id}: timed out after {timeout} s")):
        waiter.get()


def pool_of(driver: Any) -> SocketPool:
    """The socket pool of ``driver``, made on first use."""
    pool = driver.socket_pool
    if pool is None:
        pool = driver.socket_pool = SocketPool(driver)
        forget_lookup()   # it remembered the driver without a pool
    return pool


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_socket_pool")
