"""Gate: a framed TCP server with callbacks (skynet's snax.gateserver).

    from gsocket import gate

    class Echo:
        def connect(self, id, addr):
            g.openclient(id)                    # start reading it, as in skynet
        def message(self, id, data):
            g.send(id, data)                    # framed with netpack

    g = gate.Gate(Echo(), "127.0.0.1", 8888, maxclient=1024)
    listen_id = g.start()

Theory of operation
-------------------
A :class:`Gate` is a :class:`gsocket.driver.Driver` owner: it listens with
the driver, receives raw events for its listener and for every connection
accepted through it (they share its opaque), frames each connection's bytes
with its own :class:`gsocket.netpack.Decoder` (skynet's netpack.filter), and
calls the handler. Writes go straight to the driver.

Every callback for one client (``connect``, ``message``, ``error``,
``disconnect``, ``warning``) goes through that client's mailbox, a FIFO
drained by whichever greenlet found it idle, normally the driver's
dispatcher. A callback that blocks hands the dispatcher role to a new
greenlet (the driver does that), so other clients keep flowing; events of
the blocked client that arrive meanwhile are only queued, and the greenlet
that is blocked delivers them, in order, once its callback returns. So the
frames of one client reach ``message`` in order, one at a time, even when
it blocks (skynet's gateserver may run them at once, out of order). While
more than :data:`MAILBOX_LIMIT` bytes of frames wait in a mailbox, the gate
stops reading that client; it reads again once the mailbox is empty.

Clients are counted from their accept until their close is seen: with
``maxclient`` counted, the next connection is closed at once, with no
callback, and logged with the running count (``refused``). A client is
only ever told ``disconnect`` after ``connect``. After ``disconnect``
returns the gate closes the socket (gracefully: what was sent is flushed)
and forgets the id, so no socket is left half-closed.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Deque, Dict, Optional, Tuple

from . import driver as _driver
from . import netpack
from .events import (
    SKYNET_SOCKET_TYPE_ACCEPT, SKYNET_SOCKET_TYPE_CLOSE, SKYNET_SOCKET_TYPE_CONNECT,
    SKYNET_SOCKET_TYPE_DATA, SKYNET_SOCKET_TYPE_ERROR, SKYNET_SOCKET_TYPE_WARNING, SocketMessage,
)

__all__ = ["Gate", "MAILBOX_LIMIT"]

logger = logging.getLogger("gsocket.gate")

#: Bytes of undelivered frames per client above which the gate stops
#: reading that client (the same figure as gsocket.socket's BUFFER_LIMIT).
MAILBOX_LIMIT = 128 * 1024

# Client states.
_OPEN = "open"            # announced, close not seen yet (counted)
_CLOSING = "closing"      # closeclient() called, close not seen yet (counted)
_GONE = "gone"            # close seen: disconnect queued or delivered
_ABANDONED = "abandoned"  # handed to another owner


class _Client:
    __slots__ = ("id", "address", "state", "opened", "decoder", "mailbox", "busy",
                 "queued_bytes", "paused", "broken", "dropping")

    def __init__(self, socket_id: int, address: str, decoder: netpack.Decoder) -> None:
        self.id = socket_id
        self.address = address
        self.state = _OPEN
        self.opened = False
        self.decoder = decoder
        self.mailbox: Deque[Tuple[str, Tuple[Any, ...]]] = deque()
        self.busy = False
        self.queued_bytes = 0
        self.paused = False
        self.broken = False     # the decoder failed: later bytes are ignored
        self.dropping = False   # closed by us: undelivered frames are dropped


class Gate:
    """A framed TCP server calling ``handler`` (see the module docstring).

    ``handler`` is any object; each callback is optional: ``open()``,
    ``connect(id, addr)``, ``message(id, data)``, ``disconnect(id)``,
    ``error(id, msg)``, ``warning(id, kib)``. Keyword-only: ``header`` (2 or
    4 bytes of length), ``max_packet`` (largest frame accepted, default
    the netpack default for the header), ``backlog``, ``driver`` (default:
    the hub's default driver when ``start`` runs).
    """

    def __init__(self, handler: Any, host: Optional[str], port: int, maxclient: int = 1024,
                 nodelay: bool = False, *, header: int = 2, max_packet: Optional[int] = None,
                 backlog: int = 32, driver: Optional[_driver.Driver] = None) -> None:
        if isinstance(maxclient, bool) or not isinstance(maxclient, int) or maxclient < 0:
            raise ValueError(f"maxclient must be an int >= 0, got {maxclient!r}")
        netpack.Decoder(header, max_packet)   # validates header and max_packet now
        self.handler = handler
        self.host = host
        self.port = port
        self.maxclient = maxclient
        self.nodelay = bool(nodelay)
        self.header = header
        self.max_packet = max_packet
        self.backlog = backlog
        self.driver = driver
        #: Connections closed at once because ``maxclient`` were connected.
        self.refused = 0
        self.listen_id: Optional[int] = None
        self._opaque: Optional[int] = None
        self._clients: Dict[int, _Client] = {}
        self._count = 0
        self._closed = False
        self._callbacks: Dict[str, Optional[Callable[..., Any]]] = {
            name: getattr(handler, name, None)
            for name in ("connect", "message", "disconnect", "error", "warning")
        }

    # ------------------------------------------------------------------ public API

    def start(self) -> int:
        """Listen, call ``handler.open()``, then start accepting; return the
        listen id. The port is bound before ``open`` runs (``address`` works
        there) and no ``connect`` can come before ``open`` returns. Raises
        OSError if the address cannot be bound. Blocks only if ``open`` does."""
        if self._opaque is not None:
            raise RuntimeError("this Gate was already started")
        driver = self.driver = self.driver if self.driver is not None else _driver.default()
        self._opaque = driver.register(self._on_event)
        try:
            self.listen_id = driver.listen(self.host, self.port, self.backlog, self._opaque)
        except BaseException:
            driver.unregister(self._opaque)
            raise
        logger.info("gate listening on %s:%d", *self.address)
        opener = getattr(self.handler, "open", None)
        if opener is not None:
            try:
                opener()
            except BaseException:      # no half-started gate: release the port
                driver.close(self.listen_id)
                driver.unregister(self._opaque)
                self.listen_id = None
                self._closed = True
                raise
        if not self._closed:
            driver.start(self.listen_id, self._opaque)
        return self.listen_id

    @property
    def address(self) -> Tuple[str, int]:
        """(host, port) the gate listens on (the real port when 0 was asked)."""
        if self.driver is None or self.listen_id is None:
            raise RuntimeError("the gate is not listening")
        address = self.driver.server.address(self.listen_id)
        if address is None:
            raise RuntimeError("the gate is not listening")
        return address

    @property
    def client_count(self) -> int:
        """Clients counted against ``maxclient`` now."""
        return self._count

    def openclient(self, socket_id: int) -> None:
        """Start reading a client announced by ``connect`` (call it from
        there, as in skynet). Ignored for unknown, closing or closed ids,
        and for clients already opened. Never blocks."""
        client = self._clients.get(socket_id)
        if client is None or client.state != _OPEN or client.opened:
            return
        client.opened = True
        assert self.driver is not None
        self.driver.start(socket_id, self._opaque)

    def closeclient(self, socket_id: int) -> None:
        """Close a client gracefully (what was sent is flushed first). Its
        frames not yet delivered are dropped (logged); ``disconnect``
        follows. Ignored for unknown ids. Never blocks."""
        client = self._clients.get(socket_id)
        if client is None or client.state != _OPEN:
            return
        client.state = _CLOSING
        client.dropping = True
        assert self.driver is not None
        self.driver.close(socket_id)

    def send(self, socket_id: int, payload: Any) -> bool:
        """Frame ``payload`` with netpack and queue it for the client; never
        blocks. False when the id is not a live client of this gate (or
        already closing); ValueError if the payload is too long for the
        header."""
        frame = netpack.pack(payload, self.header)
        client = self._clients.get(socket_id)
        if client is None or client.state != _OPEN or self.driver is None:
            return False
        return self.driver.send(socket_id, frame)

    def abandon(self, socket_id: int) -> None:
        """Hand a client to another owner without closing it: the gate
        forgets it (no more callbacks, no longer counted toward
        ``maxclient``, not closed by ``close``). Only before ``openclient``:
        the gate has read nothing, so every byte the client sent waits in
        the kernel for the new owner (``gsocket.socket.start(id)``).
        RuntimeError once opened; ignored for unknown ids."""
        client = self._clients.get(socket_id)
        if client is None or client.state != _OPEN:
            return
        if client.opened:
            raise RuntimeError(f"gate client {socket_id} was opened: it can no longer be abandoned")
        client.state = _ABANDONED
        client.mailbox.clear()
        self._count -= 1
        del self._clients[socket_id]

    def close(self) -> None:
        """Stop listening and close every client gracefully; each announced
        client then gets ``disconnect`` once. Never blocks; the gate stops
        routing events once every client is gone."""
        if self._closed:
            return
        self._closed = True
        driver = self.driver
        if driver is None or self._opaque is None:
            return
        if self.listen_id is not None:
            driver.close(self.listen_id)
        for client in list(self._clients.values()):
            if client.state == _OPEN:
                client.state = _CLOSING
                client.dropping = True
                driver.close(client.id)
        self._maybe_unregister()

    # ------------------------------------------------------------------ events (in the dispatcher)

    def _on_event(self, kind: int, message: SocketMessage) -> None:
        if kind == SKYNET_SOCKET_TYPE_DATA:
            self._on_data(message)
        elif kind == SKYNET_SOCKET_TYPE_ACCEPT:
            self._on_accept(message)
        elif kind == SKYNET_SOCKET_TYPE_CLOSE:
            self._on_close(message)
        elif kind == SKYNET_SOCKET_TYPE_ERROR:
            self._on_error(message)
        elif kind == SKYNET_SOCKET_TYPE_WARNING:
            client = self._clients.get(message.id)
            if client is not None and client.state in (_OPEN, _CLOSING):
                self._post(client, "warning", (message.id, message.ud))
        elif kind == SKYNET_SOCKET_TYPE_CONNECT:
            pass   # OPEN "start" / "transfer": nothing to do
        # UDP: a gate has no UDP sockets.

    def _on_accept(self, message: SocketMessage) -> None:
        driver = self.driver
        assert driver is not None
        socket_id = message.ud
        address = str(message.data)
        if self._closed or self._count >= self.maxclient:
            driver.shutdown(socket_id)
            if not self._closed:
                self.refused += 1
                logger.info("gate: %d clients (maxclient), refused %s (id %d); %d refused so far",
                            self._count, address, socket_id, self.refused)
            return
        self._count += 1
        if self.nodelay:
            driver.nodelay(socket_id)
        client = _Client(socket_id, address, netpack.Decoder(self.header, self.max_packet))
        self._clients[socket_id] = client
        self._post(client, "connect", (socket_id, address))

    def _on_data(self, message: SocketMessage) -> None:
        client = self._clients.get(message.id)
        if client is None or client.broken:
            return
        if client.state != _OPEN:
            logger.debug("gate: drop %d bytes from closing client %d", message.ud, message.id)
            return
        data: bytes = message.data  # type: ignore[assignment]  # DATA carries bytes
        try:
            frames = client.decoder.feed(data)
        except netpack.PacketTooLarge as exc:
            client.broken = True
            for frame in exc.packets:
                self._queue_frame(client, frame)
            logger.warning("gate: client %d (%s): %s", client.id, client.address, exc)
            client.mailbox.append(("error", (client.id, str(exc))))
            assert self.driver is not None
            self.driver.shutdown(client.id)   # then CLOSE -> disconnect
            self._drain_if_idle(client)
            return
        for frame in frames:
            self._queue_frame(client, frame)
        if client.queued_bytes > MAILBOX_LIMIT and not client.paused:
            client.paused = True
            assert self.driver is not None
            self.driver.pause(client.id)
        self._drain_if_idle(client)

    def _queue_frame(self, client: _Client, frame: bytes) -> None:
        client.mailbox.append(("message", (client.id, frame)))
        client.queued_bytes += len(frame)

    def _on_close(self, message: SocketMessage) -> None:
        socket_id = message.id
        if socket_id == self.listen_id:
            logger.info("gate: listener %d closed", socket_id)
            self.listen_id = None
            self._closed = True
            self._maybe_unregister()
            return
        client = self._clients.get(socket_id)
        if client is None or client.state not in (_OPEN, _CLOSING):
            return   # refused, abandoned, or already seen
        client.state = _GONE
        self._count -= 1
        self._post(client, "disconnect", (socket_id,))

    def _on_error(self, message: SocketMessage) -> None:
        socket_id = message.id
        driver = self.driver
        assert driver is not None
        if socket_id == self.listen_id:
            logger.warning("gate: accept error on %d: %s", socket_id, message.data)
            return
        client = self._clients.get(socket_id)
        if client is None or client.state not in (_OPEN, _CLOSING):
            return
        driver.shutdown(socket_id)   # CLOSE follows: error, then disconnect
        if not client.broken:
            self._post(client, "error", (socket_id, str(message.data)))

    # ------------------------------------------------------------------ mailboxes

    def _post(self, client: _Client, name: str, args: Tuple[Any, ...]) -> None:
        client.mailbox.append((name, args))
        self._drain_if_idle(client)

    def _drain_if_idle(self, client: _Client) -> None:
        if not client.busy:
            self._drain(client)

    def _drain(self, client: _Client) -> None:
        """Deliver the client's queued callbacks one at a time, in order.
        Runs in the greenlet that found the mailbox idle; if a callback
        blocks, events posted meanwhile wait here for it."""
        client.busy = True
        mailbox = client.mailbox
        callbacks = self._callbacks
        try:
            while mailbox:
                name, args = mailbox.popleft()
                if name == "message":
                    client.queued_bytes -= len(args[1])
                    if client.dropping:
                        logger.info("gate: drop message from %d (%d bytes): client closed",
                                    client.id, len(args[1]))
                        continue
                callback = callbacks[name]
                if callback is not None:
                    try:
                        callback(*args)
                    except Exception:
                        logger.exception("gate handler %s%r failed", name, args[:1])
                if name == "disconnect":
                    self._forget(client)
        finally:
            client.busy = False
        if client.paused and client.state == _OPEN:
            client.paused = False
            assert self.driver is not None
            self.driver.start(client.id, self._opaque)   # reading again (OPEN "transfer")

    def _forget(self, client: _Client) -> None:
        """After disconnect: close the socket (flushing) and forget the id."""
        if self._clients.get(client.id) is client:
            del self._clients[client.id]
        assert self.driver is not None
        self.driver.close(client.id)
        self._maybe_unregister()

    def _maybe_unregister(self) -> None:
        if (self._closed and self.listen_id is None and not self._clients
                and self._opaque is not None and self.driver is not None):
            self.driver.unregister(self._opaque)

    def __repr__(self) -> str:
        return (f"<Gate listen_id={self.listen_id} clients={self._count}/{self.maxclient} "
                f"refused={self.refused}{' closed' if self._closed else ''}>")
