"""Write backpressure and graceful stop for gsocket.socket, on a pool.

``drain`` waits, in the calling greenlet only, until a socket's send queue
falls to a threshold (the server calls back from its writer). ``stop``
closes a listener at once, then gives the connections it accepted a grace
period to be closed by their handlers (flushing what they wrote) before
it shuts the rest down.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional, Tuple

import gevent
from gevent import Timeout
from gevent.hub import Waiter

__all__ = ["drain", "stop", "wait_open", "STOP_POLL"]

logger = logging.getLogger("gsocket.socket")

#: How often stop() looks whether the connections have closed (seconds).
STOP_POLL = 0.02


def wait_open(pool: Any, socket_id: int) -> bool:
    """For code that starts accepted ids (gsocket.serve): block the calling
    greenlet while the id's TLS handshake runs; True once open (at once for
    a plain TCP id), False when the handshake failed or the id closed."""
    pool.driver.before_block()
    return pool.wait_open_id(socket_id)


def drain(pool: Any, socket_id: int, below: int, timeout: Optional[float]) -> bool:
    """socket.drain in the hub's thread (arguments checked): True once at
    most ``below`` bytes are queued, False if the socket is or gets closed;
    TimeoutError after ``timeout`` seconds (nothing is dropped)."""
    server = pool.server
    pending = server.pending_bytes(socket_id)
    if pending is None:
        return False
    if pending <= below:
        return True
    hub = pool.hub
    waiter = Waiter(hub)

    def done(reached: bool) -> None:
        # Called from the writer (the hub) or from a closing greenlet:
        # Waiter.switch must run in the hub, so always go through it.
        hub.loop.run_callback(waiter.switch, reached)

    cancel = server.when_below(socket_id, below, done)
    if cancel is None:
        return False
    pool.driver.before_block()
    try:
        if timeout is None:
            return waiter.get()
        with Timeout(timeout, TimeoutError(
                f"socket {socket_id}: {server.pending_bytes(socket_id)} bytes still queued "
                f"after {timeout} s (waiting for at most {below})")):
            return waiter.get()
    finally:
        cancel()


def stop(pool: Any, listen_id: int, grace: float) -> Tuple[int, int]:
    """socket.stop in the hub's thread: close the listener now, wait up to
    ``grace`` seconds for its connections to be closed by their handlers,
    shut the rest down. Returns (closed by handlers, closed by force)."""
    server = pool.server
    entry = pool.entries.get(listen_id)
    if entry is None or not entry.is_listener:
        if server.pending_bytes(listen_id) is None:
            raise ConnectionError(f"socket {listen_id}: invalid socket")
        raise ValueError(f"socket {listen_id} is not a listener started here")
    children = server.accepted(listen_id)
    pool.close_id(listen_id)
    deadline = time.monotonic() + grace
    alive = children
    pool.driver.before_block()
    while True:
        alive = [child for child in alive if server.pending_bytes(child) is not None]
        remaining = deadline - time.monotonic()
        if not alive or remaining <= 0:
            break
        gevent.sleep(min(STOP_POLL, remaining))
    for child in alive:
        logger.info("socket.stop(%d): closing %d by force after %g s", listen_id, child, grace)
        pool.shutdown_id(child)
    return len(children) - len(alive), len(alive)
