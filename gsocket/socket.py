"""Blocking, lua-socket-style functions on socket ids (skynet's socket.lua).

Theory of operation
-------------------
Each driver has one :class:`~gsocket._socket_pool.SocketPool`, registered
as an owner with the driver (see that module). The functions here check
their arguments, find the pool and call it; they run in the caller's
greenlet and block only that greenlet.

Calls from another OS thread (a real thread of an unpatched legacy app) go
to the one live driver of the hub's thread: the non-blocking ones hop onto
the hub in call order (bad arguments raise in the calling thread, errors
only the hub can know are logged); the blocking ones (read, readline,
readall, block, open, resolve) and the ones that make a socket raise
RuntimeError there.

Where Lua returns ``false, rest``, these functions return None and leave the
unread bytes in the buffer, so ``readall(id)`` still returns them. Nothing
that arrived is lost.

Read backpressure follows skynet: more than 128 KiB unread while no reader
waits for it pauses the socket, and the next read that has to wait resumes it.
"""

from __future__ import annotations

import builtins
import logging
from typing import Any, Callable, List, Optional, Tuple, Union

import _socket
from gevent import Timeout

from . import _flow
from . import _socket_lookup
from ._socket_lookup import (
    _check_callback, _check_id, _check_timeout, _pool, _refuse_foreign_thread, _server, _stream,
)
from ._socket_pool import BUFFER_LIMIT, WANT_ANY, WANT_CLOSE, Entry, SocketPool
from ._arguments import check_limits, split_address
from ._slot import CLOSED
from .events import SocketInfo
from .server import SendData

__all__ = [
    "open", "listen", "start", "address", "read", "readline", "readall", "block",
    "write", "lwrite", "close", "shutdown", "close_fd", "abandon", "invalid",
    "disconnected", "limit", "pause", "warning", "onclose", "header", "netstat",
    "resolve", "bind", "stdin", "udp", "udp_listen", "udp_dial", "udp_connect",
    "sendto", "udp_address", "nodelay", "SocketPool", "BUFFER_LIMIT",
    "stop", "shutdown_write", "drain",
]

logger = logging.getLogger("gsocket.socket")

# Compiled, ``_hub_pool`` and ``_get_ident`` (the unpatched get_ident) are
# the C functions the .pxd cimports from gsocket._c_socket_lookup, which an
# import statement could not bind; pure, these are the plain imports.
locals()["_hub_pool"] = _socket_lookup._hub_pool
locals()["_get_ident"] = _socket_lookup._get_ident


# ---------------------------------------------------------------------- connecting

def open(host: str, port: Optional[int] = None, *, timeout: Optional[float] = None,  # noqa: A001
         ssl_context: Any = None, server_hostname: Optional[str] = None) -> int:
    """Connect to ``host:port`` (or ``"host:port"``, ``"unix:/path"``); return the
    id of a connected socket that is already reading (with ``ssl_context``, an
    ``ssl.SSLContext``: once the TLS handshake is done; ``server_hostname``, by
    default ``host``, is for SNI and the certificate check). Blocks the calling
    greenlet; raises ConnectionError/OSError (ssl.SSLError: handshake), TimeoutError."""
    _check_timeout(timeout)
    host, port = split_address(host, port)
    pool = _pool(create=True)
    _refuse_foreign_thread(pool, "open")
    tls = {"ssl_context": ssl_context, "server_hostname": server_hostname}
    if timeout is None:
        socket_id = pool.driver.block_connect(host, port, pool.opaque, **tls)
    else:
        with Timeout(timeout, TimeoutError(f"connect to {host}:{port} timed out after {timeout} s")):
            socket_id = pool.driver.block_connect(host, port, pool.opaque, **tls)
    pool.entries[socket_id] = Entry(socket_id)
    return socket_id


