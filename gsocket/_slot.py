"""One socket's state and its I/O callbacks (the reader and the writer).

Theory of operation
-------------------
A slot owns one fd. Its *reader* is a libev read watcher whose callback runs
in the hub: it reads with an adaptive size (64 bytes up, doubling while reads
fill it, halving when less than half is used), reads again at once while a
read fills the buffer, and pushes DATA / CLOSE / ERROR (ACCEPT for listeners,
UDP for datagram sockets) into the server's event channel. Its *writer* is a
write watcher that exists only once a write would block: ``send`` writes
straight to the kernel while nothing is queued (skynet's direct write), and
only leftovers go to the high or low queue. Running both as watcher callbacks
instead of greenlets keeps a message at one hub wake-up and an idle socket at
a few hundred bytes.

States follow skynet's socket_server.c (see skynet-socket-semantics.md 2.3).
"""

from __future__ import annotations

import errno
import logging
import os
from collections import deque
from itertools import islice
from typing import TYPE_CHECKING, Any, Deque, List, Optional, Tuple, Union


from .events import (
    SOCKET_CLOSE, SOCKET_DATA, SOCKET_ERROR, SOCKET_UDP,
    SOCKET_WARNING, SocketMessage,
)

if TYPE_CHECKING:  # pragma: no cover
    from .server import SocketServer

logger = logging.getLogger("gsocket.server")

# States (skynet socket_server.c)
PLISTEN = 2
LISTEN = 3
CONNECTING = 4
CONNECTED = 5
HALFCLOSE_READ = 6     # the peer sent FIN: no more reading, writes still flush
PACCEPT = 8
BIND = 9
CLOSED = 10            # released: every later call treats the id as gone

PROTOCOL_TCP = 0
PROTOCOL_UDP = 1

#: skynet socket_server.c MIN_READ_BUFFER: first and smallest read size.
MIN_READ_BUFFER = 64
#: Largest read size. skynet has no cap. Measured against 64 KiB on this
#: project's bench (bulk echo, 1 and 10 connections, interleaved): 1 MiB was
#: 10-25% faster; the size only grows while reads fill it, so pingpong and
#: idle connections never get there.
MAX_READ_BUFFER = 1024 * 1024
#: skynet socket_server.c WARNING_SIZE: first pending-write warning.
WARNING_SIZE = 1024 * 1024
#: skynet socket_server.c MAX_UDP_PACKAGE.
MAX_UDP_PACKAGE = 65535
#: Reads in one wake-up while every read fills the buffer (fairness cap).
MAX_READS_PER_WAKEUP = 16
#: Datagrams read in one wake-up of a UDP reader (fairness cap, like TCP's).
MAX_DATAGRAMS_PER_WAKEUP = 64
#: Buffers handed to one sendmsg (well below IOV_MAX = 1024).
MAX_IOV = 64
#: Bytes drained from the receive queue before closing, so that close()
#: sends FIN instead of RST (RST would destroy data the peer has not read).
DRAIN_BEFORE_CLOSE = 1024 * 1024

_WOULD_BLOCK = (BlockingIOError, InterruptedError)
_READ = 1
_WRITE = 2

Buffer = Union[bytes, memoryview]


