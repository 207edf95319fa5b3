"""The skynet-flavoured namespace: ``from gsocket import skynet``.

``skynet.socket`` is :mod:`gsocket.socket`; the rest are skynet's service
primitives mapped onto greenlets of the current hub.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Hashable, Optional, Set

import gevent
from gevent import get_hub
from gevent.event import Event
from gevent.hub import Waiter
from greenlet import getcurrent

from . import driver as _driver
from . import socket

__all__ = ["socket", "start", "fork", "sleep", "timeout", "wait", "wakeup", "exit", "error"]

logger = logging.getLogger("gsocket.skynet")

#: Tracked greenlets at which ``fork`` first drops those that died without
#: running (killed before they started); then at twice the live ones.
PRUNE_AT = 1024


class _Service:
    """Per-hub state: the greenlets forked and the exit signal."""

    def __init__(self) -> None:
        #: Forked greenlets still alive: each takes itself out as its run
        #: ends (_run_logged), a plain set and no link (a gevent Group costs
        #: a handful of Python calls per fork, a link a loop callback per
        #: end, and there is one fork per connection).
        self.greenlets: Set[gevent.Greenlet] = set()
        #: Size of ``greenlets`` at which track() drops the dead ones.
        self.prune_at = PRUNE_AT
        self.exit_event: Optional[Event] = None
        self.sleepers: Dict[Hashable, Waiter] = {}

    def track(self, greenlet: gevent.Greenlet) -> gevent.Greenlet:
        greenlets = self.greenlets
        greenlets.add(greenlet)
        if len(greenlets) >= self.prune_at:
            # A greenlet killed before it ran never took itself out.
            greenlets.difference_update([other for other in greenlets if other.dead])
            self.prune_at = max(PRUNE_AT, 2 * len(greenlets))
        return greenlet

    def kill_all(self, timeout: float) -> None:
        """Kill every tracked greenlet, also those forked meanwhile; wait at
        most ``timeout`` seconds in all."""
        deadline = get_hub().loop.now() + timeout
        while True:
            # Dead ones drop out of the set only when their links run.
            alive = [greenlet for greenlet in self.greenlets if not greenlet.dead]
            left = deadline - get_hub().loop.now()
            if not alive or left <= 0:
                return
            gevent.killall(alive, timeout=left)


def _service() -> _Service:
    hub = get_hub()
    service = getattr(hub, "_gsocket_service", None)
    if service is None:
        service = hub._gsocket_service = _Service()
    return service


def _run_logged(fn: Callable[..., Any], args: tuple, tracked: Set[gevent.Greenlet]) -> Any:
    try:
        return fn(*args)
    except gevent.GreenletExit:
        raise
    except Exception:
        logger.exception("greenlet %r failed", getattr(fn, "__name__", fn))
        return None
    finally:
        tracked.discard(getcurrent())


def start(main: Callable[..., Any], *args: Any) -> None:
    """Run ``main(*args)`` in a greenlet with the default driver and block
    until ``skynet.exit()`` is called (or ``main`` raises, which re-raises
    here). Then every forked greenlet is killed and the driver freed."""
    service = _service()
    if service.exit_event is not None:
        raise RuntimeError("skynet.start is already running on this hub")
    done = service.exit_event = Event()
    driver = _driver.default()
    failure: list = []

    def run_main() -> None:
        try:
            main(*args)
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)
            done.set()

    main_greenlet = gevent.spawn(run_main)
    try:
        done.wait()
    finally:
        service.exit_event = None
        main_greenlet.kill()
        service.kill_all(timeout=2)
        driver.free()
    if failure:
        raise failure[0]


def exit() -> None:  # noqa: A001 - skynet's name
    """End ``skynet.start`` (from any greenlet or a signal handler); without
    a running start, free the default driver. Returns None; never blocks."""
    service = _service()
    if service.exit_event is not None:
        service.exit_event.set()
    else:
        driver = _driver.installed()
        if driver is not None:
            driver.free()


def fork(fn: Callable[..., Any], *args: Any) -> gevent.Greenlet:
    """Run ``fn(*args)`` in a new greenlet (exceptions are logged); return
    it. Never blocks: the greenlet starts at the next loop turn."""
    service = _service()
    return service.track(gevent.spawn(_run_logged, fn, args, service.greenlets))


def sleep(seconds: float) -> None:
    """Block the calling greenlet for ``seconds`` (0 yields); returns None.
    Creates no driver."""
    driver = _driver.installed()
    if driver is not None:
        driver.before_block()
    gevent.sleep(seconds)


def timeout(seconds: float, fn: Callable[[], Any]) -> gevent.Greenlet:
    """Call ``fn()`` in a new greenlet after ``seconds``; return that
    greenlet. Never blocks."""
    service = _service()
    greenlet = service.track(gevent.Greenlet(_run_logged, fn, (), service.greenlets))
    greenlet.start_later(seconds)
    return greenlet


def wait(token: Optional[Hashable] = None) -> Any:
    """Block the calling greenlet until ``wakeup(token)`` (token defaults to
    the current greenlet); returns the value given to wakeup."""
    if token is None:
        token = getcurrent()
    service = _service()
    if token in service.sleepers:
        raise RuntimeError(f"a greenlet is already waiting on {token!r}")
    driver = _driver.installed()
    if driver is not None:
        driver.before_block()
    waiter = Waiter()
    service.sleepers[token] = waiter
    try:
        return waiter.get()
    finally:
        if service.sleepers.get(token) is waiter:
            del service.sleepers[token]


def wakeup(token: Hashable, value: Any = None) -> bool:
    """Wake the greenlet waiting on ``token``; return False if none waits.
    Never blocks (the waiter runs at the next loop turn)."""
    service = _service()
    waiter = service.sleepers.pop(token, None)
    if waiter is None:
        return False
    get_hub().loop.run_callback(waiter.switch, value)
    return True


def error(*args: Any) -> None:
    """Log the arguments, space-separated, at ERROR level (skynet.error).
    Returns None; never blocks."""
    logger.error(" ".join(str(arg) for arg in args))