def listen(host: Optional[str], port: Optional[int] = None, backlog: int = 32, *,
           ssl_context: Any = None, reuseport: bool = False) -> int:
    """Bind and listen now; return the listen id. Nothing is accepted until
    ``start(id, on_accept)``. ``host`` ``"unix:/path"`` (no port) listens on
    a unix socket. ``reuseport=True`` sets SO_REUSEPORT, so that several
    processes serve one port; ``ssl_context`` makes accepted connections TLS
    (handshake on start, bytes after it). OSError if unbound. Never blocks."""
    if port is None and not (isinstance(host, str) and host.startswith("unix:")):
        host, port = split_address(host, None)
    pool = _pool(create=True)
    socket_id = pool.driver.listen(host, port, backlog, pool.opaque, reuseport=bool(reuseport),
                                   ssl_context=ssl_context)
    entry = Entry(socket_id)
    entry.is_listener = True
    pool.entries[socket_id] = entry
    return socket_id


def start(socket_id: int, on_accept: Optional[Callable[[int, str], Any]] = None, *,
          max_connections: Optional[int] = None, idle_timeout: Optional[float] = None) -> int:
    """Listener: start accepting; ``on_accept(new_id, "host:port")`` runs in
    the dispatcher for each connection (it may block; the dispatcher hands
    over). ``max_connections=N``: while N connections accepted through it
    are alive, accepting pauses (peers wait in the kernel's backlog);
    ``idle_timeout=S``: a connection that receives nothing for S seconds is
    closed (its reader gets None). Connection: start reading it here (also
    after ``abandon`` or ``pause``). Returns the id; raises ConnectionError
    if the socket is gone (called from another OS thread: it hops onto the
    hub, and an id found gone there is logged). Never blocks."""
    _check_id(socket_id)
    if on_accept is not None and not callable(on_accept):
        raise TypeError("on_accept must be callable")
    if max_connections is not None or idle_timeout is not None:
        if on_accept is None:
            raise ValueError("max_connections and idle_timeout are for listeners (with on_accept)")
        check_limits(max_connections, idle_timeout)
    pool = _pool()
    if on_accept is None and _get_ident() == pool.thread_ident:  # noqa: F821
        return pool.start_id(socket_id, None)   # a connection: every accept's path
    if pool.driver.foreign_thread():   # what only the hub knows is logged there
        pool.driver.call_threadsafe(_start_in_hub, pool, socket_id, on_accept, max_connections,
                                    idle_timeout)
        return socket_id
    return _start_in_hub(pool, socket_id, on_accept, max_connections, idle_timeout)


def _start_in_hub(pool: SocketPool, socket_id: int, on_accept: Any, max_connections: Optional[int],
                  idle_timeout: Optional[float]) -> int:
    if on_accept is not None and pool.known_to_server(socket_id):
        # Every listener keeps its connections, so that stop() knows them.
        pool.server.limit_accept(socket_id, max_connections, idle_timeout)
    return pool.start_id(socket_id, on_accept)


def stop(listen_id: int, grace: float = 10.0) -> Tuple[int, int]:
    """Stop accepting at once (the port is released), then wait up to
    ``grace`` seconds for every connection accepted through ``listen_id``
    to be closed by its handler (what they wrote is flushed); shut the rest
    down. Returns (closed by their handlers, closed by force). Blocks the
    calling greenlet at most ``grace`` seconds (plus a poll interval);
    ConnectionError for an unknown id, ValueError for a non-listener."""
    _check_id(listen_id)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        raise ValueError(f"grace must be a number of seconds >= 0, got {grace!r}")
    pool = _pool()
    _refuse_foreign_thread(pool, "stop")
    return _flow.stop(pool, listen_id, float(grace))


def shutdown_write(socket_id: int) -> None:
    """Half-close: no more writes (``write`` returns False), the FIN goes
    out after every queued byte, and reading goes on until the peer
    closes. Unknown ids are ignored. Never blocks; works from any thread."""
    _check_id(socket_id)
    _pool().server.shutdown_write(socket_id)


def drain(socket_id: int, *, below: int = 65536, timeout: Optional[float] = None) -> bool:
    """Write backpressure: wait until at most ``below`` bytes are queued for
    the peer. Returns True then (at once if so already), False if the
    socket is closed or closes first; TimeoutError after ``timeout``
    seconds, with nothing dropped. Blocks only the calling greenlet."""
    if type(socket_id) is not int:
        _check_id(socket_id)
    if type(below) is not int or below < 0:
        raise ValueError(f"below must be an int >= 0, got {below!r}")
    if timeout is not None:
        _check_timeout(timeout)
    stream = _stream_of(socket_id)
    if stream is not None:
        if stream.pending_bytes <= below:              # the common case: at once
            return True
    else:
        pending = _server().pending_bytes(socket_id)   # TypeError for a non-int id
        if pending is None:
            return False
        if pending <= below:
            return True
    pool = _pool()
    _refuse_foreign_thread(pool, "drain")
    return _flow.drain(pool, socket_id, below, timeout)


