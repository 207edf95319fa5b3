"""Blocking, lua-socket-style functions on socket ids (skynet's socket.lua).

Theory of operation
-------------------
Each driver has one :class:`SocketPool`, registered as an owner with the
driver. The pool keeps an entry per socket id it started: a read buffer
(:class:`gsocket.buffer.ReadBuffer`), the connection flags, and at most one
greenlet waiting to read. The dispatcher pushes DATA into the buffer and wakes
the waiting reader once what it asked for is there; everything else here runs
in the caller's greenlet and blocks only that greenlet.

Where Lua returns ``false, rest``, these functions return None and leave the
unread bytes in the buffer, so ``readall(id)`` still returns them. Nothing
that arrived is lost.

Read backpressure follows skynet: more than 128 KiB unread while no reader
waits for it pauses the socket, and the next read that has to wait resumes it.
"""

from __future__ import annotations

import builtins
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import _socket
from gevent import Timeout
from gevent.hub import Waiter
from greenlet import getcurrent

from . import driver as _driver
from .buffer import ReadBuffer
from .events import (
    SKYNET_SOCKET_TYPE_ACCEPT, SKYNET_SOCKET_TYPE_CLOSE, SKYNET_SOCKET_TYPE_CONNECT,
    SKYNET_SOCKET_TYPE_DATA, SKYNET_SOCKET_TYPE_ERROR, SKYNET_SOCKET_TYPE_UDP,
    SKYNET_SOCKET_TYPE_WARNING, SocketInfo, SocketMessage,
)
from .server import SendData

__all__ = [
    "open", "listen", "start", "address", "read", "readline", "readall", "block",
    "write", "lwrite", "close", "shutdown", "close_fd", "abandon", "invalid",
    "disconnected", "limit", "pause", "warning", "onclose", "header", "netstat",
    "resolve", "bind", "stdin", "udp", "udp_listen", "udp_dial", "udp_connect",
    "sendto", "udp_address", "nodelay", "SocketPool", "BUFFER_LIMIT",
]

logger = logging.getLogger("gsocket.socket")

#: skynet socket.lua BUFFER_LIMIT: unread bytes that pause a socket nobody reads.
BUFFER_LIMIT = 128 * 1024

# What a waiting reader wants (``entry.read_required``).
_WANT_ANY = 0          # read() / block(): any data; ints > 0: read(n)
_WANT_CLOSE = True     # readall(): wait for the close


