"""Event constants and records shared by every layer.

The ``SOCKET_*`` numbers are those of skynet's ``socket_server.h``; the
``SKYNET_SOCKET_TYPE_*`` numbers are those of ``skynet_socket.h``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple, Union

__all__ = [
    "SOCKET_DATA", "SOCKET_CLOSE", "SOCKET_OPEN", "SOCKET_ACCEPT", "SOCKET_ERROR",
    "SOCKET_ERR", "SOCKET_EXIT", "SOCKET_UDP", "SOCKET_WARNING", "EVENT_NAMES",
    "SKYNET_SOCKET_TYPE_DATA", "SKYNET_SOCKET_TYPE_CONNECT", "SKYNET_SOCKET_TYPE_CLOSE",
    "SKYNET_SOCKET_TYPE_ACCEPT", "SKYNET_SOCKET_TYPE_ERROR", "SKYNET_SOCKET_TYPE_UDP",
    "SKYNET_SOCKET_TYPE_WARNING", "SocketMessage", "SocketInfo", "SendData",
]

SOCKET_DATA = 0
SOCKET_CLOSE = 1
SOCKET_OPEN = 2
SOCKET_ACCEPT = 3
SOCKET_ERROR = 4
SOCKET_ERR = SOCKET_ERROR
SOCKET_EXIT = 5
SOCKET_UDP = 6
SOCKET_WARNING = 7

EVENT_NAMES = {
    SOCKET_DATA: "DATA", SOCKET_CLOSE: "CLOSE", SOCKET_OPEN: "OPEN",
    SOCKET_ACCEPT: "ACCEPT", SOCKET_ERROR: "ERROR", SOCKET_EXIT: "EXIT",
    SOCKET_UDP: "UDP", SOCKET_WARNING: "WARNING",
}

SKYNET_SOCKET_TYPE_DATA = 1
SKYNET_SOCKET_TYPE_CONNECT = 2
SKYNET_SOCKET_TYPE_CLOSE = 3
SKYNET_SOCKET_TYPE_ACCEPT = 4
SKYNET_SOCKET_TYPE_ERROR = 5
SKYNET_SOCKET_TYPE_UDP = 6
SKYNET_SOCKET_TYPE_WARNING = 7

#: What ``send``/``write`` accept: bytes-like or str (UTF-8), or a sequence
#: of those sent as one unit, in order.
SendData = Union[bytes, bytearray, memoryview, str, Sequence[Union[bytes, bytearray, memoryview, str]]]


class SocketMessage(NamedTuple):
    """One event produced by :class:`gsocket.server.SocketServer`."""

    type: int
    id: int
    opaque: int
    ud: int
    data: Union[bytes, str, None]
    address: Optional[Tuple[str, int]] = None

    def __repr__(self) -> str:
        name = EVENT_NAMES.get(self.type, str(self.type))
        data = self.data
        if isinstance(data, bytes) and len(data) > 32:
            data = data[:32] + b"..."  # keep log lines short
        extra = f", address={self.address!r}" if self.address is not None else ""
        return (f"SocketMessage({name}, id={self.id}, opaque={self.opaque}, "
                f"ud={self.ud}, data={data!r}{extra})")


#: ``new_message(SocketMessage, (type, id, opaque, ud, data, address))``:
#: a SocketMessage without the Python-level ``__new__`` of a NamedTuple (all
#: six fields given). The server makes one per event, on every wake-up.
new_message = tuple.__new__


class SocketInfo(NamedTuple):
    """One row of :meth:`gsocket.server.SocketServer.info` (skynet's netstat)."""

    id: int
    type: str          # 'LISTEN', 'TCP', 'UDP', 'BIND' or 'CLOSING'
    opaque: int
    read: int          # bytes read (accepted connections, for a listener)
    write: int         # bytes written
    rtime: float       # loop time of the last read, 0.0 if never
    wtime: float       # loop time of the last write, 0.0 if never
    wbuffer: int       # bytes queued, not yet written
    reading: bool
    writing: bool
    name: str          # "host:port": local for a listener, peer otherwise
