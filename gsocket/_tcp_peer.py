"""Client sockets for black-box tests (the ``tcp_peer`` fixture)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Tuple, Union

if TYPE_CHECKING:  # pragma: no cover
    import socket as _socket_mod

__all__ = ["PEER_TIMEOUT", "PeerClosed", "TcpPeerFactory", "free_tcp_port"]

logger = logging.getLogger("gsocket.pytest_plugin")

#: Default timeout of ``tcp_peer`` sockets, so a black-box check never hangs.
PEER_TIMEOUT = 5.0

_GIVEN_PORTS: Set[int] = set()


def free_tcp_port(host: str = "127.0.0.1") -> int:
    import _socket  # never monkey-patched: no hub needed for this

    for _ in range(50):
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        finally:
            sock.close()
        if port not in _GIVEN_PORTS:  # no port twice in one session
            _GIVEN_PORTS.add(port)
            return port
    raise RuntimeError("no free TCP port found")


class PeerClosed(EOFError):
    """The peer closed before the expected bytes arrived; ``partial`` holds
    what did arrive."""

    def __init__(self, message: str, partial: bytes) -> None:
        super().__init__(message)
        self.partial = partial


class _PeerMixin:
    """Helpers added to ``tcp_peer`` sockets; plain ``recv`` stays exact
    because the helpers never read past what they return."""

    def recv_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; :class:`PeerClosed` if the peer closes first."""
        data = bytearray()
        while len(data) < n:
            chunk = self.recv(n - len(data))  # type: ignore[attr-defined]
            if not chunk:
                raise PeerClosed(f"peer closed after {len(data)} of {n} bytes", bytes(data))
            data += chunk
        return bytes(data)

    def recv_until(self, sep: bytes = b"\n", limit: int = 1 << 20) -> bytes:
        """Bytes up to ``sep``, returned without it (like gsocket's readline);
        bytes after ``sep`` stay in the socket."""
        import socket

        data = bytearray()
        while True:
            peek = self.recv(65536, socket.MSG_PEEK)  # type: ignore[attr-defined]
            if not peek:
                raise PeerClosed(f"peer closed before {sep!r}", bytes(data))
            start = max(0, len(data) - len(sep) + 1)
            index = (bytes(data) + peek).find(sep, start)
            if index >= 0:
                data += self.recv_exactly(index + len(sep) - len(data))
                return bytes(data[:-len(sep)])
            data += self.recv_exactly(len(peek))
            if len(data) > limit:
                raise ValueError(f"no {sep!r} in the first {len(data)} bytes")

    def recv_all(self) -> bytes:
        """Everything until the peer closes."""
        data = bytearray()
        while True:
            chunk = self.recv(65536)  # type: ignore[attr-defined]
            if not chunk:
                return bytes(data)
            data += chunk


_PEER_CLASSES: Dict[bool, type] = {}
_DEFAULT: Any = object()


def _peer_class(cooperative: bool) -> type:
    cls = _PEER_CLASSES.get(cooperative)
    if cls is None:
        if cooperative:
            import gevent.socket
            base = gevent.socket.socket
        else:
            from gevent.monkey import get_original
            base = get_original("socket", "socket")
        cls = type("PeerSocket", (_PeerMixin, base), {"__module__": __name__})
        _PEER_CLASSES[cooperative] = cls
    return cls


def _split_address(host: Union[str, int, Tuple[str, int]],
                   port: Optional[int]) -> Tuple[str, int]:
    if isinstance(host, tuple):
        return str(host[0]), int(host[1])
    if isinstance(host, int) and port is None:
        return "127.0.0.1", host
    if isinstance(host, str) and port is None:
        name, _, number = host.rpartition(":")
        if not name or not number.isdigit():
            raise ValueError(f"expected 'host:port', got {host!r}")
        return name.strip("[]"), int(number)
    if port is None:
        raise ValueError("port is required")
    return str(host).strip("[]"), int(port)


class TcpPeerFactory:
    """The ``tcp_peer`` fixture: ``tcp_peer(port)``, ``tcp_peer("host", port)``,
    ``tcp_peer("host:port")`` or ``tcp_peer((host, port))`` returns a
    connected blocking client socket with a timeout (default
    :data:`PEER_TIMEOUT`), closed after the test.

    It is a gevent socket by default (``cooperative=True``): the same stdlib
    socket API, but waiting lets the hub run, which a peer in the same thread
    as the server under test needs. ``cooperative=False`` gives the original
    stdlib socket, for servers running in another thread or process. Sockets
    also have ``recv_exactly(n)``, ``recv_until(sep)`` and ``recv_all()``.
    """

    def __init__(self, timeout: Optional[float] = PEER_TIMEOUT,
                 cooperative: bool = True) -> None:
        self.timeout = timeout
        self.cooperative = cooperative
        self.sockets: List["_socket_mod.socket"] = []

    def __call__(self, host: Union[str, int, Tuple[str, int]], port: Optional[int] = None,
                 *, timeout: Any = _DEFAULT, cooperative: Optional[bool] = None) -> Any:
        """Connect and return the peer socket; ``timeout`` (seconds, None =
        no timeout) and ``cooperative`` default to the factory's."""
        import _socket

        address = _split_address(host, port)
        coop = self.cooperative if cooperative is None else cooperative
        cls = _peer_class(coop)
        seconds = self.timeout if timeout is _DEFAULT else timeout
        try:  # numeric addresses need no resolver (and no resolver threads)
            infos = _socket.getaddrinfo(address[0], address[1], 0, _socket.SOCK_STREAM,
                                        0, _socket.AI_NUMERICHOST)
        except _socket.gaierror:
            if coop:
                from gevent.socket import getaddrinfo
            else:
                from gevent.monkey import get_original
                getaddrinfo = get_original("socket", "getaddrinfo")
            infos = getaddrinfo(address[0], address[1], 0, _socket.SOCK_STREAM)
        last_error: Optional[OSError] = None
        for family, kind, proto, _, sockaddr in infos:
            sock = cls(family, kind, proto)
            sock.settimeout(seconds)
            try:
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            self.sockets.append(sock)
            return sock
        raise last_error if last_error is not None else OSError(f"cannot resolve {address}")

    def close_all(self) -> None:
        """Close every socket this factory made."""
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                logger.debug("closing peer socket failed", exc_info=True)
        self.sockets.clear()