class _Entry:
    """What the pool knows about one socket id."""

    __slots__ = (
        "id", "buffer", "connected", "connect_error", "read_required", "reader",
        "callback", "paused", "closing", "buffer_limit", "on_warning", "protocol",
        "is_listener",
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


class SocketPool:
    """The gsocket.socket state of one Driver (socket.lua's socket_pool)."""

    def __init__(self, driver: "_driver.Driver") -> None:
        self.driver = driver
        self.server = driver.server
        self.loop = driver.hub.loop
        self.hub = driver.hub
        self.entries: Dict[int, _Entry] = {}
        self.onclose: Dict[int, Callable[[int], Any]] = {}
        self.abandoned: Dict[int, ReadBuffer] = {}
        self.opaque = driver.register(self.dispatch)
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
        self.abandoned.clear()

    # ------------------------------------------------------------------ dispatch (in the dispatcher)

    def dispatch(self, kind: int, message: SocketMessage) -> None:
        self.handlers[kind](message)

    def wake(self, entry: _Entry) -> None:
        reader = entry.reader
        if reader is not None:
            entry.read_required = None
            self.loop.run_callback(reader.switch, None)

    def pause_reading(self, entry: _Entry, size: int) -> None:
        if entry.paused is None:
            logger.debug("pause socket %d: %d bytes unread", entry.id, size)
            entry.paused = True
            self.server.pause(entry.id)

    def on_data(self, message: SocketMessage) -> None:
        data: bytes = message.data  # type: ignore[assignment]  # DATA carries bytes
        entry = self.entries.get(message.id)
        if entry is None:
            buffer = self.abandoned.get(message.id)
            if buffer is not None:   # between abandon() and start(): keep it
                buffer.push(data)
                return
            # Usually data that was in flight when we closed the id.
            logger.debug("socket: drop package from %d (%d bytes)", message.id, message.ud)
            return
        size = entry.buffer.push(data)
        required = entry.read_required
        if type(required) is int:
            if size >= required:
                if size > BUFFER_LIMIT:
                    self.pause_reading(entry, size)
                self.wake(entry)
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
        elif required is not _WANT_CLOSE:   # a separator
            if entry.buffer.has_line(required):
                if size > BUFFER_LIMIT:
                    self.pause_reading(entry, size)
                self.wake(entry)
        # readall(): never pause, or the peer's close could never be seen.

    def on_connect(self, message: SocketMessage) -> None:
        entry = self.entries.get(message.id)
        if entry is not None and not entry.connected:
            entry.connected = True
            self.wake(entry)

    def on_close(self, message: SocketMessage) -> None:
        socket_id = message.id
        entry = self.entries.get(socket_id)
        if entry is None:
            if socket_id not in self.abandoned:
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
        if entry is None or entry.callback is None:
            logger.warning("socket: accept on unknown listener %d; closing %d", message.id, message.ud)
            self.server.close(message.ud)
            return
        entry.callback(message.ud, message.data)

    def on_error(self, message: SocketMessage) -> None:
        entry = self.entries.get(message.id)
        if entry is None:
            logger.warning("socket: error on unknown %d: %s", message.id, message.data)
            self.server.shutdown(message.id)
            return
        if entry.callback is not None:
            kind = "listener" if entry.is_listener else "udp socket"
            logger.warning("socket: error on %s %d: %s", kind, message.id, message.data)
            return
        if entry.connected:
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

    # ------------------------------------------------------------------ waiting (in the caller)

    def suspend(self, entry: _Entry, required: Any, timeout: Optional[float]) -> None:
        """Block the calling greenlet until the dispatcher wakes it (data,
        close, error, abandon) or ``timeout`` passes (TimeoutError)."""
        if entry.reader is not None:
            raise RuntimeError(f"socket {entry.id} is already being read by another greenlet")
        _refuse_foreign_thread(self, "read")
        if entry.paused:
            logger.debug("resume socket %d", entry.id)
            entry.paused = None
            self.server.resume(entry.id)
        self.driver.before_block()
        waiter = Waiter(self.hub)
        entry.reader = waiter
        entry.read_required = required
        try:
            if timeout is None:
                waiter.get()
            else:
                with Timeout(timeout, TimeoutError(f"socket {entry.id}: timed out after {timeout} s")):
                    waiter.get()
        finally:
            entry.reader = None
            entry.read_required = None
            closer = entry.closing
            if closer is not None:
                entry.closing = None
                self.loop.run_callback(closer.switch, None)

    def entry(self, socket_id: int) -> Optional[_Entry]:
        entry = self.entries.get(socket_id)
        if entry is None and not isinstance(socket_id, int):
            raise TypeError(f"socket id must be an int, not {type(socket_id).__name__}")
        return entry


def _pool(create: bool = False) -> SocketPool:
    """The pool of the hub's driver. Only calls that make a new socket
    (``create``) replace a freed driver; the others see a freed driver's
    empty pool, where every id is gone."""
    driver = _driver.default() if create else _driver.current()
    pool = driver.socket_pool
    if pool is None:
        pool = driver.socket_pool = SocketPool(driver)
    return pool


def _refuse_foreign_thread(pool: SocketPool, what: str) -> None:
    """Blocking calls wait on the hub of the driver's thread: from another
    OS thread they cannot, so they fail clearly instead of hanging."""
    if pool.driver.foreign_thread():
        raise RuntimeError(
            f"gsocket.socket.{what} blocks, and was called from another OS thread than the "
            "hub's: blocking gsocket calls work only in greenlets of the hub's thread "
            "(monkey-patch the process, or hand the work to the hub)")


def _hopped(pool: SocketPool, function: Callable[..., Any], *args: Any) -> bool:
    """From another OS thread, queue ``function(*args)`` for the hub's thread
    (in call order, before the hub's next close) and return True; from the
    hub's thread return False and let the caller go on."""
    if not pool.driver.foreign_thread():
        return False
    pool.driver.call_threadsafe(function, *args)
    return True


def _check_id(socket_id: Any) -> None:
    if isinstance(socket_id, bool) or not isinstance(socket_id, int):
        raise TypeError(f"socket id must be an int, not {type(socket_id).__name__}")


def _stream(socket_id: int) -> Tuple[SocketPool, Optional[_Entry]]:
    pool = _pool()
    entry = pool.entry(socket_id)
    if entry is not None:
        if entry.is_listener:
            raise ValueError(f"socket {socket_id} is a listening socket")
        if entry.reader is not None:
            # Even when the bytes are buffered: taking them would starve the
            # waiting reader (it could wake to find them gone).
            raise RuntimeError(f"socket {socket_id} is already being read by another greenlet")
    return pool, entry


def _check_timeout(timeout: Optional[float]) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")


def _split_address(host: str, port: Optional[int]) -> Tuple[str, int]:
    if port is not None:
        return host, port
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or host[end + 1:end + 2] != ":":
            raise ValueError(f"Invalid address {host!r}")
        name, port_text = host[1:end], host[end + 2:]
    else:
        name, sep, port_text = host.rpartition(":")
        if not sep:
            raise ValueError(f"Invalid address {host!r}: expected 'host:port'")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"Invalid port in address {host!r}")
    return name, int(port_text)


