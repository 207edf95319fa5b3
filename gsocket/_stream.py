"""A byte stream: a TCP connection, or an adopted fd (pipe, tty, stdin).

The reader reads with an adaptive size (64 bytes up, doubling while reads
fill it, halving when less than half is used), reads again at once while a
read fills the buffer, and pushes DATA, or CLOSE on EOF, ERROR on failure.
``send`` writes straight to the kernel while nothing is queued; leftovers go
to the high or low queue and the writer flushes them, high before low, a
started low-priority buffer before anything else.
"""

from __future__ import annotations

import os
from itertools import islice
from typing import Any, Callable, Deque, List, Optional, Tuple, Union

import _socket

from .events import SOCKET_CLOSE, SOCKET_OPEN
from ._netutil import WOULD_BLOCK, logger, peer_hung_up
from . import _slot
from ._slot import (
    BIND, CLOSED, CLOSING, CONNECTED, CONNECTING, HALFCLOSE_READ, PACCEPT, SlotHost, State,
)

# Compiled, ``Slot`` is the extension type the .pxd cimports, and an import
# statement could not bind that name; pure, this is the plain import.
locals()["Slot"] = _slot.Slot

__all__ = ["StreamSlot", "BoundSlot", "MIN_READ_BUFFER", "MAX_READ_BUFFER",
           "MAX_READS_PER_WAKEUP", "MAX_IOV"]

#: skynet socket_server.c MIN_READ_BUFFER: first and smallest read size.
MIN_READ_BUFFER = 64
#: Largest read size. skynet has no cap. Measured against 64 KiB on this
#: project's bench (bulk echo, 1 and 10 connections, interleaved): 1 MiB was
#: 10-25% faster; the size only grows while reads fill it, so pingpong and
#: idle connections never get there.
MAX_READ_BUFFER = 1024 * 1024
#: Reads in one wake-up while every read fills the buffer (fairness cap).
MAX_READS_PER_WAKEUP = 16
#: Buffers handed to one sendmsg (well below IOV_MAX = 1024).
MAX_IOV = 64

Buffer = Union[bytes, memoryview]