def address(socket_id: int) -> Optional[Tuple[str, int]]:
    """(host, port): bound address of a listener or UDP socket, peer address
    of a connection; None when the id is gone. Never blocks."""
    return _pool().server.address(socket_id)


# ---------------------------------------------------------------------- reading

def read(socket_id: int, n: Optional[int] = None, *, timeout: Optional[float] = None) -> Optional[bytes]:
    """``n`` bytes exactly, or with ``n`` None whatever is buffered (at least
    one byte). Blocks the calling greenlet until that much arrived. None
    when the socket closed first; the bytes that did arrive stay buffered
    (``readall`` returns them). TimeoutError after ``timeout`` seconds,
    with every byte kept."""
    # _stream(socket_id, "read") inlined for its common case: every read's path.
    pool = _hub_pool()  # noqa: F821
    entry = pool.entries.get(socket_id) if pool is not None else None
    if (entry is None or entry.reader is not None or entry.is_listener
            or _get_ident() != pool.thread_ident):   # type: ignore[union-attr]  # noqa: F821
        pool, entry = _stream(socket_id, "read")
        if entry is None:
            return None
    buffer = entry.buffer
    if n is None:
        data = buffer.readall()
        if data:
            return data
        if not entry.connected:
            return None
        if timeout is not None:
            _check_timeout(timeout)
        pool.suspend(entry, WANT_ANY, timeout)
        # entry.buffer, not ``buffer``: abandon() hands the old buffer over.
        return entry.buffer.readall() or None
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
    pool, entry = _stream(socket_id, "readline")
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
    pool, entry = _stream(socket_id, "readall")
    if entry is None:
        return b""
    if entry.connected:
        _check_timeout(timeout)
        pool.suspend(entry, WANT_CLOSE, timeout)
        while entry.connected:   # woken by something other than the close
            pool.suspend(entry, WANT_CLOSE, timeout)
    return entry.buffer.readall()


def block(socket_id: int, *, timeout: Optional[float] = None) -> bool:
    """Wait until data is buffered or the socket closes, consuming nothing;
    True while connected (False once closed). Blocks the calling greenlet."""
    pool, entry = _stream(socket_id, "block")
    if entry is None or not entry.connected:
        return False
    if entry.buffer:
        return True
    _check_timeout(timeout)
    pool.suspend(entry, WANT_ANY, timeout)
    return entry.connected


# ---------------------------------------------------------------------- writing and closing

def write(socket_id: int, data: SendData) -> bool:
    """Queue ``data`` (bytes-like, str or a list of them) with high
    priority. Never blocks; False when the socket is gone or closing."""
    if type(socket_id) is not int:
        _check_id(socket_id)
    if type(data) is bytes:
        stream = _stream_of(socket_id)
        if stream is not None:
            return stream.send(data, False)   # what server.send does, without its lookups
    return _server().send(socket_id, data)


def _stream_of(socket_id: int) -> Any:
    """The server's stream of a live id this greenlet's pool started
    (SocketServer.stream, kept in its entry), or None: then the server's
    operation runs. Every write's and drain's path."""
    pool = _hub_pool()  # noqa: F821
    if pool is None or _get_ident() != pool.thread_ident:  # noqa: F821
        return None
    entry = pool.entries.get(socket_id)
    if entry is None:
        return None
    stream = entry.stream
    if stream is None:
        if entry.protocol == "UDP":   # never a stream: no lookup on every write
            return None
        stream = entry.stream = pool.server.stream(socket_id)
        if stream is None:
            return None
    if stream.state is CLOSED:   # the id is gone (or, much later, another socket's)
        return None
    return stream


def lwrite(socket_id: int, data: SendData) -> bool:
    """Like write, with low priority: return False when the socket is gone
    or closing. Never blocks."""
    if type(socket_id) is not int:
        _check_id(socket_id)
    return _pool().server.send_lowpriority(socket_id, data)


