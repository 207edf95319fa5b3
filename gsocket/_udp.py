"""A UDP socket: reads at once (no start needed), up to
MAX_DATAGRAMS_PER_WAKEUP datagrams per wake-up, each a SOCKET_UDP event;
holds off while the event channel is crowded (the kernel drops what does
not fit, as UDP may). Datagrams that would block wait in the high queue."""

from __future__ import annotations

import errno
from typing import Any, List, Optional, Tuple

import _socket

from .events import SOCKET_ERROR, SOCKET_UDP, SocketMessage
from ._netutil import WOULD_BLOCK, error_text, format_address, logger
from ._slot import CLOSED, CLOSING, CONNECTED, PROTOCOL_UDP, Slot, SlotHost

__all__ = ["UdpSlot", "MAX_UDP_PACKAGE", "MAX_DATAGRAMS_PER_WAKEUP"]

#: skynet socket_server.c MAX_UDP_PACKAGE.
MAX_UDP_PACKAGE = 65535
#: Datagrams read in one wake-up of a UDP reader (fairness cap, like TCP's).
MAX_DATAGRAMS_PER_WAKEUP = 64

_ICMP_ERRORS = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)


class UdpSlot(Slot):
    """A datagram socket from ``udp``/``udp_listen``/``udp_dial``."""

    __slots__ = ("udp_default", "throttled")

    protocol = PROTOCOL_UDP

    def __init__(self, host: SlotHost, opaque: int, sock: Any) -> None:
        Slot.__init__(self, host, opaque, CONNECTED, sock)
        #: Where send() and udp_send(id, None, ...) go (a sockaddr), or None.
        self.udp_default: Optional[Tuple[Any, ...]] = None
        #: The reader waits for the event channel to drain.
        self.throttled = False

    def netstat_type(self) -> str:
        return "UDP"

    def address(self) -> Any:
        return self.sock.getsockname()

    # ------------------------------------------------------------------ reader

    def stop_reading(self) -> None:
        self.throttled = False
        Slot.stop_reading(self)

    def on_readable(self) -> None:
        recvfrom = self.sock.recvfrom
        emit = self.emit
        host = self.host
        for _ in range(MAX_DATAGRAMS_PER_WAKEUP):
            if host.crowded():
                # The poller is behind: stop reading (the kernel drops what
                # does not fit, as UDP may) until it has caught up.
                self.stop_reading()
                self.throttled = True
                host.when_drained(self.end_throttle)
                return
            try:
                data, address = recvfrom(MAX_UDP_PACKAGE)
            except WOULD_BLOCK:
                return
            except OSError as err:
                # ICMP errors (port unreachable) surface here on Linux; the
                # socket itself is fine, so report and keep reading.
                self.message(SOCKET_ERROR, 0, error_text(err))
                if err.errno not in _ICMP_ERRORS:
                    self.force_close(report=True)
                return
            self.bytes_read += len(data)
            self.rtime = host.loop.now()
            emit(SocketMessage(SOCKET_UDP, self.id, self.opaque, len(data), data,
                               (address[0], address[1])))

    def end_throttle(self) -> None:
        if self.throttled:
            self.throttled = False
            if self.state is not CLOSED:
                self.start_reading()

    # ------------------------------------------------------------------ destination

    def connect_to(self, host: str, destinations: List[Tuple[int, Any]]) -> None:
        """``udp_connect``: make the first resolved destination the default
        one; ERROR "protocol mismatch" when its family is not the socket's."""
        if not destinations:
            logger.warning("udp_connect %d: cannot resolve %s", self.id, host)
            return
        family, sockaddr = destinations[0]
        if family != self.family:
            logger.warning("udp_connect %d: protocol mismatch for %s", self.id, host)
            self.message(SOCKET_ERROR, 0, "protocol mismatch")
            return
        self.udp_default = sockaddr
        self.name = format_address(sockaddr)

    # ------------------------------------------------------------------ writer

    def send(self, data: Any, low_priority: bool) -> bool:
        state = self.state
        if state is CLOSING or state is CLOSED:
            return False
        return self.send_to(None, data)

    def send_to_any(self, destinations: Optional[List[Tuple[int, Any]]], data: Any) -> bool:
        """Send to the first of ``destinations`` (family, sockaddr) in the
        socket's family, or to the default destination when None."""
        if destinations is None:
            return self.send_to(None, data)
        for family, sockaddr in destinations:
            if family == self.family:
                return self.send_to(sockaddr, data)
        logger.warning("udp socket %d: no %s address among %r", self.id,
                       "IPv6" if self.family == _socket.AF_INET6 else "IPv4", destinations)
        return False

    def send_to(self, sockaddr: Any, data: Any) -> bool:
        """Send one datagram to ``sockaddr`` (None: the default destination)."""
        if isinstance(data, list):
            data = b"".join(data)
        if sockaddr is None:
            sockaddr = self.udp_default
            if sockaddr is None:
                logger.warning("udp socket %d: set udp address first", self.id)
                return False
        if not self.high:
            try:
                self.sock.sendto(data, sockaddr)
                self.bytes_written += len(data)
                self.wtime = self.host.loop.now()
                return True
            except WOULD_BLOCK:
                pass
            except OSError as err:
                logger.warning("udp socket %d: sendto error: %s", self.id, err)
                return False
        self.queue_for(False).append((bytes(data), sockaddr))
        self.pending_bytes += len(data)
        self.check_warning()
        self.start_writing()
        return True

    def on_writable(self) -> None:
        high = self.high
        sendto = self.sock.sendto
        while high:
            data, sockaddr = high[0]
            try:
                sendto(data, sockaddr)
            except WOULD_BLOCK:
                return
            except OSError as err:
                logger.warning("udp socket %d: sendto error: %s", self.id, err)
            high.popleft()
            self.pending_bytes -= len(data)
            self.bytes_written += len(data)
        if self.state is CLOSED:
            return
        self.writer_drained()
