"""One socket id's state, and what every kind of socket shares.

Theory of operation
-------------------
A slot owns one fd. Its *reader* is a libev read watcher whose callback runs
in the hub and pushes events into the server's event channel; its *writer*
is a write watcher that exists only once a write would block (skynet's
direct write: ``send`` writes straight to the kernel while nothing is
queued, and only leftovers go to the high or low queue). Running both as
watcher callbacks instead of greenlets keeps a message at one hub wake-up
and an idle socket at a few hundred bytes.

Each kind of socket has its own class and module: :class:`Slot` here (the
state, the watchers, the write queues' bookkeeping, closing), the listener
(:mod:`gsocket._listener`), a TCP connection or bound fd
(:mod:`gsocket._stream`), a connection being made
(:mod:`gsocket._connecting`) and a UDP socket (:mod:`gsocket._udp`). A slot
never sees the :class:`~gsocket.server.SocketServer`: it gets a
:class:`SlotHost`, which holds the loop, the event channel's push and the
id table. States follow skynet's socket_server.c;
:class:`State` documents them.
"""

from __future__ import annotations

import enum
import errno
from collections import deque
from typing import Any, Callable, Deque, Dict, Optional, TypeVar

from .events import (
    SOCKET_CLOSE, SOCKET_ERROR, SOCKET_OPEN, SOCKET_WARNING, SocketMessage, new_message,
)
from ._netutil import error_text

__all__ = [
    "State", "PLISTEN", "LISTEN", "CONNECTING", "CONNECTED", "HALFCLOSE_READ", "PACCEPT",
    "BIND", "CLOSING", "CLOSED", "PROTOCOL_TCP", "PROTOCOL_UDP", "WARNING_SIZE",
    "DRAIN_BEFORE_CLOSE",
    "READ", "WRITE", "SlotHost", "Slot",
]


class State(enum.Enum):
    """Where a socket is in its life; a slot's ``state`` is always one of these.

    The numbers are skynet's (socket_server.c) where skynet has the state.

    ========================  ====================================================
    ``PLISTEN``               listening fd made; accepting only after ``start``
    ``LISTEN``                accepting
    ``CONNECTING``            non-blocking connect in flight (or its host name
                              resolving); data sent meanwhile is queued
    ``CONNECTED``             an open TCP connection (started); every UDP socket
    ``HALFCLOSE_READ``        the peer sent FIN (for a bound fd: EOF): nothing
                              more to read, CLOSE reported, our queued bytes
                              still flush and we may still send
    ``PACCEPT``               accepted, not started: no reading yet
    ``BIND``                  an adopted fd (pipe, tty...), reading
    ``CLOSING``               ``close()`` was called while output was pending:
                              CLOSE reported, sends refused, incoming bytes
                              discarded; the fd closes once the queue has
                              flushed (a connect still in flight finishes first)
    ``CLOSED``                released: every later call treats the id as gone
    ========================  ====================================================
    """

    PLISTEN = 2
    LISTEN = 3
    CONNECTING = 4
    CONNECTED = 5
    HALFCLOSE_READ = 6
    PACCEPT = 8
    BIND = 9
    CLOSED = 10
    CLOSING = 11


# Module-level names: a global lookup on the hot path, not an Enum attribute.
PLISTEN = State.PLISTEN
LISTEN = State.LISTEN
CONNECTING = State.CONNECTING
CONNECTED = State.CONNECTED
HALFCLOSE_READ = State.HALFCLOSE_READ
PACCEPT = State.PACCEPT
BIND = State.BIND
CLOSING = State.CLOSING
CLOSED = State.CLOSED

PROTOCOL_TCP = 0
PROTOCOL_UDP = 1

#: skynet socket_server.c WARNING_SIZE: first pending-write warning.
WARNING_SIZE = 1024 * 1024

#: Bytes drained from the receive queue before closing, so that close()
#: sends FIN instead of RST (RST would destroy data the peer has not read).
DRAIN_BEFORE_CLOSE = 1024 * 1024

#: libev event masks.
READ = 1
WRITE = 2


_S = TypeVar("_S", bound="Slot")


