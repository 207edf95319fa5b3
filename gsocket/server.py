"""SocketServer: skynet's socket_server on gevent.

Theory of operation
-------------------
Every operation of skynet's socket_server has a method here, and every
result is a :class:`~gsocket.events.SocketMessage` in one FIFO event channel
that :meth:`SocketServer.poll` pops. Each socket lives in a slot
(:mod:`gsocket._slot`) whose reader and writer are libev watchers on this
thread's gevent hub. skynet needs a command pipe to reach its socket thread;
here every operation runs directly in the caller's greenlet (the hub is in the
same thread), so operations take effect before they return, and events are
only ever *reported* through the channel. Calls from another OS thread hop
onto the loop with ``run_callback_threadsafe``.

Ids are small positive ints from a counter that is not reused until it wraps
at 2**31, so a stale id never reaches a newer socket (skynet's 16-bit tag).
"""

from __future__ import annotations

import errno
import os
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import _socket
import gevent
from gevent import get_hub
from gevent.monkey import get_original

from ._arguments import (
    check_host, check_id, check_opaque, check_port, frozen, normalize, required_host,
)
from ._connecting import ConnectingSlot, open_stream
from ._event_channel import EventChannel
from ._listener import ListenerSlot, ReserveFd
from ._netutil import format_address, logger
from ._slot import CLOSED, CLOSING, PROTOCOL_TCP, Slot, SlotHost
from ._stream import BoundSlot
from ._foreign_calls import RELEASED, ForeignCalls
from ._flow_ops import FlowOperations
from ._udp_ops import UdpOperations
from . import _unix
from .events import (
    SOCKET_ACCEPT, SOCKET_CLOSE, SOCKET_DATA, SOCKET_ERR, SOCKET_ERROR, SOCKET_EXIT,
    SOCKET_OPEN, SOCKET_UDP, SOCKET_WARNING, SendData, SocketInfo, SocketMessage,
)

__all__ = [
    "SocketServer", "SocketMessage", "SocketInfo", "SendData", "MAX_SOCKET",
    "SOCKET_DATA", "SOCKET_CLOSE", "SOCKET_OPEN", "SOCKET_ACCEPT", "SOCKET_ERROR",
    "SOCKET_ERR", "SOCKET_EXIT", "SOCKET_UDP", "SOCKET_WARNING",
]

#: skynet socket_server.c MAX_SOCKET: live sockets at most.
MAX_SOCKET = 65536
#: Seconds a call from another OS thread waits for the hub to answer it.
FOREIGN_CALL_TIMEOUT = 60.0
#: Bytes release() reads from each socket's receive queue before closing
#: (one recv): bounded work per socket, however many sockets there are.
DRAIN_ON_RELEASE = 64 * 1024

_get_ident: Callable[[], int] = get_original("_thread", "get_ident")
_NUMERIC = _socket.AI_NUMERICHOST | _socket.AI_NUMERICSERV


def _check_tls(ssl_context: Any, server_hostname: Any) -> None:
    """Check the TLS keywords. ``ssl`` is imported only when TLS is used,
    so that importing gsocket leaves it to be monkey-patched first."""
    if ssl_context is not None or server_hostname is not None:
        from ._tls import check_tls_arguments
        check_tls_arguments(ssl_context, server_hostname)


