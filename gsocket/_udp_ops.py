"""The UDP operations of :class:`~gsocket.server.SocketServer` (a mixin):
making UDP sockets, their default destination, and sending datagrams.
Host names are resolved in the calling greenlet or thread, never in the
hub; calls from another OS thread hop onto the hub like the server's."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import _socket

from ._arguments import check_id, check_host, check_opaque, check_port, frozen, normalize, required_host
from ._slot import CLOSED, CLOSING
from ._udp import UdpSlot
from .events import SendData, SocketMessage

__all__ = ["UdpOperations"]


class UdpOperations:
    """SocketServer's UDP methods; the server provides ``_host``,
    ``_slots``, ``_resolve``, ``_other_thread``, ``_in_hub`` and
    ``_from_other_thread``."""

    _host: Any
    _slots: Any
    _resolve: Any
    _other_thread: Any
    _in_hub: Any
    _from_other_thread: Any

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
        (SOCKET_UDP events), no start() needed; return its id. Raises OSError
        on bind failure. Blocks only to resolve a host name."""
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
        """A UDP socket bound to (host, port), family taken from the host;
        return its id. Blocks only to resolve a host name."""
        host = check_host(host)
        port = check_port(port)
        opaque = check_opaque(opaque)
        if self._other_thread():
            return self._in_hub(self.udp_listen, host, port, opaque, blocking=True)
        family, _, _, _, sockaddr = self._resolve(host, port, _socket.SOCK_DGRAM, True)[0]
        return self._udp_socket(family, sockaddr, opaque)

    def udp_dial(self, host: str, port: int, opaque: int = 0) -> int:
        """An unbound UDP socket whose default destination is (host, port);
        return its id. Blocks only to resolve a host name."""
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
        calling greenlet (or thread), never in the hub: only then it blocks.
        Returns None."""
        host = required_host(host, "udp_connect")
        port = check_port(port)
        check_id(socket_id)
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
        check_id(socket_id)
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
        """The (host, port) a SOCKET_UDP message came from, else None. Never
        blocks."""
        return message.address

