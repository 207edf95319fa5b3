"""How gsocket.socket finds the socket pool of the calling greenlet's hub,
and the argument checks its functions share. The lookups here are on every
socket call's path, so their common case makes no further calls."""

from __future__ import annotations

from typing import Any, Optional, Tuple

from gevent._hub_local import get_hub_if_exists
from greenlet import getcurrent

from . import driver as _driver
from .driver import _HUB_ATTRIBUTE, last_lookup
from ._socket_pool import Entry, SocketPool, pool_of

__all__ = ["_pool", "_server", "_hub_driver", "_hub_pool", "_refuse_foreign_thread",
           "_check_id", "_check_callback", "_stream", "_check_timeout"]


def _in_hub_of_pure(hub: Any) -> bool:
    """True when the calling greenlet is ``hub`` or a child of it."""
    current = getcurrent()
    return current.parent is hub or current is hub


# Compiled, these three names are C functions of the .pxd, which an import
# or a def could not bind: ``_get_ident`` is PyThread_get_thread_ident (what
# the unpatched _thread.get_ident returns), ``_in_hub_of`` reads the current
# greenlet and its parent through greenlet's C API, ``_greenlet_init`` loads
# that API. Pure, these lines bind them.
locals()["_get_ident"] = _driver._get_ident
locals()["_in_hub_of"] = _in_hub_of_pure
locals()["_greenlet_init"] = lambda: None
_greenlet_init()  # noqa: F821


def _hub_driver() -> Any:
    """The driver installed on the calling greenlet's hub as it is (even if
    freed), or None; creates nothing, never blocks. From a greenlet whose
    parent is the hub looked up last (every greenlet gevent spawns), or
    from that hub itself, it costs one check of the current greenlet (a
    greenlet shares its parent's thread, so that hub is the calling
    thread's); otherwise it looks the hub up and remembers it."""
    hub, driver, pool = last_lookup[0]
    if _in_hub_of(hub):  # noqa: F821
        return driver
    return _look_up()[0]


def _server() -> Any:
    """The server of the calling greenlet's hub driver, without making it a
    socket pool (a pool is made, by :func:`_pool`, only when there is no
    driver). Never blocks."""
    driver = _hub_driver()
    return driver.server if driver is not None else _pool().server


def _hub_pool() -> Any:
    """The socket pool of :func:`_hub_driver`'s driver, or None (no driver,
    or it has no pool yet); creates nothing, never blocks."""
    hub, driver, pool = last_lookup[0]
    if _in_hub_of(hub):  # noqa: F821
        return pool
    return _look_up()[1]


def _look_up() -> Tuple[Any, Any]:
    hub = get_hub_if_exists()
    if hub is None:
        return None, None
    driver = getattr(hub, _HUB_ATTRIBUTE, None)
    pool = driver.socket_pool if driver is not None else None
    last_lookup[0] = (hub, driver, pool)
    return driver, pool


def _pool(create: bool = False) -> SocketPool:
    """The pool of the hub's driver. Only calls that make a new socket
    (``create``) replace a freed driver; the others see a freed driver's
    empty pool, where every id is gone. ``create`` from an OS thread
    without a driver while another thread has the live one: RuntimeError
    (a driver made here would have nobody to dispatch it)."""
    if not create:
        # Every socket call's path: the hub's driver and its pool.
        pool = _hub_pool()
        if pool is not None:
            return pool
        return pool_of(_driver.current())
    owner = _driver.hub_thread_driver()
    if owner is not None:
        raise RuntimeError(
            "gsocket.socket: a call that makes a socket (open, listen, bind, udp...) came from "
            f"another OS thread (ident {_driver.thread_ident()}) than the hub's "
            f"(ident {owner.thread_ident}): make sockets in the hub's thread, or monkey-patch "
            "the process so that threads are greenlets")
    return pool_of(_driver.default())


def _refuse_foreign_thread(pool: SocketPool, what: str) -> None:
    """Blocking calls wait on the hub of the driver's thread: from another
    OS thread they cannot, so they fail clearly instead of hanging."""
    if pool.driver.foreign_thread():
        raise RuntimeError(
            f"gsocket.socket.{what} blocks, and was called from another OS thread than the "
            "hub's: blocking gsocket calls work only in greenlets of the hub's thread "
            "(monkey-patch the process, or hand the work to the hub)")


def _check_id(socket_id: Any) -> None:
    if isinstance(socket_id, bool) or not isinstance(socket_id, int):
        raise TypeError(f"socket id must be an int, not {type(socket_id).__name__}")


def _check_callback(callback: Any, what: str, optional: bool = False) -> None:
    if (callback is not None or not optional) and not callable(callback):
        raise TypeError(f"{what} must be callable")


def _stream(socket_id: int, what: str) -> Tuple[SocketPool, Optional[Entry]]:
    pool = _pool()
    entry = pool.entries.get(socket_id)
    if (entry is not None and entry.reader is None and not entry.is_listener
            and _get_ident() == pool.thread_ident):  # noqa: F821
        return pool, entry   # every read's path: one lookup, no calls
    if pool.driver.foreign_thread():
        _refuse_foreign_thread(pool, what)
    entry = pool.entry(socket_id)
    if entry is not None:
        if entry.is_listener:
            raise ValueError(f"socket {socket_id} is a listening socket")
        if entry.reader is not None:
            # Even when the bytes are buffered: taking them would starve the
            # waiting reader (it could wake to find them gone).
            raise RuntimeError(f"socket {socket_id} is already being read by another greenlet")
    return pool, entry


def _check_timeout(timeout: Optional[float]) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_socket_lookup")
