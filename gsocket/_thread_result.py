"""The answer to a call that another OS thread waits for: run and settled
once in the hub's thread, waited for with a real (unpatched) lock, so that
the waiting thread blocks itself and never the hub."""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

from gevent.monkey import get_original

__all__ = ["ThreadResult", "RELEASED"]

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