# ---------------------------------------------------------------------- connecting

def open(host: str, port: Optional[int] = None, *, timeout: Optional[float] = None) -> int:  # noqa: A001
    """Connect to ``host:port`` (or ``open("host:port")``) and return the id
    of a connected socket that is already reading. Blocks the calling
    greenlet until connected; raises ConnectionError/OSError on failure and
    TimeoutError after ``timeout`` seconds."""
    _check_timeout(timeout)
    host, port = _split_address(host, port)
    pool = _pool(create=True)
    if timeout is None:
        socket_id = pool.driver.block_connect(host, port, pool.opaque)
    else:
        with Timeout(timeout, TimeoutError(f"connect to {host}:{port} timed out after {timeout} s")):
            socket_id = pool.driver.block_connect(host, port, pool.opaque)
    pool.entries[socket_id] = _Entry(socket_id)
    return socket_id


def listen(host: Optional[str], port: int, backlog: int = 32) -> int:
    """Bind and listen now; return the listen id. Nothing is accepted until
    ``start(id, on_accept)``. Raises OSError if the address cannot be bound."""
    pool = _pool(create=True)
    socket_id = pool.driver.listen(host, port, backlog, pool.opaque)
    entry = _Entry(socket_id)
    entry.is_listener = True
    pool.entries[socket_id] = entry
    return socket_id


def start(socket_id: int, on_accept: Optional[Callable[[int, str], Any]] = None) -> int:
    """Listener: start accepting; ``on_accept(new_id, "host:port")`` runs in
    the dispatcher for each connection (it may block; the dispatcher hands
    over). Connection: start reading it here (also after ``abandon`` or
    ``pause``). Returns the id; raises ConnectionError if the socket is
    gone. Never blocks."""
    pool = _pool()
    server = pool.server
    slot = server._slots.get(socket_id)
    if slot is None:
        pool.entries.pop(socket_id, None)
        pool.abandoned.pop(socket_id, None)
        raise ConnectionError(f"socket {socket_id}: invalid socket")
    entry = pool.entries.get(socket_id)
    if on_accept is not None:
        if not callable(on_accept):
            raise TypeError("on_accept must be callable")
        if entry is None:
            entry = pool.entries[socket_id] = _Entry(socket_id)
            entry.is_listener = True
        entry.callback = on_accept
        server.start(socket_id, pool.opaque)
        return socket_id
    if entry is not None and entry.is_listener:
        raise ValueError(f"socket {socket_id} is a listener: start it with an on_accept callback")
    if slot.peer_closed or slot.closing:
        # Started after the peer closed: keep what was buffered, report closed.
        if entry is None:
            entry = pool.entries[socket_id] = _Entry(socket_id, buffer=pool.abandoned.pop(socket_id, None))
        entry.connected = False
        server.start(socket_id, pool.opaque)   # the owner hears the ERROR
        return socket_id
    if entry is None:
        entry = pool.entries[socket_id] = _Entry(socket_id, buffer=pool.abandoned.pop(socket_id, None))
    entry.paused = None if entry.paused is not False else False
    server.start(socket_id, pool.opaque)
    return socket_id