class StreamSlot(Slot):  # noqa: F821  (bound through locals() above)
    """A TCP connection: accepted (PACCEPT until started) or connected."""

    __slots__ = ("recv", "write_one", "read_size", "write_shut", "below_waiters",
                 "parent")

    def __init__(self, host: SlotHost, opaque: int, state: State, sock: Any = None,
                 fd: int = -1) -> None:
        Slot.__init__(self, host, opaque, state, sock, fd)  # noqa: F821
        if sock is not None:
            self.recv = sock.recv
            self.write_one = sock.send
        self.read_size = MIN_READ_BUFFER
        #: shutdown_write was called: FIN once the queue is out, no more sends.
        self.write_shut = False
        #: (below, callback) pairs waiting for pending_bytes <= below (drain).
        self.below_waiters: Optional[List[Tuple[int, Callable[[bool], None]]]] = None
        #: The listener this connection was accepted through, if it limits them.
        self.parent: Any = None

    def write_many(self, buffers: List[Buffer]) -> int:
        """Write ``buffers`` in one call (sendmsg); return the bytes written.
        A method, not a bound method kept per connection like ``recv`` and
        ``write_one``: lists are written less often, and every idle
        connection is 64 bytes smaller."""
        return self.sock.sendmsg(buffers)

    def netstat_type(self) -> str:
        state = self.state
        return "CLOSING" if state is HALFCLOSE_READ or state is CLOSING else "TCP"

    def peer_closed(self) -> bool:
        """True when the peer closed its side, also while reading is paused
        with its FIN behind unread bytes. Never blocks."""
        return self.sock is not None and peer_hung_up(self.fd)

    def start(self, handed_over: bool) -> None:
        if self.state is PACCEPT:
            self.state = CONNECTED
            self.start_reading()
            self.message(SOCKET_OPEN, 0, "start")
        else:
            Slot.start(self, handed_over)  # noqa: F821

    # ------------------------------------------------------------------ reader

    def on_readable(self) -> None:
        host = self.host
        recv = self.recv
        host.in_read = True
        try:
            for _ in range(MAX_READS_PER_WAKEUP):
                size = self.read_size
                try:
                    data = recv(size)
                except WOULD_BLOCK:
                    break
                except OSError as err:
                    self.io_error(err)
                    break
                received = len(data)
                if not received:
                    self.on_eof()
                    break
                if self.state is CLOSING:
                    continue   # close() was called: incoming bytes are discarded
                self.bytes_read += received
                self.rtime = host.loop.now()
                host.emit_data(self.id, self.opaque, data)
                if received == size:
                    if self.state is CLOSED:
                        break   # a direct DATA handler closed it (socket.limit)
                    if size < MAX_READ_BUFFER:
                        self.read_size = size * 2
                    continue
                if size > MIN_READ_BUFFER and received * 2 < size:
                    self.read_size = size // 2
                break
        finally:
            host.in_read = False
        pending = host.after_read
        if pending:
            # What host.call_soon put off (a reader woken by these bytes)
            # runs now, once this slot is left alone: it may close it.
            host.after_read = []
            for function, argument in pending:
                function(argument)

    def on_eof(self) -> None:
        self.stop_reading()
        state = self.state
        if state is CLOSING:
            if not self.pending_bytes:
                self.force_close(report=False)
            return
        if state is not HALFCLOSE_READ:
            self.state = HALFCLOSE_READ
            self.message(SOCKET_CLOSE)

    # ------------------------------------------------------------------ writer

    def send(self, data: Any, low_priority: bool) -> bool:
        """Queue or write ``data`` (a bytes-like object or a list of them)."""
        state = self.state
        if state is CLOSING or state is CLOSED or self.write_shut:
            return False
        if isinstance(data, list):
            if not data:
                return True
            total = 0
            for part in data:
                total += len(part)
        else:
            total = len(data)
            if not total:
                return True
        if self.high or self.low or state is CONNECTING:
            self.enqueue(data, low_priority, total)
            return True
        # Direct write: nothing queued, so nothing can be overtaken.
        try:
            if isinstance(data, list):
                # at most MAX_IOV buffers per sendmsg (IOV_MAX is 1024);
                # the rest is queued as leftover below
                written = self.write_many(data if len(data) <= MAX_IOV else data[:MAX_IOV])
            else:
                written = self.write_one(data)
        except WOULD_BLOCK:
            written = 0
        except OSError as err:
            self.io_error(err)
            return False
        if written:
            self.bytes_written += written
            self.wtime = self.host.loop.now()
        if written < total:
            self.enqueue_leftover(data, written)
            self.start_writing()
        return True

    def enqueue(self, data: Any, low_priority: bool, total: int) -> None:
        queue = self.queue_for(low_priority)
        if isinstance(data, list):
            for part in data:
                if len(part):
                    queue.append(_own(part))
        else:
            queue.append(_own(data))
        self.pending_bytes += total
        self.check_warning()
        if self.state is not CONNECTING:
            self.start_writing()

    def enqueue_leftover(self, data: Any, written: int) -> None:
        parts = data if isinstance(data, list) else (data,)
        high = self.queue_for(False)
        for part in parts:
            size = len(part)
            if written >= size:
                written -= size
                continue
            part = _own(part)
            if written:
                part = memoryview(part)[written:]
                written = 0
            high.append(part)
            self.pending_bytes += len(part)
        self.check_warning()

    def on_writable(self) -> None:
        if not self.flush_queue(self.high, False) or not self.flush_queue(self.low, True):
            if self.below_waiters is not None and self.state is not CLOSED:
                self.wake_below_waiters()
            return
        if self.state is CLOSED or self.high or self.low:
            return
        self.writer_drained()
        if self.below_waiters is not None:
            self.wake_below_waiters()
        if self.write_shut and self.state is not CLOSED:
            self.shut_write_now()

    # ------------------------------------------------------------------ drain and half-close

    def when_below(self, below: int, callback: Callable[[bool], None]) -> None:
        """Call ``callback(True)`` once at most ``below`` bytes are queued
        (now, if so already), ``callback(False)`` if the socket closes first."""
        if self.pending_bytes <= below:
            callback(True)
            return
        if self.below_waiters is None:
            self.below_waiters = []
        self.below_waiters.append((below, callback))

    def forget_below(self, callback: Callable[[bool], None]) -> None:
        """Drop a when_below wait (its caller gave up)."""
        waiters = self.below_waiters
        if waiters:
            waiters[:] = [pair for pair in waiters if pair[1] is not callback]
            if not waiters:
                self.below_waiters = None

    def wake_below_waiters(self, closed: bool = False) -> None:
        waiters = self.below_waiters
        if not waiters:
            return
        pending = self.pending_bytes
        keep = [(below, callback) for below, callback in waiters if not closed and pending > below]
        self.below_waiters = keep or None
        for below, callback in waiters:
            if closed or pending <= below:
                callback(not closed)

    def shutdown_write(self) -> None:
        """No more sends; the FIN goes out after every queued byte, and
        reading goes on."""
        if self.write_shut or self.state is CLOSED or self.state is CLOSING:
            return
        self.write_shut = True
        if not self.pending_bytes and self.state is not CONNECTING:
            self.shut_write_now()

    def shut_write_now(self) -> None:
        try:
            if self.sock is not None:
                self.sock.shutdown(_socket.SHUT_WR)
        except OSError as err:
            logger.debug("shutdown_write on %d: %s", self.id, err)

    def flush_queue(self, queue: Deque[Any], is_low: bool) -> bool:
        """Write ``queue`` while the kernel takes it; True when it emptied."""
        while queue:
            if len(queue) == 1:
                buffers = None
                total = len(queue[0])
            else:
                buffers = list(islice(queue, MAX_IOV))
                total = 0
                for part in buffers:
                    total += len(part)
            try:
                if buffers is None:
                    written = self.write_one(queue[0])
                else:
                    written = self.write_many(buffers)
            except WOULD_BLOCK:
                return False
            except OSError as err:
                self.io_error(err)
                return False
            self.pending_bytes -= written
            self.bytes_written += written
            self.wtime = self.host.loop.now()
            remaining = written
            while remaining:
                head = queue[0]
                size = len(head)
                if size <= remaining:
                    queue.popleft()
                    remaining -= size
                else:
                    head = memoryview(head)[remaining:]
                    remaining = 0
                    if is_low:
                        # A started low-priority buffer must finish before
                        # any later high-priority one (never split a packet).
                        queue.popleft()
                        self.queue_for(False).append(head)
                    else:
                        queue[0] = head
            if written < total:
                return False
            if is_low and self.high:
                return False
        return True

    # ------------------------------------------------------------------ close

    def close_fd(self, last_state: State, drain: int) -> None:
        if self.below_waiters is not None:
            self.wake_below_waiters(closed=True)
        if self.parent is not None:
            self.parent.child_closed(self)
            self.parent = None
        sock = self.sock
        if sock is not None:
            if last_state is not HALFCLOSE_READ:   # the peer's FIN not read yet
                _drain_receive_queue(sock, drain)
            sock.close()
            self.sock = None


