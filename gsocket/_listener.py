"""A listening TCP socket: PLISTEN until ``start``, then LISTEN, accepting
up to ACCEPT_BATCH connections per wake-up; each becomes a PACCEPT stream
slot and an ACCEPT event. Out of fds, it refuses one client with the
reserve fd (so a level-triggered listener does not spin), or pauses."""

from __future__ import annotations

import errno
import os
from typing import Any, Optional

import _socket

from .events import SOCKET_ACCEPT, SOCKET_ERROR, SOCKET_OPEN, SocketMessage
from ._netutil import WOULD_BLOCK, error_text, format_address, logger
from ._slot import LISTEN, PACCEPT, PLISTEN, Slot, SlotHost, State
from ._stream import StreamSlot

__all__ = ["ListenerSlot", "ReserveFd", "ACCEPT_BATCH", "ACCEPT_RETRY_DELAY"]

#: Connections accepted per readable event on a listener.
ACCEPT_BATCH = 32
#: How long a listener stops accepting when fds are exhausted and the
#: reserve fd could not be used (avoids a busy loop on a level-triggered fd).
ACCEPT_RETRY_DELAY = 0.1

_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class ReserveFd:
    """One fd kept open on /dev/null, shared by a server's listeners: freed
    when fds run out, so that one pending client can be accepted and
    refused."""

    __slots__ = ("fd",)

    def __init__(self) -> None:
        self.fd: Optional[int] = None
        self.reopen()

    def reopen(self) -> None:
        """Open the reserve fd again if it is not open (and fds allow)."""
        if self.fd is None:
            try:
                self.fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self.fd = None

    def close(self) -> None:
        """Close the reserve fd (release)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def refuse_one(self, sock: Any) -> bool:
        """Use the reserve fd to accept and close one pending client of
        ``sock``; True when the reserve fd could be opened again."""
        if self.fd is None:
            return False
        self.close()
        try:
            fd, _ = sock._accept()
            os.close(fd)
        except OSError:
            pass
        self.reopen()
        return self.fd is not None


class ListenerSlot(Slot):
    """A listening socket from ``listen``."""

    __slots__ = ("reserve", "accept_pause_timer")

    def __init__(self, host: SlotHost, opaque: int, sock: Any, reserve: ReserveFd) -> None:
        Slot.__init__(self, host, opaque, PLISTEN, sock)
        self.reserve = reserve
        self.accept_pause_timer: Any = None

    def netstat_type(self) -> str:
        return "LISTEN"

    def address(self) -> Any:
        return self.sock.getsockname()

    def send(self, data: Any, low_priority: bool) -> bool:
        logger.warning("send to listening socket %d dropped", self.id)
        return False

    def start(self, handed_over: bool) -> None:
        state = self.state
        if state is PLISTEN:
            self.state = LISTEN
            self.start_reading()
            self.message(SOCKET_OPEN, 0, "start")
        elif state is LISTEN:
            if self.accept_pause_timer is None:
                self.start_reading()
            if handed_over:
                self.message(SOCKET_OPEN, 0, "transfer")

    def pause(self) -> None:
        self.stop_reading()
        self.stop_timer()   # out-of-fds back-off: the user's pause wins

    def on_readable(self) -> None:
        sock = self.sock
        host = self.host
        for _ in range(ACCEPT_BATCH):
            try:
                fd, address = sock._accept()
            except WOULD_BLOCK:
                return
            except OSError as err:
                if err.errno in _OUT_OF_FDS:
                    self.out_of_fds(err)
                # ECONNABORTED and friends: that client is gone; go on.
                return
            conn = _socket.socket(sock.family, _socket.SOCK_STREAM, 0, fd)
            try:
                conn.setblocking(False)
                conn.setsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, 1)
                slot = host.register(self.new_stream(conn))
            except OSError as err:
                conn.close()
                logger.warning("accept on %d: dropping connection: %s", self.id, err)
                continue
            slot.name = format_address(address)
            self.bytes_read += 1
            self.emit(SocketMessage(SOCKET_ACCEPT, self.id, self.opaque, slot.id, slot.name))

    def new_stream(self, conn: Any) -> Slot:
        """The slot of an accepted connection (TLS listeners make TLS slots)."""
        return StreamSlot(self.host, self.opaque, PACCEPT, conn)

    def out_of_fds(self, err: OSError) -> None:
        """EMFILE/ENFILE: report, then refuse one pending client with the
        reserve fd so the listener is not woken again and again."""
        self.message(SOCKET_ERROR, 0, error_text(err))
        if self.reserve.refuse_one(self.sock):
            return
        # No reserve fd: stop accepting for a moment instead of spinning.
        self.stop_reading()
        timer = self.accept_pause_timer = self.host.loop.timer(ACCEPT_RETRY_DELAY)
        timer.start(self.resume_accept)

    def resume_accept(self) -> None:
        timer = self.accept_pause_timer
        if timer is not None:
            timer.close()
            self.accept_pause_timer = None
        self.reserve.reopen()
        if self.state is LISTEN:
            self.start_reading()

    def stop_timer(self) -> None:
        timer = self.accept_pause_timer
        if timer is not None:
            timer.stop()
            timer.close()
            self.accept_pause_timer = None

    def close_fd(self, last_state: State, drain: int) -> None:
        self.stop_timer()
        Slot.close_fd(self, last_state, drain)