def address(socket_id: int) -> Optional[Tuple[str, int]]:
    """(host, port): bound address of a listener or UDP socket, peer address
    of a connection; None when the id is gone."""
    return _pool().server.address(socket_id)


# ---------------------------------------------------------------------- reading

def read(socket_id: int, n: Optional[int] = None, *, timeout: Optional[float] = None) -> Optional[bytes]:
    """``n`` bytes exactly, or with ``n`` None whatever is buffered (at least
    one byte). Blocks the calling greenlet until that much arrived. None
    when the socket closed first; the bytes that did arrive stay buffered
    (``readall`` returns them). TimeoutError after ``timeout`` seconds,
    with every byte kept."""
    pool, entry = _stream(socket_id)
    if entry is None:
        return None
    buffer = entry.buffer
    if n is None:
        if buffer:
            return buffer.readall()
        if not entry.connected:
            return None
        if timeout is not None:
            _check_timeout(timeout)
        pool.suspend(entry, _WANT_ANY, timeout)
        # entry.buffer, not ``buffer``: abandon() hands the old buffer over.
        buffer = entry.buffer
        return buffer.readall() if buffer else None
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"read size must be an int >= 0, got {n!r}")
    data = buffer.pop(n)
    if data is not None:
        return data
    if not entry.connected:
        return None
    _check_timeout(timeout)
    pool.suspend(entry, n, timeout)
    return entry.buffer.pop(n)


def readline(socket_id: int, sep: Union[bytes, str] = b"\n", *,
             timeout: Optional[float] = None) -> Optional[bytes]:
    """The next line without ``sep`` (any bytes, multi-byte too). Blocks
    the calling greenlet until a whole line arrived; None when the socket
    closed first (the partial line stays buffered)."""
    if isinstance(sep, str):
        sep = sep.encode()
    if not isinstance(sep, bytes) or not sep:
        raise ValueError("readline separator must be non-empty bytes or str")
    pool, entry = _stream(socket_id)
    if entry is None:
        return None
    line = entry.buffer.readline(sep)
    if line is not None:
        return line
    if not entry.connected:
        return None
    _check_timeout(timeout)
    pool.suspend(entry, sep, timeout)
    return entry.buffer.readline(sep)


def readall(socket_id: int, *, timeout: Optional[float] = None) -> bytes:
    """Wait until the peer closes, then return every buffered byte (b"" if
    none). Blocks the calling greenlet; never paused by read backpressure."""
    pool, entry = _stream(socket_id)
    if entry is None:
        return b""
    if entry.connected:
        _check_timeout(timeout)
        pool.suspend(entry, _WANT_CLOSE, timeout)
        while entry.connected:   # woken by something other than the close
            pool.suspend(entry, _WANT_CLOSE, timeout)
    return entry.buffer.readall()


def block(socket_id: int, *, timeout: Optional[float] = None) -> bool:
    """Wait until data is buffered or the socket closes, consuming nothing;
    True while connected (False once closed). Blocks the calling greenlet."""
    pool, entry = _stream(socket_id)
    if entry is None or not entry.connected:
        return False
    if entry.buffer:
        return True
    _check_timeout(timeout)
    pool.suspend(entry, _WANT_ANY, timeout)
    return entry.connected


# ---------------------------------------------------------------------- writing and closing

def write(socket_id: int, data: SendData) -> bool:
    """Queue ``data`` (bytes-like, str or a list of them) with high
    priority. Never blocks; False when the socket is gone or closing."""
    return _pool().server.send(socket_id, data)


def lwrite(socket_id: int, data: SendData) -> bool:
    """Like write, with low priority. Never blocks."""
    return _pool().server.send_lowpriority(socket_id, data)