class BoundSlot(StreamSlot):
    """An adopted fd (``bind``): read and written with os.read/os.write,
    never closed by the server; its blocking flag is given back on close."""

    __slots__ = ("was_blocking",)

    def __init__(self, host: SlotHost, opaque: int, fd: int, was_blocking: bool) -> None:
        StreamSlot.__init__(self, host, opaque, BIND, fd=fd)
        self.recv = lambda size: os.read(fd, size)
        self.write_one = lambda data: os.write(fd, data)
        self.was_blocking = was_blocking

    def write_many(self, buffers: List[Buffer]) -> int:
        """Write ``buffers`` in one call (writev); return the bytes written."""
        return os.writev(self.fd, buffers)

    def netstat_type(self) -> str:
        return "BIND"

    def close_fd(self, last_state: State, drain: int) -> None:
        if self.below_waiters is not None:
            self.wake_below_waiters(closed=True)
        try:
            os.set_blocking(self.fd, self.was_blocking)
        except OSError:
            pass


def _own(part: Any) -> Buffer:
    """A buffer that the caller can no longer change under us."""
    if type(part) is bytes:
        return part
    if isinstance(part, memoryview) and part.readonly and isinstance(part.obj, bytes):
        return part
    return bytes(part)


def _drain_receive_queue(sock: Any, limit: int) -> None:
    drained = 0
    try:
        while drained < limit:
            chunk = sock.recv(min(65536, limit - drained))
            if not chunk:
                return
            drained += len(chunk)
    except OSError:
        return


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_stream")