class SocketServer(FlowOperations, UdpOperations):
    """The socket server of one gevent hub (skynet's ``socket_server``).

    Create it in the thread whose hub it will use. Every method except
    :meth:`poll` and :meth:`block_connect` returns without blocking the
    calling greenlet (listen, udp* and connect may wait for a host name to
    resolve); from another OS thread, a call that returns an answer waits
    for the hub to give it.
    """

    def __init__(self, max_sockets: int = MAX_SOCKET) -> None:
        if not isinstance(max_sockets, int) or max_sockets < 1:
            raise ValueError("max_sockets must be a positive int")
        self._hub = get_hub()
        self._loop = self._hub.loop
        self._thread_ident = _get_ident()
        self._channel = EventChannel(self._hub)
        # What the slots see of this server: loop, event push, id table.
        self._host = SlotHost(self._loop, self._channel, max_sockets)
        self._slots = self._host.slots
        # The hot path (every reader wake-up) skips the method's extra call.
        self.call_soon = self._host.call_soon
        self._released = False
        self._connectors: Set[gevent.Greenlet] = set()
        # Greenlets waiting in block_connect: release() wakes them.
        self._block_connecting: Set[Any] = set()
        self._reserve = ReserveFd()
        # Calls made from other OS threads, run in order in the hub's thread.
        self._foreign = ForeignCalls(self._loop, self._connectors)

    # ------------------------------------------------------------------ lifecycle

    def release(self) -> None:
        """Force-close every socket (queued bytes are dropped; bound fds are
        left open, their blocking flag given back) and stop everything this
        server started. Bounded work per socket. Later poll() calls return
        SOCKET_EXIT at once. Returns None; never blocks (from another OS
        thread it waits for the hub to do it)."""
        if _get_ident() != self._thread_ident:   # from another OS thread
            if not self._released:
                self._in_hub(self.release)
            return
        if self._released:
            return
        self._released = self._host.released = self._foreign.released = True
        for connector in list(self._connectors):
            connector.kill(block=False)
        for waiting in list(self._block_connecting):
            gevent.kill(waiting, ConnectionError("socket server released while connecting"))
        for slot in list(self._slots.values()):
            slot.force_close(report=False, drain=DRAIN_ON_RELEASE)
        self._slots.clear()
        self._channel.close(SocketMessage(SOCKET_EXIT, 0, 0, 0, None))
        self._foreign.release()
        self._reserve.close()
        # Let killed connector greenlets unwind now, so none outlives release.
        for connector in list(self._connectors):
            if not connector.dead and gevent.getcurrent() is not self._hub:
                connector.join(timeout=1)

    def poll(self, timeout: Optional[float] = None) -> Optional[SocketMessage]:
        """Return the next event, blocking the calling greenlet until one is
        ready; None only when ``timeout`` seconds passed first. After
        release() it returns SOCKET_EXIT at once. Only the hub's thread may
        poll (RuntimeError from another OS thread)."""
        if _get_ident() != self._thread_ident:   # from another OS thread
            raise RuntimeError("poll() must run in the thread of the SocketServer's hub")
        return self._channel.pop(timeout)

    def exit(self) -> None:
        """Queue a SOCKET_EXIT event (for the loop that polls this server).
        Returns None; never blocks."""
        if _get_ident() != self._thread_ident:   # from another OS thread
            self.call_threadsafe(self.exit)
            return
        self._channel.push(SocketMessage(SOCKET_EXIT, 0, 0, 0, None))

    @property
    def pending_events(self) -> int:
        """Number of events queued and not yet polled. Never blocks."""
        return len(self._channel)

    def set_stall_hook(self, hook: Optional[Callable[[], None]]) -> None:
        """Have ``hook()`` called, from the hub, when events wait while
        nobody polls (the greenlet that should poll is blocked elsewhere,
        say inside an owner callback); None removes it. At most one check
        per loop turn, and none while the poller waits and events arrive
        one by one. ``hook`` must not block. Returns None; never blocks."""
        self._channel.on_stall = hook

    def set_direct(self, poller: Any, handlers: Optional[Dict[int, Callable[[int, bytes], None]]]) -> None:
        """While the greenlet ``poller`` waits in poll() with no event
        queued, the bytes of a DATA event whose opaque is in ``handlers``
        go to ``handlers[opaque](socket_id, data)`` at once, in the greenlet
        that read them (the hub), and no event is queued (poll never sees
        it). A handler must not block; what it raises is logged. The dict is
        read at each event, so entries may come and go. ``poller`` None
        turns it off. Returns None; never blocks."""
        self._channel.set_direct(poller, handlers)

    def call_soon(self, function: Callable[[Any], Any], argument: Any) -> None:
        """Run ``function(argument)`` in the hub soon, never now: right after
        the socket read callback that is running, when called from inside
        one (a direct hook waking a reader: it runs without another loop
        turn), else from the next loop callback. Hub's thread only; never
        blocks."""
        self._host.call_soon(function, argument)

    # ------------------------------------------------------------------ ids

    def _live(self, socket_id: Any) -> Optional[Slot]:
        slot = self._slots.get(socket_id)
        if slot is None and not isinstance(socket_id, int):
            raise TypeError(f"socket id must be an int, not {type(socket_id).__name__}")
        return slot

    def exists(self, socket_id: int) -> bool:
        """True while ``socket_id`` is a live id of any kind (closed ids and
        ids never made: False). Never blocks."""
        return socket_id in self._slots

    def _other_thread(self) -> bool:
        return _get_ident() != self._thread_ident

    # ------------------------------------------------------------------ address helpers

    def _resolve(self, host: Optional[str], port: int, socktype: int,
                 passive: bool = False) -> List[Tuple[Any, ...]]:
        """getaddrinfo without touching DNS for numeric hosts; names go
        through gevent's resolver (blocks only the calling greenlet)."""
        path = _unix.unix_path(host)
        if path is not None:
            return _unix.address_info(path, socktype)
        flags = _socket.AI_PASSIVE if passive else 0
        if host is None:
            host = "0.0.0.0" if passive else "127.0.0.1"
        try:
            return _socket.getaddrinfo(host, port, 0, socktype, 0, flags | _NUMERIC)
        except _socket.gaierror:
            pass
        if _get_ident() != self._thread_ident:   # a real thread may block: resolve right here
            return _socket.getaddrinfo(host, port, 0, socktype, 0, flags)
        return self._hub.resolver.getaddrinfo(host, port, 0, socktype, 0, flags)

    # ------------------------------------------------------------------ TCP: listen / accept

    def listen(self, host: Optional[str], port: Optional[int], backlog: int = 32, opaque: int = 0,
               reuseport: bool = False, *, ssl_context: Any = None) -> int:
        """Bind and listen now; return the listen id. Raises OSError when the
        address cannot be bound. ACCEPT events start only after start(id).
        ``host`` ``"unix:/path"`` (port None) listens on a unix socket: a
        stale file is replaced, one held by a live listener is OSError, and
        the file is removed when the listener closes. With ``ssl_context``
        every accepted connection is TLS (handshake on start, before OPEN).
        Blocks only to resolve a host name."""
        host = check_host(host)
        unix_path = _unix.unix_path(host)
        port = 0 if unix_path is not None and port is None else check_port(port)
        opaque = check_opaque(opaque)
        _check_tls(ssl_context, None)
        if not isinstance(backlog, int) or backlog < 1:
            raise ValueError("backlog must be a positive int")
        if _get_ident() != self._thread_ident:   # from another OS thread
            return self._in_hub(partial(self.listen, ssl_context=ssl_context), host, port,
                                backlog, opaque, reuseport, blocking=True)
        family, socktype, proto, _, sockaddr = self._resolve(host, port, _socket.SOCK_STREAM, True)[0]
        sock = _socket.socket(family, socktype, proto)
        unix_file = None
        try:
            if unix_path is not None:
                unix_file = (unix_path, _unix.bind(sock, unix_path))
            else:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
                if reuseport:
                    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
                if family == _socket.AF_INET6:
                    sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
                sock.bind(sockaddr)
            sock.listen(backlog)
            sock.setblocking(False)
            if ssl_context is None:
                slot = self._host.register(ListenerSlot(self._host, opaque, sock, self._reserve))
            else:
                from ._tls import TlsListenerSlot
                slot = self._host.register(
                    TlsListenerSlot(self._host, opaque, sock, self._reserve, ssl_context))
        except BaseException:
            sock.close()
            if unix_file is not None:
                _unix.remove(*unix_file)
            raise
        slot.unix_file = unix_file
        slot.name = format_address(sock.getsockname())
        return slot.id

    def address(self, socket_id: int) -> Optional[Tuple[str, int]]:
        """(host, port): the bound address of a listener or UDP socket, the
        peer of a connection; None if the id is gone or unconnected. Never
        blocks (from another OS thread it waits for the hub's answer)."""
        if _get_ident() != self._thread_ident:   # from another OS thread
            check_id(socket_id)
            return self._in_hub(self.address, socket_id)
        slot = self._live(socket_id)
        if slot is None or slot.sock is None:
            return None
        try:
            address = slot.address()
        except OSError:
            return None
        if isinstance(address, str):           # a unix socket
            return (_unix.PREFIX + address, 0)
        return (address[0], address[1])

    # ------------------------------------------------------------------ start / pause

    def start(self, socket_id: int, opaque: Optional[int] = None) -> None:
        """Start accepting (listener) or reading (connection); emits OPEN
        "start", OPEN "transfer" on a socket already started, or ERROR
        ("invalid socket", "socket closed"). ``opaque`` hands the socket to
        that owner. Never blocks."""
        if opaque is not None:
            opaque = check_opaque(opaque)
        if _get_ident() != self._thread_ident:   # from another OS thread
            check_id(socket_id)
            self._from_other_thread(self.start, socket_id, opaque)
            return
        slot = self._slots.get(socket_id)
        if slot is None:
            check_id(socket_id)
            self._channel.push(SocketMessage(SOCKET_ERROR, socket_id,
                                             0 if opaque is None else opaque, 0, "invalid socket"))
            return
        if opaque is not None:
            slot.opaque = opaque
        slot.start(opaque is not None)

    def resume(self, socket_id: int) -> None:
        """Read again after pause(), without an event (start() emits OPEN
        "transfer"); ignores ids gone or not started. Never blocks."""
        if _get_ident() != self._thread_ident:   # from another OS thread
            check_id(socket_id)
            self._from_other_thread(self.resume, socket_id)
            return
        slot = self._live(socket_id)
        if slot is not None:
            slot.resume()

    def peer_closed(self, socket_id: int) -> bool:
        """True when the peer of a TCP connection closed its side, as the
        OS tells without reading (so also while paused, its FIN behind
        unread bytes); False otherwise and for other ids. Never blocks."""
        slot = self._live(socket_id)
        return slot is not None and slot.state is not CLOSED and slot.peer_closed()

    def pause(self, socket_id: int) -> None:
        """Stop reading (or accepting) until start(id). Never blocks."""
        if _get_ident() != self._thread_ident:   # from another OS thread
            check_id(socket_id)
            self._from_other_thread(self.pause, socket_id)
            return
        slot = self._live(socket_id)
        if slot is not None:
            slot.pause()

    # ------------------------------------------------------------------ TCP: connect

    def connect(self, host: str, port: Optional[int], opaque: int = 0, *,
                ssl_context: Any = None, server_hostname: Optional[str] = None) -> int:
        """Start a non-blocking connect; return the id at once. OPEN (data =
        peer "host:port") or ERROR follows. Data sent meanwhile is queued.
        Reading starts by itself once connected. With ``ssl_context`` the
        TLS handshake (SNI and certificate check for ``server_hostname``,
        by default ``host``) runs before OPEN; its failure is the ERROR."""
        host = required_host(host, "connect")
        unix_path = _unix.unix_path(host)
        port = 0 if unix_path is not None and port is None else check_port(port)
        opaque = check_opaque(opaque)
        _check_tls(ssl_context, server_hostname)
        if _get_ident() != self._thread_ident:   # from another OS thread
            return self._in_hub(partial(self.connect, ssl_context=ssl_context,
                                        server_hostname=server_hostname), host, port, opaque)
        try:
            addresses = (_unix.address_info(unix_path) if unix_path is not None else
                         _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM, 0, _NUMERIC))
        except _socket.gaierror:
            addresses = None
        slot: ConnectingSlot = self._host.register(
            self._connecting_slot(opaque, None, host, ssl_context, server_hostname))
        if addresses is not None:
            slot.connect_addresses = list(addresses)
            slot.connect_next(None)
        else:
            connector = gevent.spawn(self._resolve_and_connect, slot, host, port)
            self._connectors.add(connector)
            connector.link(self._connectors.discard)
        return slot.id

    def _resolve_and_connect(self, slot: ConnectingSlot, host: str, port: int) -> None:
        try:
            addresses = self._hub.resolver.getaddrinfo(host, port, 0, _socket.SOCK_STREAM)
        except OSError as err:
            slot.resolve_failed(err)
            return
        slot.resolved(addresses)

    def _connecting_slot(self, opaque: int, sock: Any, host: str, ssl_context: Any,
                         server_hostname: Optional[str]) -> ConnectingSlot:
        if ssl_context is None:
            return ConnectingSlot(self._host, opaque, sock)
        if server_hostname is None and _unix.unix_path(host) is None:
            server_hostname = host
        from ._tls import TlsSlot
        return TlsSlot(self._host, opaque, ssl_context, False, server_hostname, sock)

    def block_connect(self, host: str, port: Optional[int], opaque: int = 0, *,
                      ssl_context: Any = None, server_hostname: Optional[str] = None) -> int:
        """Connect, blocking only the calling greenlet; return the id of a
        connected, reading socket (OPEN follows), or raise OSError. With
        ``ssl_context`` it returns once the TLS handshake is done, and a
        failed handshake raises ssl.SSLError (no event for that id)."""
        host = required_host(host, "block_connect")
        port = 0 if _unix.unix_path(host) is not None and port is None else check_port(port)
        opaque = check_opaque(opaque)
        _check_tls(ssl_context, server_hostname)
        if _get_ident() != self._thread_ident:   # from another OS thread
            return self._in_hub(partial(self.block_connect, ssl_context=ssl_context,
                                        server_hostname=server_hostname),
                                host, port, opaque, blocking=True)
        last_error: Optional[OSError] = None
        for info in self._resolve(host, port, _socket.SOCK_STREAM):
            if self._released:
                raise ConnectionError("socket server released while connecting")
            sock = open_stream(info)
            try:
                code = sock.connect_ex(info[4])
                if code in (errno.EINPROGRESS, errno.EAGAIN):
                    watcher = self._loop.io(sock.fileno(), 2)
                    waiting = gevent.getcurrent()
                    self._block_connecting.add(waiting)
                    try:
                        self._hub.wait(watcher)
                    finally:
                        self._block_connecting.discard(waiting)
                        watcher.close()
                    code = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code))
                slot = self._host.register(
                    self._connecting_slot(opaque, sock, host, ssl_context, server_hostname))
            except OSError as err:
                sock.close()
                last_error = err
                continue
            except BaseException:
                sock.close()
                raise
            slot.connected()
            if ssl_context is not None:
                from ._tls import wait_handshake
                wait_handshake(slot, self._hub)  # type: ignore[arg-type]  # a TlsSlot
            return slot.id
        raise last_error if last_error else OSError(f"cannot connect to {host}:{port}")

    # ------------------------------------------------------------------ bind an fd

    def bind(self, fd: int, opaque: int = 0) -> int:
        """Adopt an existing fd (a pipe, stdin...): emits OPEN "binding" and
        starts reading at once; return its id. The fd is never closed by the
        server (its blocking flag comes back on close). Never blocks."""
        if isinstance(fd, bool) or not isinstance(fd, int):
            raise TypeError(f"fd must be an int, not {type(fd).__name__}")
        opaque = check_opaque(opaque)
        if _get_ident() != self._thread_ident:   # from another OS thread
            return self._in_hub(self.bind, fd, opaque)
        was_blocking = os.get_blocking(fd)   # OSError(EBADF) for a bad fd
        os.set_blocking(fd, False)
        try:
            slot = self._host.register(BoundSlot(self._host, opaque, fd, was_blocking))
        except BaseException:
            os.set_blocking(fd, was_blocking)
            raise
        slot.start_reading()
        slot.message(SOCKET_OPEN, 0, "binding")
        return slot.id

    # ------------------------------------------------------------------ send / close

    def send(self, socket_id: int, data: SendData) -> bool:
        """Send with high priority; never blocks. False if the id is not a
        live socket (or was closed). Bytes go out in call order."""
        if type(data) is not bytes:
            data = normalize(data)
        if _get_ident() != self._thread_ident:
            check_id(socket_id)
            return self._from_other_thread(self.send, socket_id, frozen(data))
        slot = self._slots.get(socket_id)
        if slot is None:
            self._live(socket_id)   # TypeError for a non-int id
            return False
        return slot.send(data, False)

    def send_lowpriority(self, socket_id: int, data: SendData) -> bool:
        """Send with low priority: it goes out only while no high-priority
        data is pending. Never blocks; False if the id is not live."""
        data = normalize(data)
        if _get_ident() != self._thread_ident:   # from another OS thread
            check_id(socket_id)
            return self._from_other_thread(self.send_lowpriority, socket_id, frozen(data))
        slot = self._live(socket_id)
        if slot is None:
            return False
        return slot.send(data, True)

    def close(self, socket_id: int) -> None:
        """Graceful close: stop reading, report CLOSE, flush every queued
        byte, then close the fd. Unknown ids are ignored. Never blocks."""
        if _get_ident() != self._thread_ident:   # from another OS thread
            check_id(socket_id)
            self._from_other_thread(self.close, socket_id)
            return
        if self._foreign.queue:
            self._foreign.run_all()
        slot = self._live(socket_id)
        if slot is not None:
            slot.close()

    def shutdown(self, socket_id: int) -> None:
        """Forceful close: drop queued bytes, close now, report CLOSE (once);
        ignores unknown ids. Never blocks."""
        if _get_ident() != self._thread_ident:   # from another OS thread
            check_id(socket_id)
            self._from_other_thread(self.shutdown, socket_id)
            return
        if self._foreign.queue:
            self._foreign.run_all()
        slot = self._live(socket_id)
        if slot is not None:
            slot.force_close(report=True)

    def _from_other_thread(self, method: Callable[..., Any], *args: Any) -> bool:
        if self._released:
            return False
        self.call_threadsafe(method, *args)
        return args[0] in self._slots

    def _in_hub(self, function: Callable[..., Any], *args: Any, blocking: bool = False) -> Any:
        if self._released:
            raise RuntimeError(RELEASED)
        return self._foreign.ask(function, args, blocking, FOREIGN_CALL_TIMEOUT)

    def call_threadsafe(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` soon in the hub's thread; may be called
        from any thread. Calls run in the order they were made, and before
        any close or shutdown that the hub's thread makes afterwards, so a
        thread's writes reach the socket before the hub closes it. What
        ``function`` raises is logged. Returns None; never blocks."""
        self._foreign.call(function, args)

    def run_foreign_calls(self) -> None:
        """Run every call queued by :meth:`call_threadsafe` now, in order
        (hub's thread only). Returns None; blocks only as long as those
        calls do (they are the server's own non-blocking operations)."""
        self._foreign.run_all()

    def nodelay(self, socket_id: int) -> None:
        """Set TCP_NODELAY on a TCP socket (others: ignored). Never blocks."""
        if _get_ident() != self._thread_ident:   # from another OS thread
            check_id(socket_id)
            self._from_other_thread(self.nodelay, socket_id)
            return
        slot = self._live(socket_id)
        if slot is not None and slot.sock is not None and slot.protocol == PROTOCOL_TCP:
            try:
                slot.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            except OSError as err:
                logger.debug("nodelay on %d: %s", socket_id, err)

    # ------------------------------------------------------------------ info

    def info(self) -> List[SocketInfo]:
        """A netstat row for every live socket, in id order: one snapshot
        taken in the hub's thread. Never blocks (from another OS thread it
        waits for the hub's answer)."""
        if _get_ident() != self._thread_ident:   # from another OS thread
            return self._in_hub(self.info) if not self._released else []
        rows = []
        for socket_id in sorted(self._slots):
            slot = self._slots[socket_id]
            rows.append(SocketInfo(socket_id, slot.netstat_type(), slot.opaque, slot.bytes_read,
                                   slot.bytes_written, slot.rtime, slot.wtime, slot.pending_bytes,
                                   slot.reading and slot.state is not CLOSING,
                                   slot.writing, slot.name))
        return rows

    def __repr__(self) -> str:
        return f"<SocketServer sockets={len(self._slots)} pending_events={len(self._channel)}>"


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_server")