def close(socket_id: int) -> None:
    """Graceful close: every byte written before reaches the peer, then
    FIN. A greenlet blocked reading this id wakes with None first. Returns
    once the socket is closed here; the id is forgotten. Ids this pool does
    not own are left alone (see close_fd)."""
    pool = _pool()
    if pool.driver.foreign_thread():
        _check_id(socket_id)
        _hopped(pool, close, socket_id)
        return
    entry = pool.entry(socket_id)
    if entry is None:
        return
    entry.paused = False
    entry.connected = False
    pool.server.close(socket_id)
    if entry.reader is not None and getcurrent() is pool.hub:   # hopped from a thread: no waiting
        pool.wake(entry)
    elif entry.reader is not None and entry.closing is None:   # a second closer need not wait
        pool.driver.before_block()
        waiter = Waiter(pool.hub)
        entry.closing = waiter
        pool.wake(entry)
        waiter.get()
    if pool.entries.get(socket_id) is entry:
        del pool.entries[socket_id]


def shutdown(socket_id: int) -> None:
    """Forceful close: drop unsent bytes and close now. A blocked reader
    wakes with None; buffered input stays readable until ``close``."""
    pool = _pool()
    if pool.driver.foreign_thread():
        _check_id(socket_id)
        _hopped(pool, shutdown, socket_id)
        return
    entry = pool.entry(socket_id)
    pool.server.shutdown(socket_id)
    if entry is not None:
        entry.connected = False
        pool.wake(entry)


def close_fd(socket_id: int) -> None:
    """Close an id this pool never started (e.g. an accepted id you reject)."""
    pool = _pool()
    if pool.driver.foreign_thread():
        _check_id(socket_id)
        _hopped(pool, close_fd, socket_id)
        return
    if socket_id in pool.entries:
        raise RuntimeError(f"socket {socket_id} is started here: use socket.close")
    pool.abandoned.pop(socket_id, None)
    pool.server.close(socket_id)


def abandon(socket_id: int) -> None:
    """Forget the id here without closing it, so that ``start(id)`` (in
    another greenlet or owner) takes it over with the bytes buffered so
    far. A greenlet blocked reading it wakes with None."""
    pool = _pool()
    if pool.driver.foreign_thread():
        _check_id(socket_id)
        _hopped(pool, abandon, socket_id)
        return
    entry = pool.entries.pop(socket_id, None)
    if entry is None:
        return
    pool.onclose.pop(socket_id, None)
    pool.abandoned[socket_id] = entry.buffer
    entry.buffer = ReadBuffer()
    entry.connected = False
    pool.wake(entry)


def pause(socket_id: int) -> None:
    """Stop reading the socket until a greenlet has to wait to read it."""
    pool = _pool()
    if pool.driver.foreign_thread():
        _check_id(socket_id)
        _hopped(pool, pause, socket_id)
        return
    entry = pool.entry(socket_id)
    if entry is not None and entry.paused is None:
        entry.paused = True
        pool.server.pause(socket_id)


