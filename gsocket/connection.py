"""Connection: one socket id as an object (reads raise instead of None)."""

from __future__ import annotations

from typing import Iterator, Optional, Union

from . import socket as _socket_api
from .server import SendData

__all__ = ["Connection", "ConnectionClosed"]


class ConnectionClosed(ConnectionError):
    """The socket closed before a read was satisfied; ``partial`` holds the
    bytes that did arrive (they are consumed)."""

    def __init__(self, socket_id: int, partial: bytes = b"") -> None:
        super().__init__(f"socket {socket_id} closed ({len(partial)} bytes unread)")
        self.id = socket_id
        self.partial = partial


class Connection:
    """Wraps an id that is already started (from ``socket.open`` or
    ``socket.start`` of an accepted id)."""

    __slots__ = ("id",)

    def __init__(self, socket_id: int) -> None:
        if isinstance(socket_id, bool) or not isinstance(socket_id, int):
            raise TypeError(f"socket id must be an int, not {type(socket_id).__name__}")
        self.id = socket_id

    def _rest(self) -> bytes:
        """The bytes left buffered once the socket is closed; never blocks
        (an id that is connected again, after a hand-over, gives b"")."""
        if _socket_api.disconnected(self.id):
            return _socket_api.readall(self.id)
        return b""

    def _closed(self) -> ConnectionClosed:
        return ConnectionClosed(self.id, self._rest())

    def read(self, n: Optional[int] = None, *, timeout: Optional[float] = None) -> bytes:
        """``n`` bytes (or what is buffered, n None); blocks the calling
        greenlet; raises ConnectionClosed (with ``.partial``) if it closed."""
        data = _socket_api.read(self.id, n, timeout=timeout)
        if data is None:
            raise self._closed()
        return data

    def readline(self, sep: Union[bytes, str] = b"\n", *, timeout: Optional[float] = None) -> bytes:
        """The next line without ``sep``; blocks; ConnectionClosed at EOF."""
        line = _socket_api.readline(self.id, sep, timeout=timeout)
        if line is None:
            raise self._closed()
        return line

    def readall(self, *, timeout: Optional[float] = None) -> bytes:
        """Every byte until the peer closes; blocks until then."""
        return _socket_api.readall(self.id, timeout=timeout)

    def write(self, data: SendData) -> bool:
        """Queue data; never blocks; False when the socket is gone."""
        return _socket_api.write(self.id, data)

    def close(self) -> None:
        """Graceful close (see socket.close): what was written reaches the
        peer before the FIN. Returns None; blocks only while a greenlet
        reading this id wakes up with the close."""
        _socket_api.close(self.id)

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        """Lines (without b"\\n") until EOF; a final unterminated line too."""
        while True:
            line = _socket_api.readline(self.id)
            if line is None:
                rest = self._rest()
                if rest:
                    yield rest
                return
            yield line

    def __repr__(self) -> str:
        return f"<Connection id={self.id}>"
