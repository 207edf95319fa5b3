"""The event channel: one FIFO of SocketMessage per SocketServer.

Socket callbacks (running in the hub) and operations (running in any
greenlet of the hub's thread) push events; one greenlet at a time pops them
in ``poll``. Pushing never switches greenlets: the first push after the
poller went to sleep schedules a single wake-up callback, so every event
produced in one loop iteration is drained by one wake of the poller.

Direct delivery: the poller's owner may hand down ``direct``, offered
each event pushed while the queue is empty and the poller waits (so no
earlier event can be overtaken); it may deliver the event there and then
and spare the poller a wake-up (the driver does so for DATA to the socket
API, whose handler only buffers bytes and wakes a reader).

Stalls: the poller's owner may hand down ``on_stall``, a callable run from
the hub when events wait and nobody polls (the greenlet that should poll has
switched away, say blocked inside an owner callback). The check is armed
only when an event is pushed while nobody polls, or when pop leaves events
queued, at most once per loop turn: nothing on the path where the poller
waits and one event arrives.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, List, Optional

from greenlet import getcurrent

from .events import SocketMessage

_TIMED_OUT = object()

#: Queued events at which crowded() turns true (UDP readers hold off).
CROWDED = 4096
#: Queued events at or under which when_drained() callbacks run.
DRAINED = CROWDED // 4


class EventChannel:
    """FIFO of SocketMessage between the hub (producers) and one poller."""

    __slots__ = ("_events", "_loop", "_hub", "_poller", "_wake_scheduled", "push",
                 "_drain_callbacks", "_exit", "on_stall", "_stall_check_armed", "direct",
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
        #: Offered an event pushed while the queue is empty and the poller
        #: waits; True means it was delivered there and then (or None).
        self.direct: Optional[Callable[[SocketMessage], bool]] = None
        # Bound once: the hot path calls ``channel.push(msg)`` per event.
        self.push = self._push

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
        if self._poller is not None and not self._events:
            direct = self.direct
            if direct is not None and direct(message):
                return
        self._events.append(message)
        if self._poller is not None:
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
        self._events.clear()
        self._drain_callbacks.clear()
        if self._poller is not None:
            self._push(exit_message)
        self._exit = exit_message