def close(socket_id: int) -> None:
    """Graceful close: every byte written before reaches the peer, then
    FIN. A greenlet blocked reading this id wakes with None first. Returns
    once the socket is closed here; the id is forgotten. Ids this pool does
    not own are left alone (see close_fd)."""
    _check_id(socket_id)
    pool = _pool()
    if pool.driver.foreign_thread():
        pool.driver.call_threadsafe(pool.close_id, socket_id)
        return
    pool.close_id(socket_id)


def shutdown(socket_id: int) -> None:
    """Forceful close: drop unsent bytes and close now. A blocked reader
    wakes with None; buffered input stays readable until ``close``."""
    _check_id(socket_id)
    pool = _pool()
    if pool.driver.foreign_thread():
        pool.driver.call_threadsafe(pool.shutdown_id, socket_id)
        return
    pool.shutdown_id(socket_id)


def close_fd(socket_id: int) -> None:
    """Close an id this pool never started (e.g. an accepted id you
    reject). Returns None; never blocks."""
    _check_id(socket_id)
    pool = _pool()
    if pool.driver.foreign_thread():
        pool.driver.call_threadsafe(pool.close_fd_id, socket_id)
        return
    pool.close_fd_id(socket_id)


def abandon(socket_id: int) -> None:
    """Forget the id here without closing it, so that ``start(id)`` (in
    another greenlet or owner) takes it over with the bytes buffered so
    far. A greenlet blocked reading it wakes with None."""
    _check_id(socket_id)
    pool = _pool()
    if pool.driver.foreign_thread():
        pool.driver.call_threadsafe(pool.abandon_id, socket_id)
        return
    pool.abandon_id(socket_id)


def pause(socket_id: int) -> None:
    """Stop reading the socket until a greenlet has to wait to read it.
    Returns None; never blocks."""
    _check_id(socket_id)
    pool = _pool()
    if pool.driver.foreign_thread():
        pool.driver.call_threadsafe(pool.pause_id, socket_id)
        return
    pool.pause_id(socket_id)


def limit(socket_id: int, nbytes: int) -> None:
    """Close the socket (logged) when more than ``nbytes`` sit unread while
    no reader is waiting for a sized read that needs them. Returns None;
    never blocks."""
    _check_id(socket_id)
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"limit must be an int >= 0, got {nbytes!r}")
    pool = _pool()
    if pool.driver.foreign_thread():
        pool.driver.call_threadsafe(pool.limit_id, socket_id, nbytes)
        return
    pool.limit_id(socket_id, nbytes)


def invalid(socket_id: int) -> bool:
    """True when this id is not a socket of the pool (closed or unknown).
    Never blocks."""
    return _pool().entry(socket_id) is None


def disconnected(socket_id: int) -> bool:
    """True once the socket closed or failed (it may still hold unread
    bytes), and for an id this pool does not know; False while connected.
    Never blocks."""
    entry = _pool().entry(socket_id)
    return entry is None or not entry.connected


def warning(socket_id: int, callback: Optional[Callable[[int, int], Any]]) -> None:
    """Call ``callback(id, kib)`` on SOCKET_WARNING (kib = 0: drained)
    instead of logging it. Runs in the dispatcher. Returns None; never
    blocks."""
    _check_id(socket_id)
    _check_callback(callback, "warning callback", optional=True)
    pool = _pool()
    if pool.driver.foreign_thread():
        pool.driver.call_threadsafe(pool.warning_id, socket_id, callback)
        return
    pool.warning_id(socket_id, callback)


def onclose(socket_id: int, callback: Callable[[int], Any]) -> None:
    """Call ``callback(id)`` once when the socket closes, whoever closed it.
    Runs in the dispatcher; for an id that is already closed or unknown
    it runs at once, here. Returns None; blocks only as long as that call
    does."""
    _check_id(socket_id)
    _check_callback(callback, "onclose callback")
    pool = _pool()
    if pool.driver.foreign_thread():
        pool.driver.call_threadsafe(pool.onclose_id, socket_id, callback)
        return
    pool.onclose_id(socket_id, callback)


def nodelay(socket_id: int) -> None:
    """Set TCP_NODELAY on a TCP socket (others are ignored). Returns None;
    never blocks."""
    _check_id(socket_id)
    _pool().server.nodelay(socket_id)