class SlotHost:
    """What a slot sees of its server: the loop, the event channel (push,
    and whether it is crowded) and the table of live ids. The server owns
    one; every slot holds it."""

    __slots__ = ("loop", "emit", "emit_data", "crowded", "when_drained", "slots", "max_sockets",
                 "last_id", "released", "in_read", "after_read")

    def __init__(self, loop: Any, channel: Any, max_sockets: int) -> None:
        self.loop = loop
        #: Push one SocketMessage into the event channel.
        self.emit: Callable[[SocketMessage], None] = channel.push
        #: Push DATA: ``emit_data(socket_id, opaque, data)`` (no message made
        #: when the bytes can be delivered at once).
        self.emit_data: Callable[[int, int, bytes], None] = channel.push_data
        #: True while the channel holds so many events that producers hold off.
        self.crowded: Callable[[], bool] = channel.crowded
        #: Call a callable once the channel has drained (see EventChannel).
        self.when_drained: Callable[[Callable[[], None]], None] = channel.when_drained
        #: id -> live slot.
        self.slots: Dict[int, "Slot"] = {}
        self.max_sockets = max_sockets
        self.last_id = 0
        self.released = False
        #: True while a stream reader's callback runs (see call_soon).
        self.in_read = False
        #: (callable, argument) pairs call_soon put off until that callback ends.
        self.after_read: list = []

    def call_soon(self, function: Callable[[Any], Any], argument: Any) -> None:
        """Run ``function(argument)`` soon, never now: at the end of the
        stream reader callback that is running (so that a reader woken by
        the bytes just read runs without another loop turn, and after the
        callback is done with its slot), else from the next loop callback."""
        if self.in_read:
            self.after_read.append((function, argument))
        else:
            self.loop.run_callback(function, argument)

    def register(self, slot: _S) -> _S:
        """Give ``slot`` the next free id and make it live; return it.
        Raises RuntimeError after release, OSError(EMFILE) when the table is
        full. Ids count up to 2**31 before they wrap, so a stale id never
        reaches a newer socket (skynet's 16-bit tag)."""
        if self.released:
            raise RuntimeError("this SocketServer was released")
        slots = self.slots
        if len(slots) >= self.max_sockets:
            raise OSError(errno.EMFILE, "reach skynet socket number limit")
        socket_id = self.last_id
        while True:
            socket_id = (socket_id + 1) & 0x7FFFFFFF
            if socket_id and socket_id not in slots:
                break
        self.last_id = socket_id
        slot.id = socket_id
        slots[socket_id] = slot
        return slot

    def forget(self, slot: "Slot") -> None:
        """Drop ``slot`` from the table of live ids (it was closed)."""
        if self.slots.get(slot.id) is slot:
            del self.slots[slot.id]


