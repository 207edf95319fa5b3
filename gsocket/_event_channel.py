"""The event channel: one FIFO of SocketMessage per SocketServer.

Socket callbacks (running in the hub) and operations (running in any
greenlet of the hub's thread) push events; one greenlet at a time pops them
in ``poll``. Pushing never switches greenlets: the first push after the
poller went to sleep schedules a single wake-up callback, so every event
produced in one loop iteration is drained by one wake of the poller.

Direct delivery: the poller's owner may hand down (``set_direct``) a
poller greenlet and a dict of DATA handlers by opaque. DATA pushed
(``push_data``) while the queue is empty and that greenlet waits (so no
earlier event can be overtaken) goes to its handler there and then: the
poller is spared a wake-up and the event is never even made (the driver
does so for DATA to the socket API, whose handler only buffers bytes and
wakes a reader).

Stalls: the poller's owner may hand down ``on_stall``, a callable run from
the hub when events wait and nobody polls (the greenlet that should poll has
switched away, say blocked inside an owner callback). The check is armed
only when an event is pushed while nobody polls, or when pop leaves events
queued, at most once per loop turn: nothing on the path where the poller
waits and one event arrives.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional

from greenlet import getcurrent

from .events import SOCKET_DATA, SocketMessage, new_message
from ._netutil import logger

_TIMED_OUT = object()

#: Queued events at which crowded() turns true (UDP readers hold off).
CROWDED = 4096
#: Queued events at or under which when_drained() callbacks run.
DRAINED = CROWDED // 4


class EventChannel:
    """FIFO of SocketMessage between the hub (producers) and one poller."""

    __slots__ = ("_events", "_loop", "_hub", "_poller", "_wake_scheduled", "push", "push_data",
                 "_drain_callbacks", "_exit", "on_stall", "_stall_check_armed", "_direct_poller",
                 "_direct_handlers",
                 "__weakref__")

    def __init__(self, hub: Any) -> None:
        self._events: Deque[SocketMessage] = deque()
        self._hub = hub
        self._loop = hub.loop
        self._poller: Any = None
        self._wake_scheduled = False
        self._drain_callbacks: List[Callable[[], None]] = []
        self._exit: Optional[SocketMessage] = None    # set once closed
        #: Called from the hub when events wait while nobody polls (or None).
        self.on_stall: Optional[Callable[[], None]] = None
        self._stall_check_armed = False
        # See set_direct.
        self._direct_poller: Any = None
        self._direct_handlers: Dict[int, Callable[[int, bytes], None]] = {}
        # Bound once: the hot path calls ``channel.push(msg)`` per event.
        self.push = self._push
        self.push_data = self._push_data

    def __len__(self) -> int:
        return len(self._events)

    def crowded(self) -> bool:
        """True while so many events wait that producers should hold off."""
        return len(self._events) >= CROWDED

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once, from the hub, when the queue has fallen
        to DRAINED events; never if the channel is closed first."""
        if self._exit is None:
            self._drain_callbacks.append(callback)

    def _run_drain_callbacks(self) -> None:
        callbacks, self._drain_callbacks = self._drain_callbacks, []
        for callback in callbacks:
            self._loop.run_callback(callback)

    def _push(self, message: SocketMessage) -> None:
        if self._exit is not None:
            return
        self._events.append(message)
        if self._poller is not None:
            if not self._wake_scheduled:
                self._wake_scheduled = True
                self._loop.run_callback(self._wake)
        elif self.on_stall is not None and not self._stall_check_armed:
            self._arm_stall_check()

    def set_direct(self, poller: Any, handlers: Optional[Dict[int, Callable[[int, bytes], None]]]) -> None:
        """Deliver DATA of the opaques in ``handlers`` to
        ``handlers[opaque](socket_id, data)`` at once while ``poller`` (a
        greenlet) waits with nothing queued; ``poller`` None: never."""
        self._direct_poller = poller
        self._direct_handlers = handlers if handlers is not None else {}

    def _push_data(self, socket_id: int, opaque: int, data: bytes) -> None:
        """Push DATA of ``socket_id``: to its direct handler when it may be
        (see set_direct), else queued as a SocketMessage like every event."""
        poller = self._poller
        if poller is not None and poller is self._direct_poller and not self._events:
            handler = self._direct_handlers.get(opaque)
            if handler is not None:
                try:
                    handler(socket_id, data)
                except Exception:
                    logger.exception("direct DATA handler of opaque %d failed on %d (%d bytes)",
                                     opaque, socket_id, len(data))
                return
        # self._push(SocketMessage(...)), inlined: every DATA event's path.
        if self._exit is not None:
            return
        self._events.append(new_message(SocketMessage, (SOCKET_DATA, socket_id, opaque, len(data),
                                                         data, None)))
        if poller is not None:
            if not self._wake_scheduled:
                self._wake_scheduled = True
                self._loop.run_callback(self._wake)
        elif self.on_stall is not None and not self._stall_check_armed:
            self._arm_stall_check()

    def _arm_stall_check(self) -> None:
        self._stall_check_armed = True
        self._loop.run_callback(self._check_stall)

    def _check_stall(self) -> None:
        self._stall_check_armed = False
        hook = self.on_stall
        if hook is not None and self._poller is None and self._events:
            hook()

    def _wake(self) -> None:
        self._wake_scheduled = False
        poller = self._poller
        if poller is not None:
            poller.switch(None)

    def _take(self) -> SocketMessage:
        """Pop the oldest queued event (there is one), running the drain
        callbacks and arming the stall check as the queue asks."""
        events = self._events
        if self._drain_callbacks and len(events) <= DRAINED:
            self._run_drain_callbacks()
        message = events.popleft()
        if events and self.on_stall is not None and not self._stall_check_armed:
            self._arm_stall_check()
        return message

    def pop(self, timeout: Optional[float] = None) -> Optional[SocketMessage]:
        """Return the oldest event, blocking the calling greenlet until one
        arrives or ``timeout`` seconds pass (then None)."""
        events = self._events
        if events:
            # self._take(), inlined for its common case.
            if not self._drain_callbacks and (self.on_stall is None or len(events) == 1):
                return events.popleft()
            return self._take()
        if self._exit is not None:
            return self._exit
        if timeout is not None and timeout <= 0:
            return None
        if self._poller is not None:
            raise RuntimeError("another greenlet is already polling this SocketServer")
        current = getcurrent()
        if current is self._hub:
            raise RuntimeError("poll() cannot block inside the gevent hub")
        timer = None
        self._poller = current
        try:
            if timeout is not None:
                timer = self._loop.timer(timeout)
                timer.start(current.switch, _TIMED_OUT)
            while not events:
                if self._hub.switch() is _TIMED_OUT:
                    return None
            return self._take()
        finally:
            self._poller = None
            if timer is not None:
                timer.stop()
                timer.close()

    def clear(self) -> None:
        """Drop every queued event."""
        self._events.clear()

    def close(self, exit_message: SocketMessage) -> None:
        """Drop every queued event; a greenlet blocked in pop() gets
        ``exit_message`` so that it does not outlive the server."""
        self.on_stall = None
        self._direct_poller = None
        self._events.clear()
        self._drain_callbacks.clear()
        if self._poller is not None:
            self._push(exit_message)
        self._exit = exit_message


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_event_channel")