# ---------------------------------------------------------------------- misc

def header(data: bytes) -> int:
    """The big-endian unsigned int in 1..4 bytes (netpack headers);
    ValueError otherwise. Never blocks."""
    if isinstance(data, str):
        data = data.encode("latin-1")
    if not isinstance(data, (bytes, bytearray, memoryview)) or not 1 <= len(data) <= 4:
        raise ValueError("Invalid read: header needs 1 to 4 bytes")
    return int.from_bytes(data, "big")


def netstat() -> List[SocketInfo]:
    """One SocketInfo row per live socket of the default driver. Never
    blocks."""
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
    """Wrap an OS fd (a pipe, stdin) and return a socket id that is
    already reading. Never blocks."""
    pool = _pool(create=True)
    socket_id = pool.driver.bind(fd, pool.opaque)
    pool.entries[socket_id] = Entry(socket_id, protocol="BIND")
    return socket_id


def stdin() -> int:
    """bind(0): return the id of stdin, already reading. Never blocks."""
    return bind(0)


# ---------------------------------------------------------------------- UDP

UdpCallback = Callable[[bytes, Tuple[str, int]], Any]


def _udp_entry(pool: SocketPool, socket_id: int, callback: Optional[UdpCallback]) -> int:
    entry = Entry(socket_id, protocol="UDP")
    entry.callback = callback
    pool.entries[socket_id] = entry
    return socket_id


def _check_udp_callback(callback: Any) -> None:
    if callback is not None and not callable(callback):
        raise TypeError("udp callback must be callable")


def udp(callback: Optional[UdpCallback], host: Optional[str] = None, port: int = 0) -> int:
    """A UDP socket (bound when host/port given); ``callback(data, (host,
    port))`` runs in the dispatcher for each datagram. Returns the id;
    blocks only to resolve a host name."""
    _check_udp_callback(callback)
    pool = _pool(create=True)
    return _udp_entry(pool, pool.driver.udp(host, port, pool.opaque), callback)


def udp_listen(host: str, port: int, callback: Optional[UdpCallback]) -> int:
    """A UDP socket bound to (host, port), IPv4 or IPv6 by the host;
    returns the id. Blocks only to resolve a host name."""
    _check_udp_callback(callback)
    pool = _pool(create=True)
    return _udp_entry(pool, pool.driver.udp_listen(host, port, pool.opaque), callback)


def udp_dial(host: str, port: int, callback: Optional[UdpCallback]) -> int:
    """A UDP socket whose default destination is (host, port); returns
    the id. Blocks only to resolve a host name."""
    _check_udp_callback(callback)
    pool = _pool(create=True)
    return _udp_entry(pool, pool.driver.udp_dial(host, port, pool.opaque), callback)


def udp_connect(socket_id: int, host: str, port: int, callback: Optional[UdpCallback] = None) -> None:
    """Set the default destination of a UDP socket (``write`` sends there);
    replaces the callback when one is given. Returns None; blocks only
    to resolve a host name (in the calling greenlet or thread)."""
    _check_id(socket_id)
    _check_udp_callback(callback)
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, not {type(port).__name__}")
    pool = _pool()
    # Checked and resolved here, in the caller: from another OS thread the
    # server hops only the resolved destination onto the hub.
    pool.driver.udp_connect(socket_id, host, port)
    if pool.driver.foreign_thread():
        pool.driver.call_threadsafe(pool.udp_entry_id, socket_id, callback)
        return
    pool.udp_entry_id(socket_id, callback)


def sendto(socket_id: int, address: Tuple[str, int], data: SendData) -> bool:
    """Send one datagram to ``address`` (as given to a udp callback).
    Never blocks; False when it cannot be sent."""
    _check_id(socket_id)
    return _pool().server.udp_send(socket_id, address, data)


def udp_address(address: Any) -> Tuple[str, int]:
    """(host, port) of an address a udp callback received; ValueError for
    anything else. Never blocks."""
    if (isinstance(address, tuple) and len(address) >= 2 and isinstance(address[0], str)
            and isinstance(address[1], int)):
        return (address[0], address[1])
    raise ValueError(f"Invalid udp address {address!r}")


# The module shadows the builtin on purpose (lua-socket's name); keep it reachable.
_builtin_open = builtins.open


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_socket")
