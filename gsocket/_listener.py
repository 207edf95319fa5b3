"""A listening TCP socket: PLISTEN until ``start``, then LISTEN, accepting
up to ACCEPT_BATCH connections per wake-up; each becomes a PACCEPT stream
slot and an ACCEPT event. Out of fds, it refuses one client with the
reserve fd (so a level-triggered listener does not spin), or pauses.

With limits (:meth:`ListenerSlot.set_limits`) it keeps the connections it
accepted: at ``max_children`` live ones it stops accepting (new peers wait
in the kernel's backlog) until one closes, and a sweep closes those that
received nothing for ``idle_timeout`` seconds."""

from __future__ import annotations

import errno
import os
from typing import Any, List, Optional, Set, Tuple

import _socket

from .events import SOCKET_ACCEPT, SOCKET_ERROR, SOCKET_OPEN, SocketMessage, new_message
from ._netutil import WOULD_BLOCK, error_text, format_address, logger
from ._slot import CLOSED, LISTEN, PACCEPT, PLISTEN, Slot, SlotHost, State
from ._stream import StreamSlot
from . import _unix

__all__ = ["ListenerSlot", "ReserveFd", "ACCEPT_BATCH", "ACCEPT_RETRY_DELAY", "IDLE_SWEEPS"]

#: Connections accepted per readable event on a listener.
ACCEPT_BATCH = 32
#: How long a listener stops accepting when fds are exhausted and the
#: reserve fd could not be used (avoids a busy loop on a level-triggered fd).
ACCEPT_RETRY_DELAY = 0.1

#: Idle sweeps per idle_timeout: a silent connection is closed between
#: idle_timeout and idle_timeout * (1 + 1 / IDLE_SWEEPS) seconds.
IDLE_SWEEPS = 4

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

    __slots__ = ("reserve", "accept_pause_timer", "children", "max_children", "idle_timeout",
                 "idle_timer", "full", "user_paused", "unix_file")

    def __init__(self, host: SlotHost, opaque: int, sock: Any, reserve: ReserveFd) -> None:
        Slot.__init__(self, host, opaque, PLISTEN, sock)
        self.reserve = reserve
        self.accept_pause_timer: Any = None
        #: Live connections accepted through this listener (kept only with limits).
        self.children: Optional[Set[StreamSlot]] = None
        self.max_children: Optional[int] = None
        self.idle_timeout: Optional[float] = None
        self.idle_timer: Any = None
        self.full = False          # not accepting: max_children are alive
        self.user_paused = False   # pause() was called: only start() resumes
        #: (path, inode) of the unix socket file this listener made.
        self.unix_file: Optional[Tuple[str, int]] = None

    def netstat_type(self) -> str:
        return "LISTEN"

    def address(self) -> Any:
        return self.sock.getsockname()

    def send(self, data: Any, low_priority: bool) -> bool:
        logger.warning("send to listening socket %d dropped", self.id)
        return False

    def start(self, handed_over: bool) -> None:
        state = self.state
        self.user_paused = False
        if state is PLISTEN:
            self.state = LISTEN
            if not self.full:
                self.start_reading()
            self.message(SOCKET_OPEN, 0, "start")
        elif state is LISTEN:
            if self.accept_pause_timer is None and not self.full:
                self.start_reading()
            if handed_over:
                self.message(SOCKET_OPEN, 0, "transfer")

    def pause(self) -> None:
        self.user_paused = True
        self.stop_reading()
        self.stop_timer()   # out-of-fds back-off: the user's pause wins

    def resume(self) -> None:
        if self.state is LISTEN and not self.full and self.accept_pause_timer is None:
            self.user_paused = False
            self.start_reading()

    # ------------------------------------------------------------------ limits

    def set_limits(self, max_children: Optional[int], idle_timeout: Optional[float]) -> None:
        """Keep the connections accepted from now on; accept at most
        ``max_children`` live ones; close those silent for ``idle_timeout`` s."""
        if self.children is None:
            self.children = set()
        self.max_children = max_children
        self.idle_timeout = idle_timeout
        self.stop_idle_timer()
        if idle_timeout is not None:
            period = idle_timeout / IDLE_SWEEPS
            timer = self.idle_timer = self.host.loop.timer(period, period)
            timer.start(self.sweep_idle)
        self.check_full()

    def stop_idle_timer(self) -> None:
        timer = self.idle_timer
        if timer is not None:
            timer.stop()
            timer.close()
            self.idle_timer = None

    def child_ids(self) -> List[int]:
        """Ids of the live connections accepted through this listener (with limits)."""
        return sorted(child.id for child in self.children or ())

    def child_closed(self, child: StreamSlot) -> None:
        children = self.children
        if children is not None:
            children.discard(child)
            if self.full:
                self.check_full()
            if not children and self.state is CLOSED:
                self.stop_idle_timer()

    def check_full(self) -> None:
        limit = self.max_children
        full = limit is not None and len(self.children or ()) >= limit
        if full == self.full:
            return
        self.full = full
        if full:
            self.stop_reading()
        elif (self.state is LISTEN and not self.user_paused and self.accept_pause_timer is None):
            self.start_reading()

    def sweep_idle(self) -> None:
        timeout = self.idle_timeout
        if timeout is None or not self.children:
            return
        now = self.host.loop.now()
        for child in [c for c in self.children if now - c.rtime >= timeout]:
            logger.info("socket %d (%s): idle for %g s, closing", child.id, child.name, timeout)
            child.close()

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
            children = self.children
            if children is not None:
                slot.rtime = host.loop.now()
                slot.parent = self
                children.add(slot)
            self.emit(new_message(SocketMessage, (SOCKET_ACCEPT, self.id, self.opaque, slot.id,
                                                  slot.name, None)))
            if children is not None and self.max_children is not None \
                    and len(children) >= self.max_children:
                self.check_full()
                return

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
        if self.state is LISTEN and not self.full and not self.user_paused:
            self.start_reading()

    def stop_timer(self) -> None:
        timer = self.accept_pause_timer
        if timer is not None:
            timer.stop()
            timer.close()
            self.accept_pause_timer = None

    def close_fd(self, last_state: State, drain: int) -> None:
        self.stop_timer()
        if not self.children:   # else the sweep goes on for the connections left
            self.stop_idle_timer()
        Slot.close_fd(self, last_state, drain)
        if self.unix_file is not None:
            _unix.remove(*self.unix_file)
            self.unix_file = None


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_listener")
