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
import ssl
from functools import partial
from typing import Any, Callable, List, Optional, Set, Tuple

import _socket
import gevent
from gevent import get_hub
from gevent.monkey import get_original

from ._arguments import check_host, check_opaque, check_port, frozen, normalize, required_host
from ._connecting import ConnectingSlot, open_stream
from ._event_channel import EventChannel
from ._listener import ListenerSlot, ReserveFd
from ._netutil import format_address, logger
from ._slot import CLOSED, CLOSING, PROTOCOL_TCP, Slot, SlotHost
from ._stream import BoundSlot
from ._tls import TlsListenerSlot, TlsSlot, check_tls_arguments, wait_handshake
from ._foreign_calls import RELEASED, ForeignCalls
from ._udp import UdpSlot
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


def _check_id(socket_id: Any) -> None:
    if isinstance(socket_id, bool) or not isinstance(socket_id, int):
        raise TypeError(f"socket id must be an int, not {type(socket_id).__name__}")


class SocketServer:
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
        self._released = False
        self._connectors: Set[gevent.Greenlet] = set()
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
        if self._other_thread():
            if not self._released:
                self._in_hub(self.release)
            return
        if self._released:
            return
        self._released = self._host.released = self._foreign.released = True
        for connector in list(self._connectors):
            connector.kill(block=False)
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
        if self._other_thread():
            raise RuntimeError("poll() must run in the thread of the SocketServer's hub")
        return self._channel.pop(timeout)

    def exit(self) -> None:
        """Queue a SOCKET_EXIT event (for the loop that polls this server).
        Returns None; never blocks."""
        if self._other_thread():
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

    # ------------------------------------------------------------------ ids

    def _live(self, socket_id: Any) -> Optional[Slot]:
        slot = self._slots.get(socket_id)
        if slot is None and not isinstance(socket_id, int):
            raise TypeError(f"socket id must be an int, not {type(socket_id).__name__}")
        return slot

    def _other_thread(self) -> bool:
        return _get_ident() != self._thread_ident

    # ------------------------------------------------------------------ address helpers

    def _resolve(self, host: Optional[str], port: int, socktype: int,
                 passive: bool = False) -> List[Tuple[Any, ...]]:
        """getaddrinfo without touching DNS for numeric hosts; names go
        through gevent's resolver (blocks only the calling greenlet)."""
        flags = _socket.AI_PASSIVE if passive else 0
        if host is None:
            host = "0.0.0.0" if passive else "127.0.0.1"
        try:
            return _socket.getaddrinfo(host, port, 0, socktype, 0, flags | _NUMERIC)
        except _socket.gaierror:
            pass
        if self._other_thread():   # a real thread may block: resolve right here
            return _socket.getaddrinfo(host, port, 0, socktype, 0, flags)
        return self._hub.resolver.getaddrinfo(host, port, 0, socktype, 0, flags)

    # ------------------------------------------------------------------ TCP: listen / accept

    def listen(self, host: Optional[str], port: int, backlog: int = 32, opaque: int = 0,
               reuseport: bool = False, *, ssl_context: Optional[ssl.SSLContext] = None) -> int:
        """Bind and listen now; return the listen id. Raises OSError when the
        address cannot be bound. ACCEPT events start only after start(id).
        With ``ssl_context`` every accepted connection is TLS (handshake on
        start, before OPEN). Blocks only to resolve a host name."""
        host = check_host(host)
        port = check_port(port)
        opaque = check_opaque(opaque)
        check_tls_arguments(ssl_context, None)
        if not isinstance(backlog, int) or backlog < 1:
            raise ValueError("backlog must be a positive int")
        if self._other_thread():
            return self._in_hub(partial(self.listen, ssl_context=ssl_context), host, port,
                                backlog, opaque, reuseport, blocking=True)
        family, socktype, proto, _, sockaddr = self._resolve(host, port, _socket.SOCK_STREAM, True)[0]
        sock = _socket.socket(family, socktype, proto)
        try:
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
                slot = self._host.register(
                    TlsListenerSlot(self._host, opaque, sock, self._reserve, ssl_context))
        except BaseException:
            sock.close()
            raise
        slot.name = format_address(sock.getsockname())
        return slot.id

    def address(self, socket_id: int) -> Optional[Tuple[str, int]]:
        """(host, port): the bound address of a listener or UDP socket, the
        peer of a connection; None if the id is gone or unconnected. Never
        blocks (from another OS thread it waits for the hub's answer)."""
        if self._other_thread():
            _check_id(socket_id)
            return self._in_hub(self.address, socket_id)
        slot = self._live(socket_id)
        if slot is None or slot.sock is None:
            return None
        try:
            address = slot.address()
        except OSError:
            return None
        return (address[0], address[1])

    # ------------------------------------------------------------------ start / pause

    def start(self, socket_id: int, opaque: Optional[int] = None) -> None:
        """Start accepting (listener) or reading (connection); emits OPEN
        "start", OPEN "transfer" on a socket already started, or ERROR
        ("invalid socket", "socket closed"). ``opaque`` hands the socket to
        that owner. Never blocks."""
        if opaque is not None:
            opaque = check_opaque(opaque)
        if self._other_thread():
            _check_id(socket_id)
            self._from_other_thread(self.start, socket_id, opaque)
            return
        slot = self._live(socket_id)
        if slot is None:
            self._channel.push(SocketMessage(SOCKET_ERROR, socket_id,
                                             0 if opaque is None else opaque, 0, "invalid socket"))
            return
        if opaque is not None:
            slot.opaque = opaque
        slot.start(opaque is not None)

    def resume(self, socket_id: int) -> None:
        """Read again after pause(), without an event (start() emits OPEN
        "transfer"). Ignored for ids that are gone or not started."""
        if self._other_thread():
            _check_id(socket_id)
            self._from_other_thread(self.resume, socket_id)
            return
        slot = self._live(socket_id)
        if slot is not None:
            slot.resume()

    def pause(self, socket_id: int) -> None:
        """Stop reading (or accepting) until start(id). Never blocks."""
        if self._other_thread():
            _check_id(socket_id)
            self._from_other_thread(self.pause, socket_id)
            return
        slot = self._live(socket_id)
        if slot is not None:
            slot.pause()

    # ------------------------------------------------------------------ TCP: connect

    def connect(self, host: str, port: int, opaque: int = 0, *,
                ssl_context: Optional[ssl.SSLContext] = None,
                server_hostname: Optional[str] = None) -> int:
        """Start a non-blocking connect; return the id at once. OPEN (data =
        peer "host:port") or ERROR follows. Data sent meanwhile is queued.
        Reading starts by itself once connected. With ``ssl_context`` the
        TLS handshake (SNI and certificate check for ``server_hostname``,
        by default ``host``) runs before OPEN; its failure is the ERROR."""
        host = required_host(host, "connect")
        port = check_port(port)
        opaque = check_opaque(opaque)
        check_tls_arguments(ssl_context, server_hostname)
        if self._other_thread():
            return self._in_hub(partial(self.connect, ssl_context=ssl_context,
                                        server_hostname=server_hostname), host, port, opaque)
        try:
            addresses = _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM, 0, _NUMERIC)
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

    def _connecting_slot(self, opaque: int, sock: Any, host: str,
                         ssl_context: Optional[ssl.SSLContext],
                         server_hostname: Optional[str]) -> ConnectingSlot:
        if ssl_context is None:
            return ConnectingSlot(self._host, opaque, sock)
        return TlsSlot(self._host, opaque, ssl_context, False, server_hostname or host, sock)

    def block_connect(self, host: str, port: int, opaque: int = 0, *,
                      ssl_context: Optional[ssl.SSLContext] = None,
                      server_hostname: Optional[str] = None) -> int:
        """Connect, blocking only the calling greenlet; return the id of a
        connected, reading socket (OPEN follows), or raise OSError. With
        ``ssl_context`` it returns once the TLS handshake is done, and a
        failed handshake raises ssl.SSLError (no event for that id)."""
        host = required_host(host, "block_connect")
        port = check_port(port)
        opaque = check_opaque(opaque)
        check_tls_arguments(ssl_context, server_hostname)
        if self._other_thread():
            return self._in_hub(partial(self.block_connect, ssl_context=ssl_context,
                                        server_hostname=server_hostname),
                                host, port, opaque, blocking=True)
        last_error: Optional[OSError] = None
        for info in self._resolve(host, port, _socket.SOCK_STREAM):
            sock = open_stream(info)
            try:
                code = sock.connect_ex(info[4])
                if code in (errno.EINPROGRESS, errno.EAGAIN):
                    watcher = self._loop.io(sock.fileno(), 2)
                    try:
                        self._hub.wait(watcher)
                    finally:
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
            if isinstance(slot, TlsSlot):
                wait_handshake(slot, self._hub)
            return slot.id
        raise last_error if last_error else OSError(f"cannot connect to {host}:{port}")

    # ------------------------------------------------------------------ bind an fd

    def bind(self, fd: int, opaque: int = 0) -> int:
        """Adopt an existing fd (a pipe, stdin...): emits OPEN "binding" and
        starts reading at once. The fd is never closed by the server."""
        if isinstance(fd, bool) or not isinstance(fd, int):
            raise TypeError(f"fd must be an int, not {type(fd).__name__}")
        opaque = check_opaque(opaque)
        if self._other_thread():
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
        data = normalize(data)
        if self._other_thread():
            _check_id(socket_id)
            return self._from_other_thread(self.send, socket_id, frozen(data))
        slot = self._live(socket_id)
        if slot is None:
            return False
        return slot.send(data, False)

    def send_lowpriority(self, socket_id: int, data: SendData) -> bool:
        """Send with low priority: it goes out only while no high-priority
        data is pending. Never blocks; False if the id is not live."""
        data = normalize(data)
        if self._other_thread():
            _check_id(socket_id)
            return self._from_other_thread(self.send_lowpriority, socket_id, frozen(data))
        slot = self._live(socket_id)
        if slot is None:
            return False
        return slot.send(data, True)

    def close(self, socket_id: int) -> None:
        """Graceful close: stop reading, report CLOSE, flush every queued
        byte, then close the fd. Unknown ids are ignored. Never blocks."""
        if self._other_thread():
            _check_id(socket_id)
            self._from_other_thread(self.close, socket_id)
            return
        if self._foreign.queue:
            self._foreign.run_all()
        slot = self._live(socket_id)
        if slot is not None:
            slot.close()

    def shutdown(self, socket_id: int) -> None:
        """Forceful close: drop queued bytes, close now, report CLOSE (once)."""
        if self._other_thread():
            _check_id(socket_id)
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
        """Set TCP_NODELAY on a TCP socket; ignored for other ids."""
        if self._other_thread():
            _check_id(socket_id)
            self._from_other_thread(self.nodelay, socket_id)
            return
        slot = self._live(socket_id)
        if slot is not None and slot.sock is not None and slot.protocol == PROTOCOL_TCP:
            try:
                slot.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            except OSError as err:
                logger.debug("nodelay on %d: %s", socket_id, err)

    # ------------------------------------------------------------------ UDP

    def _udp_socket(self, family: int, sockaddr: Any, opaque: int, default: Any = None) -> int:
        sock = _socket.socket(family, _socket.SOCK_DGRAM, 0)
        try:
            sock.setblocking(False)
            if sockaddr is not None:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
                sock.bind(sockaddr)
            slot = self._host.register(UdpSlot(self._host, opaque, sock))
        except BaseException:
            sock.close()
            raise
        slot.udp_default = default
        slot.start_reading()
        return slot.id

    def udp(self, host: Optional[str] = None, port: int = 0, opaque: int = 0) -> int:
        """A UDP socket, bound when host or port is given; reads at once
        (SOCKET_UDP events), no start() needed. Raises OSError on bind failure."""
        host = check_host(host)
        port = check_port(port)
        opaque = check_opaque(opaque)
        if self._other_thread():
            return self._in_hub(self.udp, host, port, opaque, blocking=True)
        if host is None and port == 0:
            return self._udp_socket(_socket.AF_INET, None, opaque)
        family, _, _, _, sockaddr = self._resolve(host, port, _socket.SOCK_DGRAM, True)[0]
        return self._udp_socket(family, sockaddr, opaque)

    def udp_listen(self, host: Optional[str], port: int, opaque: int = 0) -> int:
        """A UDP socket bound to (host, port), family taken from the host."""
        host = check_host(host)
        port = check_port(port)
        opaque = check_opaque(opaque)
        if self._other_thread():
            return self._in_hub(self.udp_listen, host, port, opaque, blocking=True)
        family, _, _, _, sockaddr = self._resolve(host, port, _socket.SOCK_DGRAM, True)[0]
        return self._udp_socket(family, sockaddr, opaque)

    def udp_dial(self, host: str, port: int, opaque: int = 0) -> int:
        """An unbound UDP socket whose default destination is (host, port)."""
        host = required_host(host, "udp_dial")
        port = check_port(port)
        opaque = check_opaque(opaque)
        if self._other_thread():
            return self._in_hub(self.udp_dial, host, port, opaque, blocking=True)
        family, _, _, _, sockaddr = self._resolve(host, port, _socket.SOCK_DGRAM)[0]
        return self._udp_socket(family, None, opaque, sockaddr)

    def udp_connect(self, socket_id: int, host: str, port: int) -> None:
        """Set the default destination of a UDP socket. A family mismatch
        emits ERROR "protocol mismatch". A host name is resolved in the
        calling greenlet (or thread), never in the hub. Returns None."""
        host = required_host(host, "udp_connect")
        port = check_port(port)
        _check_id(socket_id)
        if self._udp_slot(socket_id) is None:
            return
        destinations = self._udp_destinations(host, port)
        if self._other_thread():
            self._from_other_thread(self._udp_connect_to, socket_id, host, destinations)
            return
        self._udp_connect_to(socket_id, host, destinations)

    def _udp_connect_to(self, socket_id: int, host: str,
                        destinations: List[Tuple[int, Any]]) -> None:
        slot = self._udp_slot(socket_id)
        if slot is not None:
            slot.connect_to(host, destinations)

    def _udp_slot(self, socket_id: int) -> Optional[UdpSlot]:
        """The live UDP slot of ``socket_id``; ValueError for another kind.
        Read-only, so safe from any thread."""
        slot = self._slots.get(socket_id)
        if slot is not None and not isinstance(slot, UdpSlot):
            raise ValueError(f"socket {socket_id} is not a UDP socket")
        return slot

    def _udp_destinations(self, host: str, port: int) -> List[Tuple[int, Any]]:
        """(family, sockaddr) pairs for a datagram destination, resolved by
        the caller ([] when the name does not resolve)."""
        try:
            infos = self._resolve(host, port, _socket.SOCK_DGRAM)
        except OSError:
            return []
        return [(info[0], info[4]) for info in infos]

    def udp_send(self, socket_id: int, address: Optional[Tuple[str, int]], data: SendData) -> bool:
        """Send one datagram to ``address`` (host, port), or to the default
        destination when None. Returns False when the id is gone, no
        destination is known, or the address family does not match the
        socket. Never blocks, except to resolve a host name (in the calling
        greenlet or thread, never in the hub)."""
        data = normalize(data)
        _check_id(socket_id)
        destinations: Optional[List[Tuple[int, Any]]] = None
        if address is not None:
            if not isinstance(address, tuple) or len(address) < 2:
                raise TypeError("udp address must be a (host, port) tuple")
            host = check_host(address[0])
            port = check_port(address[1])
        slot = self._udp_slot(socket_id)
        if slot is None or slot.state is CLOSED or slot.state is CLOSING:
            return False
        if address is not None:
            destinations = self._udp_destinations(host, port)   # type: ignore[arg-type]
        if self._other_thread():
            return self._from_other_thread(self._udp_send_to, socket_id, destinations, frozen(data))
        return self._udp_send_to(socket_id, destinations, data)

    def _udp_send_to(self, socket_id: int, destinations: Optional[List[Tuple[int, Any]]],
                     data: Any) -> bool:
        slot = self._udp_slot(socket_id)
        if slot is None or slot.state is CLOSED or slot.state is CLOSING:
            return False
        return slot.send_to_any(destinations, data)

    @staticmethod
    def udp_address(message: SocketMessage) -> Optional[Tuple[str, int]]:
        """The (host, port) a SOCKET_UDP message came from, else None."""
        return message.address

    # ------------------------------------------------------------------ info

    def info(self) -> List[SocketInfo]:
        """A netstat row for every live socket, in id order: one snapshot
        taken in the hub's thread. Never blocks (from another OS thread it
        waits for the hub's answer)."""
        if self._other_thread():
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
