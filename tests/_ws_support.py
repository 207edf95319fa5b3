"""Helpers for the WebSocket tests: a gsocket WebSocket server on an ephemeral
port, a handler that records its callbacks, and raw-socket handshakes.

The independent peer is the ``websockets`` package, whose sync client and
server run in real OS threads (gsocket owns the gevent hub in the test).
"""

from __future__ import annotations

import base64
import os
import socket as stdlib_socket
import struct
from typing import Any, Callable, List, Optional, Tuple

import gevent
import gevent.socket

from gsocket import socket as gs
from gsocket import websocket

#: Seconds any single wait in these tests may take.
WAIT = 10.0


class Recorder:
    """A websocket handler that records every callback as a tuple; with
    ``echo`` it writes each message back with the same kind."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.calls: List[Tuple[Any, ...]] = []

    def connect(self, socket_id: int) -> None:
        self.calls.append(("connect",))

    def handshake(self, socket_id: int, headers: dict, path: str) -> None:
        self.calls.append(("handshake", path, headers.get("upgrade", "").lower()))

    def message(self, socket_id: int, data: Any, kind: str) -> None:
        self.calls.append(("message", data, kind))
        if self.echo:
            websocket.write(socket_id, data, kind)

    def ping(self, socket_id: int, data: bytes) -> None:
        self.calls.append(("ping", data))

    def pong(self, socket_id: int, data: bytes) -> None:
        self.calls.append(("pong", data))

    def close(self, socket_id: int, code: int, reason: str) -> None:
        self.calls.append(("close", code, reason))

    def error(self, socket_id: int, exc: Exception) -> None:
        self.calls.append(("error", getattr(exc, "code", None)))

    def of(self, name: str) -> List[Tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]


class WsServer:
    """gsocket WebSocket server: each accepted id runs
    ``websocket.accept(id, handler, **accept_kwargs)`` in its own greenlet
    (handler None: ``serve(id)`` runs after a successful accept instead).
    ``results`` holds what accept returned, ``ids`` the accepted ids."""

    def __init__(self, handler: Optional[Callable[[], Any]] = Recorder,
                 serve: Optional[Callable[[int], None]] = None, ssl_context: Any = None,
                 **accept_kwargs: Any) -> None:
        self.handler_factory = handler
        self.serve = serve
        self.kwargs = accept_kwargs
        self.handlers: List[Any] = []
        self.results: List[bool] = []
        self.ids: List[int] = []
        self.greenlets: List[gevent.Greenlet] = []
        self.scheme = "ws" if ssl_context is None else "wss"
        self.listen_id = gs.listen("127.0.0.1", 0, ssl_context=ssl_context)
        self.port = gs.address(self.listen_id)[1]
        gs.start(self.listen_id, self._on_accept)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _on_accept(self, socket_id: int, address: str) -> None:
        self.ids.append(socket_id)
        self.greenlets.append(gevent.spawn(self._run, socket_id))

    def _run(self, socket_id: int) -> None:
        gs.start(socket_id)
        handler = self.handler_factory() if self.handler_factory is not None else None
        self.handlers.append(handler)
        ok = websocket.accept(socket_id, handler, **self.kwargs)
        self.results.append(ok)
        if ok and self.serve is not None:
            self.serve(socket_id)

    def wait_done(self, count: int = 1, timeout: float = WAIT) -> None:
        """Wait until ``count`` accept calls (and serve) have returned."""
        with gevent.Timeout(timeout, AssertionError(f"{count} server loops not done in {timeout} s")):
            while len([g for g in self.greenlets if g.dead]) < count:
                gevent.sleep(0.005)

    def close(self) -> None:
        gs.close(self.listen_id)
        done = gevent.joinall(self.greenlets, timeout=WAIT)
        assert len(done) == len(self.greenlets), "a server loop did not finish"
        for greenlet in self.greenlets:
            if greenlet.exception is not None:
                raise greenlet.exception

    def __enter__(self) -> "WsServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def upgrade_request(port: int, path: str = "/", extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


def raw_handshake(sock: Any, port: int, path: str = "/") -> bytes:
    """Send an upgrade request on a connected socket and read the response
    head; returns it (the status line first; a refusal may carry its body)."""
    sock.sendall(upgrade_request(port, path))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"closed during the handshake: {head!r}"
        head += chunk
    if head.startswith(b"HTTP/1.1 101 "):
        assert head.endswith(b"\r\n\r\n"), "the server sent frames before we did"
    return head


def masked_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame (masked, as RFC 6455 requires)."""
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def close_code_of(frames: bytes) -> Optional[int]:
    """The code of the first (unmasked, server) close frame in ``frames``."""
    i = 0
    while i + 2 <= len(frames):
        opcode = frames[i] & 0x0F
        n = frames[i + 1] & 0x7F
        j = i + 2
        if n == 126:
            n = struct.unpack("!H", frames[j:j + 2])[0]
            j += 2
        elif n == 127:
            n = struct.unpack("!Q", frames[j:j + 8])[0]
            j += 8
        if opcode == 0x8:
            return struct.unpack("!H", frames[j:j + 2])[0] if n >= 2 else 1005
        i = j + n
    return None


def gevent_client(port: int) -> Any:
    """A gevent TCP socket connected to 127.0.0.1:port (cooperative)."""
    sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
    return sock

