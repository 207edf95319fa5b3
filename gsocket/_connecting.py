"""A TCP connection being made: ``connect`` tries each resolved address in
turn with a non-blocking connect; the write watcher says when it is done.
Once connected the slot is an ordinary stream (:mod:`gsocket._stream`)."""

from __future__ import annotations

import errno
import os
from typing import Any, List, Optional, Sequence

import _socket

from .events import SOCKET_ERROR, SOCKET_OPEN
from ._netutil import error_text, format_address
from ._slot import CLOSED, CLOSING, CONNECTED, CONNECTING, WRITE, SlotHost
from ._stream import StreamSlot

__all__ = ["ConnectingSlot", "open_stream"]


def open_stream(address_info: Sequence[Any]) -> Any:
    """A non-blocking TCP socket with SO_KEEPALIVE for one getaddrinfo
    entry. Raises OSError; never blocks."""
    family, socktype, proto, _, _ = address_info
    sock = _socket.socket(family, socktype, proto)
    sock.setblocking(False)
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, 1)
    return sock


class ConnectingSlot(StreamSlot):
    """A connection from ``connect``/``block_connect``: CONNECTING until
    the connect is done (OPEN) or every address failed (ERROR); data sent
    meanwhile is queued and flushed once connected."""

    __slots__ = ("connect_addresses", "connect_paused")

    def __init__(self, host: SlotHost, opaque: int, sock: Any = None) -> None:
        StreamSlot.__init__(self, host, opaque, CONNECTING, sock)
        self.connect_addresses: List[Any] = []
        #: pause() came before the connect finished: do not read once connected.
        self.connect_paused = False

    def start(self, handed_over: bool) -> None:
        if self.state is CONNECTING:   # reading starts when the connection is up
            self.connect_paused = False
        else:
            StreamSlot.start(self, handed_over)

    def resume(self) -> None:
        if self.state is CONNECTING:
            self.connect_paused = False
        else:
            StreamSlot.resume(self)

    def pause(self) -> None:
        self.stop_reading()
        if self.state is CONNECTING:
            self.connect_paused = True   # keep it paused once connected

    # ------------------------------------------------------------------ connecting

    def resolved(self, addresses: Sequence[Any]) -> None:
        """The host name resolved (in a greenlet): connect, unless the id
        was closed meanwhile."""
        state = self.state
        if state is CONNECTING or state is CLOSING:
            self.connect_addresses = list(addresses)
            self.connect_next(None)

    def resolve_failed(self, err: OSError) -> None:
        """The host name did not resolve: ERROR, then close."""
        state = self.state
        if state is CONNECTING or state is CLOSING:
            self.message(SOCKET_ERROR, 0, str(err.args[-1]) if err.args else str(err))
            self.force_close(report=False)

    def connect_next(self, last_error: Optional[BaseException]) -> bool:
        """Try the next resolved address; True when it connected at once.
        ERROR and close when none is left."""
        while self.connect_addresses:
            info = self.connect_addresses.pop(0)
            try:
                sock = open_stream(info)
            except OSError as err:
                last_error = err
                continue
            code = sock.connect_ex(info[4])
            if code in (0, errno.EINPROGRESS, errno.EAGAIN):
                self.adopt(sock)
                if code == 0:
                    self.connected()
                    return True
                self.watch_connect()
                return False
            sock.close()
            last_error = OSError(code, os.strerror(code))
        if self.state is CONNECTING:   # CLOSING: the owner heard CLOSE already
            self.message(SOCKET_ERROR, 0, error_text(last_error) if last_error else "connect failed")
        self.force_close(report=False)
        return False

    def adopt(self, sock: Any) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.family = sock.family
        self.recv = sock.recv
        self.write_one = sock.send

    def watch_connect(self) -> None:
        """Run the write watcher for the connect in flight."""
        watcher = self.write_watcher
        if watcher is None:
            watcher = self.write_watcher = self.host.loop.io(self.fd, WRITE)
        watcher.start(self.on_connect_writable)
        self.writing = True

    def on_connect_writable(self) -> None:
        """The write watcher's callback while the connect is in flight."""
        code = self.sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        if code:
            self.stop_writing()
            if self.write_watcher is not None:
                self.write_watcher.close()
                self.write_watcher = None
            self.sock.close()
            self.sock = None
            if not self.connect_next(OSError(code, os.strerror(code))):
                return
        else:
            self.connected()
        if self.state is not CLOSED:
            self.on_writable()   # flush what was queued meanwhile, now

    def connected(self) -> None:
        """The connect is done: OPEN (peer "host:port"), then read and flush."""
        try:
            self.name = format_address(self.sock.getpeername())
        except OSError:
            self.name = ""
        closing = self.state is CLOSING
        if not closing:   # close() before the connect finished said CLOSE already
            self.state = CONNECTED
            self.message(SOCKET_OPEN, 0, self.name)
        elif not self.pending_bytes:
            self.force_close(report=False)
            return
        if not closing and not self.connect_paused:
            self.start_reading()
        if self.pending_bytes:
            self.stop_writing()    # the connect's watcher becomes the writer
            self.start_writing()
        else:
            self.stop_writing()