def limit(socket_id: int, nbytes: int) -> None:
    """Close the socket (logged) when more than ``nbytes`` sit unread while
    no reader is waiting for a sized read that needs them."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"limit must be an int >= 0, got {nbytes!r}")
    entry = _pool().entry(socket_id)
    if entry is None:
        raise ConnectionError(f"socket {socket_id}: invalid socket")
    entry.buffer_limit = nbytes


def invalid(socket_id: int) -> bool:
    """True when this id is not a socket of the pool (closed or unknown)."""
    return _pool().entry(socket_id) is None


def disconnected(socket_id: int) -> Optional[bool]:
    """True once the socket closed or failed (it may still hold unread
    bytes); None for an unknown id."""
    entry = _pool().entry(socket_id)
    if entry is None:
        return None
    return not entry.connected


def warning(socket_id: int, callback: Optional[Callable[[int, int], Any]]) -> None:
    """Call ``callback(id, kib)`` on SOCKET_WARNING (kib = 0: drained)
    instead of logging it. Runs in the dispatcher."""
    entry = _pool().entry(socket_id)
    if entry is None:
        raise ConnectionError(f"socket {socket_id}: invalid socket")
    entry.on_warning = callback


def onclose(socket_id: int, callback: Callable[[int], Any]) -> None:
    """Call ``callback(id)`` once when the socket closes, whoever closed it.
    Runs in the dispatcher."""
    if not callable(callback):
        raise TypeError("onclose callback must be callable")
    _pool().onclose[socket_id] = callback


def nodelay(socket_id: int) -> None:
    """Set TCP_NODELAY. Never blocks."""
    _pool().server.nodelay(socket_id)


# ---------------------------------------------------------------------- misc

def header(data: bytes) -> int:
    """The big-endian unsigned int in 1..4 bytes (netpack headers)."""
    if isinstance(data, str):
        data = data.encode("latin-1")
    if not isinstance(data, (bytes, bytearray, memoryview)) or not 1 <= len(data) <= 4:
        raise ValueError("Invalid read: header needs 1 to 4 bytes")
    return int.from_bytes(data, "big")


def netstat() -> List[SocketInfo]:
    """One SocketInfo row per live socket of the default driver."""
    return _pool().server.info()


def resolve(host: str) -> List[str]:
    """The IP addresses of ``host`` (blocks only the calling greenlet)."""
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    pool = _pool()
    _refuse_foreign_thread(pool, "resolve")
    pool.driver.before_block()
    infos = pool.hub.resolver.getaddrinfo(host, None, 0, _socket.SOCK_STREAM)
    result: List[str] = []
    for info in infos:
        if info[4][0] not in result:
            result.append(info[4][0])
    return result


def bind(fd: int) -> int:
    """Wrap an OS fd (a pipe, stdin) as a socket id that is already reading."""
    pool = _pool(create=True)
    socket_id = pool.driver.bind(fd, pool.opaque)
    pool.entries[socket_id] = _Entry(socket_id, protocol="BIND")
    return socket_id


def stdin() -> int:
    """bind(0)."""
    return bind(0)


# ---------------------------------------------------------------------- UDP

UdpCallback = Callable[[bytes, Tuple[str, int]], Any]


def _udp_entry(pool: SocketPool, socket_id: int, callback: Optional[UdpCallback]) -> int:
    entry = _Entry(socket_id, protocol="UDP")
    entry.callback = callback
    pool.entries[socket_id] = entry
    return socket_id


def _check_udp_callback(callback: Any) -> None:
    if callback is not None and not callable(callback):
        raise TypeError("udp callback must be callable")


def udp(callback: Optional[UdpCallback], host: Optional[str] = None, port: int = 0) -> int:
    """A UDP socket (bound when host/port given); ``callback(data, (host,
    port))`` runs in the dispatcher for each datagram."""
    _check_udp_callback(callback)
    pool = _pool(create=True)
    return _udp_entry(pool, pool.driver.udp(host, port, pool.opaque), callback)


def udp_listen(host: str, port: int, callback: Optional[UdpCallback]) -> int:
    """A UDP socket bound to (host, port), IPv4 or IPv6 by the host."""
    _check_udp_callback(callback)
    pool = _pool(create=True)
    return _udp_entry(pool, pool.driver.udp_listen(host, port, pool.opaque), callback)


def udp_dial(host: str, port: int, callback: Optional[UdpCallback]) -> int:
    """A UDP socket whose default destination is (host, port)."""
    _check_udp_callback(callback)
    pool = _pool(create=True)
    return _udp_entry(pool, pool.driver.udp_dial(host, port, pool.opaque), callback)


def udp_connect(socket_id: int, host: str, port: int, callback: Optional[UdpCallback] = None) -> None:
    """Set the default destination of a UDP socket (``write`` sends there);
    replaces the callback when one is given."""
    _check_udp_callback(callback)
    pool = _pool()
    pool.driver.udp_connect(socket_id, host, port)
    entry = pool.entries.get(socket_id)
    if entry is None:
        entry = pool.entries[socket_id] = _Entry(socket_id, protocol="UDP")
    if callback is not None:
        entry.callback = callback


def sendto(socket_id: int, address: Tuple[str, int], data: SendData) -> bool:
    """Send one datagram to ``address`` (as given to a udp callback).
    Never blocks; False when it cannot be sent."""
    return _pool().server.udp_send(socket_id, address, data)


def udp_address(address: Any) -> Tuple[str, int]:
    """(host, port) of an address a udp callback received."""
    if (isinstance(address, tuple) and len(address) >= 2 and isinstance(address[0], str)
            and isinstance(address[1], int)):
        return (address[0], address[1])
    raise ValueError(f"Invalid udp address {address!r}")


# The module shadows the builtin on purpose (lua-socket's name); keep it reachable.
_builtin_open = builtins.open