class Slot:
    """State of one socket id; subclasses add the reader and the writer of
    one kind of socket. Created and driven by SocketServer only."""

    __slots__ = (
        "host", "id", "opaque", "state", "sock", "fd", "family", "emit",
        "read_watcher", "write_watcher", "reading", "writing",
        "high", "low", "pending_bytes", "warn_size",
        "bytes_read", "bytes_written", "rtime", "wtime", "name",
    )

    #: PROTOCOL_TCP or PROTOCOL_UDP.
    protocol = PROTOCOL_TCP

    def __init__(self, host: SlotHost, opaque: int, state: State, sock: Any = None,
                 fd: int = -1) -> None:
        self.host = host
        self.id = 0                   # set by SlotHost.register
        self.opaque = opaque
        self.state = state
        self.sock = sock
        self.fd = sock.fileno() if sock is not None else fd
        self.family = sock.family if sock is not None else 0
        self.emit = host.emit
        self.read_watcher: Any = None
        self.write_watcher: Any = None
        self.reading = False          # the read watcher runs
        self.writing = False          # the write watcher runs
        # The write queues exist only once something had to wait (a deque is
        # 760 bytes; an idle socket keeps none).
        self.high: Optional[Deque[Any]] = None
        self.low: Optional[Deque[Any]] = None
        self.pending_bytes = 0
        self.warn_size = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.rtime = 0.0
        self.wtime = 0.0
        self.name = ""

    # ------------------------------------------------------------------ what the subclasses define

    def on_readable(self) -> None:
        """The read watcher's callback."""
        raise NotImplementedError

    def on_writable(self) -> None:
        """The write watcher's callback."""
        raise NotImplementedError

    def send(self, data: Any, low_priority: bool) -> bool:
        """Write or queue ``data``; False when the socket takes no data."""
        raise NotImplementedError

    def netstat_type(self) -> str:
        """The ``type`` column of info(): LISTEN, TCP, UDP, BIND or CLOSING."""
        raise NotImplementedError

    def peer_closed(self) -> bool:
        """True when the OS says a stream peer closed its side (see
        StreamSlot); False for every other kind of socket."""
        return False

    def address(self) -> Any:
        """The address address() reports (the peer's; the bound one for
        listeners and UDP). Raises OSError when the socket has none."""
        return self.sock.getpeername()

    def queue_for(self, low_priority: bool) -> Deque[Any]:
        """The low or the high write queue, made on first use."""
        if low_priority:
            queue = self.low
            if queue is None:
                queue = self.low = deque()
        else:
            queue = self.high
            if queue is None:
                queue = self.high = deque()
        return queue

    # ------------------------------------------------------------------ events

    def message(self, kind: int, ud: int = 0, data: Any = None) -> None:
        self.emit(new_message(SocketMessage, (kind, self.id, self.opaque, ud, data, None)))

    # ------------------------------------------------------------------ watchers

    def start_reading(self) -> None:
        if self.reading or self.state is CLOSED:
            return
        watcher = self.read_watcher
        if watcher is None:
            watcher = self.read_watcher = self.host.loop.io(self.fd, READ)
        watcher.start(self.on_readable)
        self.reading = True

    def stop_reading(self) -> None:
        if self.reading:
            self.reading = False
            self.read_watcher.stop()

    def start_writing(self) -> None:
        if self.writing:
            return
        watcher = self.write_watcher
        if watcher is None:
            watcher = self.write_watcher = self.host.loop.io(self.fd, WRITE)
        watcher.start(self.on_writable)
        self.writing = True

    def stop_writing(self) -> None:
        if self.writing:
            self.writing = False
            self.write_watcher.stop()

    # ------------------------------------------------------------------ start / pause

    def start(self, handed_over: bool) -> None:
        """``start(id)``: begin reading, or say why not (OPEN / ERROR).
        ``handed_over``: the call named a new owner."""
        state = self.state
        if state is CLOSING or state is HALFCLOSE_READ:
            self.message(SOCKET_ERROR, 0, "socket closed")
        elif state is CONNECTED or state is BIND:
            self.start_reading()
            self.message(SOCKET_OPEN, 0, "transfer")

    def resume(self) -> None:
        """Read again after pause(), without an event."""
        state = self.state
        if state is CONNECTED or state is BIND:
            self.start_reading()

    def pause(self) -> None:
        """Stop reading until start() or resume()."""
        self.stop_reading()

    # ------------------------------------------------------------------ writer bookkeeping

    def check_warning(self) -> None:
        pending = self.pending_bytes
        if pending >= WARNING_SIZE and pending >= self.warn_size:
            threshold = self.warn_size or WARNING_SIZE
            while threshold <= pending:
                threshold *= 2
            self.warn_size = threshold
            self.message(SOCKET_WARNING, (pending + 1023) // 1024)

    def writer_drained(self) -> None:
        """Every queued byte is out: stop the writer; finish a close, or
        say (WARNING 0) that the queue warned about is empty again."""
        self.stop_writing()
        if self.state is CLOSING:
            # CLOSE was reported already: close silently, no "drained"
            # WARNING after it (skynet send_buffer checks closing first).
            self.force_close(report=False)
            return
        if self.warn_size:
            self.warn_size = 0
            self.message(SOCKET_WARNING, 0)

    # ------------------------------------------------------------------ close

    def io_error(self, err: BaseException) -> None:
        """A read or write failed: ERROR (unless CLOSE was reported), then close."""
        state = self.state
        if state is CLOSING or state is HALFCLOSE_READ:
            self.force_close(report=False)
            return
        self.message(SOCKET_ERROR, 0, error_text(err))
        self.force_close(report=True)

    def close(self) -> None:
        """Graceful close: report CLOSE now, flush, then close the fd."""
        state = self.state
        if state is CLOSING or state is CLOSED:
            return
        if not self.pending_bytes:
            self.force_close(report=True)
            return
        self.state = CLOSING   # a connect in flight finishes, then the queue flushes
        if state is not HALFCLOSE_READ:
            self.message(SOCKET_CLOSE)

    def force_close(self, report: bool, drain: int = DRAIN_BEFORE_CLOSE) -> None:
        """Close the fd now, dropping anything queued; CLOSE first when
        ``report`` and it was not reported yet. Streams first read up to
        ``drain`` unread bytes, so that the peer gets FIN rather than RST."""
        state = self.state
        if state is CLOSED:
            return
        if report and state is not HALFCLOSE_READ and state is not CLOSING:
            self.message(SOCKET_CLOSE)
        self.state = CLOSED
        self.host.forget(self)
        self.reading = self.writing = False
        for watcher in (self.read_watcher, self.write_watcher):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        self.read_watcher = self.write_watcher = None
        if self.high is not None:
            self.high.clear()
        if self.low is not None:
            self.low.clear()
        self.pending_bytes = 0
        self.close_fd(state, drain)

    def close_fd(self, last_state: State, drain: int) -> None:
        """Let go of the fd (force_close's last step; ``last_state`` is the
        state before it)."""
        sock = self.sock
        if sock is not None:
            sock.close()
            self.sock = None



from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_slot")