def format_address(address: Any) -> str:
    """``"host:port"`` for IPv4, ``"[host]:port"`` for IPv6 addresses."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return str(address)


def error_text(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        return os.strerror(err.errno)
    return str(err) or type(err).__name__


class Slot:
    """State of one socket id. Created and driven by SocketServer only."""

    __slots__ = (
        "server", "id", "opaque", "state", "protocol", "sock", "fd", "family",
        "emit", "recv", "write_one", "write_many",
        "read_watcher", "write_watcher", "reading", "writing",
        "high", "low", "pending_bytes", "warn_size", "read_size",
        "bytes_read", "bytes_written", "rtime", "wtime",
        "closing", "close_reported", "peer_closed", "name",
        "udp_default", "connect_addresses", "accept_pause_timer", "bind_was_blocking",
        "connect_paused", "throttled",
    )

    def __init__(self, server: "SocketServer", socket_id: int, opaque: int, state: int,
                 sock: Any = None, fd: int = -1, protocol: int = PROTOCOL_TCP) -> None:
        self.server = server
        self.id = socket_id
        self.opaque = opaque
        self.state = state
        self.protocol = protocol
        self.sock = sock
        self.fd = sock.fileno() if sock is not None else fd
        self.family = sock.family if sock is not None else 0
        self.emit = server._channel.push
        if sock is not None:
            self.recv = sock.recv
            self.write_one = sock.send
            self.write_many = sock.sendmsg
        else:  # BIND: a pipe, a tty or any other fd
            fd = self.fd
            self.recv = lambda size: os.read(fd, size)
            self.write_one = lambda data: os.write(fd, data)
            self.write_many = lambda buffers: os.writev(fd, buffers)
        self.read_watcher: Any = None
        self.write_watcher: Any = None
        self.reading = False
        self.writing = False
        self.high: Deque[Any] = deque()
        self.low: Deque[Any] = deque()
        self.pending_bytes = 0
        self.warn_size = 0
        self.read_size = MIN_READ_BUFFER
        self.bytes_read = 0
        self.bytes_written = 0
        self.rtime = 0.0
        self.wtime = 0.0
        self.closing = False
        self.close_reported = False
        self.peer_closed = False
        self.name = ""
        self.udp_default: Optional[Tuple[Any, ...]] = None
        self.connect_addresses: List[Any] = []
        self.accept_pause_timer: Any = None
        self.bind_was_blocking: Optional[bool] = None
        self.connect_paused = False   # pause() before the connect finished
        self.throttled = False        # UDP reader waits for the event channel to drain

    # ------------------------------------------------------------------ events

    def message(self, kind: int, ud: int = 0, data: Any = None) -> None:
        self.emit(SocketMessage(kind, self.id, self.opaque, ud, data))

    def report_close(self) -> None:
        """Emit CLOSE, at most once in the socket's life."""
        if not self.close_reported:
            self.close_reported = True
            self.emit(SocketMessage(SOCKET_CLOSE, self.id, self.opaque, 0, None))

    # ------------------------------------------------------------------ watchers

    def start_reading(self) -> None:
        if self.reading or self.state == CLOSED:
            return
        watcher = self.read_watcher
        if watcher is None:
            watcher = self.read_watcher = self.server._loop.io(self.fd, _READ)
        if self.state in (LISTEN,):
            watcher.start(self.on_acceptable)
        elif self.protocol == PROTOCOL_UDP:
            watcher.start(self.on_datagram)
        else:
            watcher.start(self.on_readable)
        self.reading = True

    def stop_reading(self) -> None:
        self.throttled = False
        if self.reading:
            self.reading = False
            self.read_watcher.stop()

    def start_writing(self) -> None:
        if self.writing:
            return
        watcher = self.write_watcher
        if watcher is None:
            watcher = self.write_watcher = self.server._loop.io(self.fd, _WRITE)
        watcher.start(self.on_writable)
        self.writing = True

    def stop_writing(self) -> None:
        if self.writing:
            self.writing = False
            self.write_watcher.stop()

    # ------------------------------------------------------------------ reader

    def on_readable(self) -> None:
        recv = self.recv
        for _ in range(MAX_READS_PER_WAKEUP):
            size = self.read_size
            try:
                data = recv(size)
            except _WOULD_BLOCK:
                return
            except OSError as err:
                self.io_error(err)
                return
            received = len(data)
            if not received:
                self.on_eof()
                return
            if self.closing:
                continue   # close() was called: incoming bytes are discarded
            self.bytes_read += received
            self.rtime = self.server._loop.now()
            self.emit(SocketMessage(SOCKET_DATA, self.id, self.opaque, received, data))
            if received == size:
                if size < MAX_READ_BUFFER:
                    self.read_size = size * 2
                continue
            if size > MIN_READ_BUFFER and received * 2 < size:
                self.read_size = size // 2
            return

    def on_eof(self) -> None:
        self.stop_reading()
        self.peer_closed = True
        if self.closing:
            if not self.pending_bytes:
                self.force_close(report=False)
            return
        if self.state != BIND:
            self.state = HALFCLOSE_READ
        self.report_close()

    def io_error(self, err: BaseException) -> None:
        """A read or write failed: ERROR (unless we were closing), then close."""
        if self.closing or self.close_reported:
            self.force_close(report=False)
            return
        self.message(SOCKET_ERROR, 0, error_text(err))
        self.force_close(report=True)

    def on_datagram(self) -> None:
        recvfrom = self.sock.recvfrom
        emit = self.emit
        channel = self.server._channel
        for _ in range(MAX_DATAGRAMS_PER_WAKEUP):
            if channel.crowded():
                # The poller is behind: stop reading (the kernel drops what
                # does not fit, as UDP may) until it has caught up.
                self.stop_reading()
                self.throttled = True
                channel.when_drained(self.end_throttle)
                return
            try:
                data, address = recvfrom(MAX_UDP_PACKAGE)
            except _WOULD_BLOCK:
                return
            except OSError as err:
                # ICMP errors (port unreachable) surface here on Linux; the
                # socket itself is fine, so report and keep reading.
                self.message(SOCKET_ERROR, 0, error_text(err))
                if err.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    self.force_close(report=True)
                return
            self.bytes_read += len(data)
            self.rtime = self.server._loop.now()
            emit(SocketMessage(SOCKET_UDP, self.id, self.opaque, len(data), data,
                               (address[0], address[1])))

    def end_throttle(self) -> None:
        if self.throttled:
            self.throttled = False
            if self.state != CLOSED:
                self.start_reading()

    def on_acceptable(self) -> None:
        self.server._accept_ready(self)

    # ------------------------------------------------------------------ writer

    def send(self, data: Any, low_priority: bool) -> bool:
        """Queue or write ``data`` (a bytes-like object or a list of them)."""
        state = self.state
        if self.closing or state in (CLOSED, PLISTEN, LISTEN):
            if state in (PLISTEN, LISTEN):
                logger.warning("send to listening socket %d dropped", self.id)
            return False
        if self.protocol == PROTOCOL_UDP:
            return self.server._udp_send_slot(self, None, data)
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
        if self.high or self.low or state == CONNECTING:
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
        except _WOULD_BLOCK:
            written = 0
        except OSError as err:
            self.io_error(err)
            return False
        if written:
            self.bytes_written += written
            self.wtime = self.server._loop.now()
        if written < total:
            self.enqueue_leftover(data, written)
            self.start_writing()
        return True

    def enqueue(self, data: Any, low_priority: bool, total: int) -> None:
        queue = self.low if low_priority else self.high
        if isinstance(data, list):
            for part in data:
                if len(part):
                    queue.append(_own(part))
        else:
            queue.append(_own(data))
        self.pending_bytes += total
        self.check_warning()
        if self.state != CONNECTING:
            self.start_writing()

    def enqueue_leftover(self, data: Any, written: int) -> None:
        parts = data if isinstance(data, list) else (data,)
        high = self.high
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

    def check_warning(self) -> None:
        pending = self.pending_bytes
        if pending >= WARNING_SIZE and pending >= self.warn_size:
            threshold = self.warn_size or WARNING_SIZE
            while threshold <= pending:
                threshold *= 2
            self.warn_size = threshold
            self.message(SOCKET_WARNING, (pending + 1023) // 1024)

    def on_writable(self) -> None:
        if self.state == CONNECTING:
            self.server._connect_ready(self)
            if self.state == CONNECTING or self.state == CLOSED:
                return
        if self.protocol == PROTOCOL_UDP:
            self.server._udp_flush(self)
        elif not self.flush_queue(self.high, False) or not self.flush_queue(self.low, True):
            return
        if self.state == CLOSED or self.high or self.low:
            return
        self.stop_writing()
        if self.closing:
            # CLOSE was reported already: close silently, no "drained"
            # WARNING after it (skynet send_buffer checks closing first).
            self.force_close(report=False)
            return
        if self.warn_size:
            self.warn_size = 0
            self.message(SOCKET_WARNING, 0)

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
            except _WOULD_BLOCK:
                return False
            except OSError as err:
                self.io_error(err)
                return False
            self.pending_bytes -= written
            self.bytes_written += written
            self.wtime = self.server._loop.now()
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
                        self.high.append(head)
                    else:
                        queue[0] = head
            if written < total:
                return False
            if is_low and self.high:
                return False
        return True

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Graceful close: report CLOSE now, flush, then close the fd."""
        if self.closing or self.state == CLOSED:
            return
        if not self.pending_bytes or self.state in (PLISTEN, LISTEN):
            self.force_close(report=True)
            return
        self.closing = True
        self.report_close()
        if self.state == CONNECTING:
            return   # the queue flushes once connected, then the fd closes

    def force_close(self, report: bool, drain: int = DRAIN_BEFORE_CLOSE) -> None:
        """Close the fd now, dropping anything queued; first read up to
        ``drain`` unread bytes, so that the peer gets FIN rather than RST."""
        if self.state == CLOSED:
            return
        if report:
            self.report_close()
        self.state = CLOSED
        self.server._forget(self)
        self.reading = self.writing = False
        for watcher in (self.read_watcher, self.write_watcher):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        self.read_watcher = self.write_watcher = None
        timer = self.accept_pause_timer
        if timer is not None:
            timer.stop()
            timer.close()
            self.accept_pause_timer = None
        self.high.clear()
        self.low.clear()
        self.pending_bytes = 0
        sock = self.sock
        if sock is not None:
            if self.protocol == PROTOCOL_TCP and not self.peer_closed:
                _drain_receive_queue(sock, drain)
            sock.close()
            self.sock = None
        elif self.bind_was_blocking is not None:
            try:
                os.set_blocking(self.fd, self.bind_was_blocking)
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
