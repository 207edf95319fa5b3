"""Calls into a SocketServer from other OS threads.

A call from another thread is queued (``deque.append`` is atomic, so the
threads need no lock) and the hub is woken with ``run_callback_threadsafe``;
the hub's thread runs queued calls in the order they were made. A call that
returns an answer waits for a :class:`ThreadResult`, settled in the hub's
thread and waited for with a real (unpatched) lock, so that the waiting
thread blocks itself and never the hub.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Optional, Set, Tuple

import gevent
from gevent.monkey import get_original

from ._netutil import logger

__all__ = ["ForeignCalls", "ThreadResult", "RELEASED"]

_allocate_lock: Callable[[], Any] = get_original("_thread", "allocate_lock")

#: The text of the RuntimeError a call gets once the server is released.
RELEASED = "this SocketServer was released"


class ThreadResult:
    """One answer: settle() it once (in the hub's thread), wait() for it
    (in the calling thread)."""

    __slots__ = ("_lock", "_value", "_error", "done")

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self._lock.acquire()
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self.done = False

    def run(self, function: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        """Settle with what ``function(*args)`` returns or raises."""
        try:
            value = function(*args)
        except BaseException as err:   # GreenletExit too: release() killed it
            self.settle(None, err)
            if not isinstance(err, Exception):
                raise
        else:
            self.settle(value, None)

    def settle(self, value: Any, error: Optional[BaseException]) -> None:
        """Record the answer (only the first one counts) and wake the waiter."""
        if not self.done:
            self.done = True
            self._value = value
            self._error = error
            self._lock.release()

    def wait(self, timeout: float) -> Any:
        """Block the calling thread until settled; return the value or raise
        the error (RuntimeError when release() ended the call), TimeoutError
        after ``timeout`` seconds."""
        if not self._lock.acquire(timeout=timeout):
            raise TimeoutError(f"the hub did not answer within {timeout} s")
        error = self._error
        if error is not None:
            if not isinstance(error, Exception):
                raise RuntimeError(RELEASED)
            raise error
        return self._value


class ForeignCalls:
    """The queue of calls other OS threads made, run in the hub's thread."""

    __slots__ = ("_loop", "queue", "_results", "_greenlets", "released")

    def __init__(self, loop: Any, greenlets: Set[gevent.Greenlet]) -> None:
        self._loop = loop
        #: (function, args) pairs not run yet.
        self.queue: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = deque()
        # Answers other OS threads wait for (settled, or failed by release()).
        self._results: Set[ThreadResult] = set()
        # The server's greenlets, killed by its release(): blocking calls run in one.
        self._greenlets = greenlets
        self.released = False

    def call(self, function: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        """Queue ``function(*args)`` for the hub's thread; any thread. Never blocks."""
        self.queue.append((function, args))
        self._loop.run_callback_threadsafe(self.run_all)

    def run_all(self) -> None:
        """Run every queued call, in order (hub's thread only); what a call
        raises is logged. After release() calls are dropped and their
        waiters get RuntimeError."""
        calls = self.queue
        while calls:
            function, args = calls.popleft()
            if self.released:
                if function == self._answer:
                    args[0].settle(None, RuntimeError(RELEASED))
                continue
            try:
                function(*args)
            except Exception:
                logger.exception("%s%r called from another thread failed",
                                 getattr(function, "__name__", function), args)

    def ask(self, function: Callable[..., Any], args: Tuple[Any, ...], blocking: bool,
            timeout: float) -> Any:
        """From another OS thread: run ``function(*args)`` in the hub's
        thread (in a greenlet of its own when it may block) and return its
        result here, raising here what it raised. Blocks the calling thread
        until then (TimeoutError after ``timeout`` seconds)."""
        result = ThreadResult()
        self.call(self._answer, (result, function, args, blocking))
        return result.wait(timeout)

    def _answer(self, result: ThreadResult, function: Callable[..., Any],
                args: Tuple[Any, ...], blocking: bool) -> None:
        if self.released:
            result.settle(None, RuntimeError(RELEASED))
        elif not blocking:
            result.run(function, args)
        else:
            self._results.add(result)
            greenlet = gevent.spawn(result.run, function, args)
            self._greenlets.add(greenlet)
            greenlet.link(self._greenlets.discard)
            greenlet.link(lambda _: self._results.discard(result))

    def release(self) -> None:
        """Fail every answer still awaited with RuntimeError (the server was
        released)."""
        self.released = True
        for result in list(self._results):
            result.settle(None, RuntimeError(RELEASED))
        self._results.clear()
