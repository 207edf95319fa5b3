"""Driver: routes SocketServer events to their owners (skynet_socket).

Theory of operation
-------------------
A :class:`Driver` owns one :class:`~gsocket.server.SocketServer` and one
dispatcher greenlet that polls it. Every event carries the ``opaque`` of the
socket's owner; the dispatcher translates the event type to its
``SKYNET_SOCKET_TYPE_*`` number and calls the owner registered for that
opaque with ``(skynet_type, message)``. Owners are plain callables: the
``gsocket.socket`` layer is one, a gate or a user's handler can be others.

Owners run inside the dispatcher. An owner callback may block in any way
(``gevent.sleep``, a queue, an Event, a monkey-patched ``time.sleep`` or
``requests.get``, a blocking gsocket call): the dispatcher's job then passes
to another greenlet, so other sockets keep flowing, and when the callback
returns the old dispatcher parks as a *spare*, which the next hand-over
resumes instead of making a greenlet (at most :data:`SPARE_DISPATCHERS`
wait; more end). This is how skynet runs each socket message in its own
coroutine, reusing finished ones from its coroutine pool, at the price of a
greenlet only while a callback really blocks: an accept callback that is
the connection's whole handler costs no greenlet made per connection.
Dispatchers are plain greenlets whose parent is the hub. Two signals tell
that a callback blocks, both exact and off the hot path:

* gsocket's own blocking calls call :meth:`Driver.before_block` first;
* the event channel reports a *stall*: events wait while nobody polls, seen
  from the hub (so the dispatcher greenlet has switched away) while the
  dispatcher is inside an owner callback. A callback that blocks without
  any event waiting costs nothing; the first event pushed meanwhile (or one
  left queued behind the blocked message) brings a new dispatcher.

The default driver of a hub
---------------------------
:func:`default`, :func:`current`, :func:`installed` and
:func:`install_default` are the one place that knows where a hub keeps its
default driver; nothing else in gsocket reads or writes it. A driver whose
dispatcher ended (after :meth:`Driver.exit`) frees itself, so ``default()``
never hands out a driver that nobody dispatches.
"""

from __future__ import annotations

import logging
from time import monotonic
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import weakref

import gevent
from gevent import get_hub
from gevent._hub_local import get_hub_if_exists
from gevent.monkey import get_original, is_module_patched
from greenlet import getcurrent, greenlet

from .events import (
    SKYNET_SOCKET_TYPE_ACCEPT, SKYNET_SOCKET_TYPE_CLOSE, SKYNET_SOCKET_TYPE_CONNECT,
    SKYNET_SOCKET_TYPE_DATA, SKYNET_SOCKET_TYPE_ERROR, SKYNET_SOCKET_TYPE_UDP,
    SKYNET_SOCKET_TYPE_WARNING, SOCKET_ACCEPT, SOCKET_CLOSE, SOCKET_DATA, SOCKET_ERROR,
    SOCKET_EXIT, SOCKET_OPEN, SOCKET_UDP, SOCKET_WARNING, SocketInfo, SocketMessage,
)
from .server import SendData, SocketServer

__all__ = [
    "Driver", "default", "current", "installed", "install_default", "hub_thread_driver", "Owner",
    "SKYNET_SOCKET_TYPE_DATA", "SKYNET_SOCKET_TYPE_CONNECT", "SKYNET_SOCKET_TYPE_CLOSE",
    "SKYNET_SOCKET_TYPE_ACCEPT", "SKYNET_SOCKET_TYPE_ERROR", "SKYNET_SOCKET_TYPE_UDP",
    "SKYNET_SOCKET_TYPE_WARNING", "SPARE_DISPATCHERS",
]

logger = logging.getLogger("gsocket.driver")
threads_logger = logging.getLogger("gsocket.threads")

_get_ident: Callable[[], int] = get_original("_thread", "get_ident")

#: Every driver alive; calls made from a thread without a driver of its own
#: look here for the default driver of another thread's hub.
_all_drivers: "weakref.WeakSet[Driver]" = weakref.WeakSet()
_thread_warning_given = False

Owner = Callable[[int, SocketMessage], None]

#: Dispatcher greenlets kept parked, at most, once the callback that made
#: them hand over returned: the next take-over resumes one instead of
#: making a greenlet (skynet's coroutine pool). Each holds ~5 KiB.
SPARE_DISPATCHERS = 256

#: SOCKET_* (socket_server.h) -> SKYNET_SOCKET_TYPE_* (skynet_socket.h).
SKYNET_TYPE = {
    SOCKET_DATA: SKYNET_SOCKET_TYPE_DATA,
    SOCKET_OPEN: SKYNET_SOCKET_TYPE_CONNECT,
    SOCKET_CLOSE: SKYNET_SOCKET_TYPE_CLOSE,
    SOCKET_ACCEPT: SKYNET_SOCKET_TYPE_ACCEPT,
    SOCKET_ERROR: SKYNET_SOCKET_TYPE_ERROR,
    SOCKET_UDP: SKYNET_SOCKET_TYPE_UDP,
    SOCKET_WARNING: SKYNET_SOCKET_TYPE_WARNING,
}


class Driver:
    """One SocketServer plus the dispatcher greenlet that routes its events.

    ``Driver()`` creates a server and starts dispatching at once (skynet's
    ``skynet_socket_init``); :meth:`free` stops everything.
    """

    def __init__(self, server: Optional[SocketServer] = None, start: bool = True) -> None:
        self.server = server if server is not None else SocketServer()
        self.hub = get_hub()
        #: The OS thread whose hub runs this driver (unpatched ident).
        self.thread_ident = _get_ident()
        _all_drivers.add(self)
        self._owners: Dict[int, Owner] = {}
        #: opaque -> DATA handler that may run in the hub (register_direct).
        self._direct: Dict[int, Callable[[int, bytes], None]] = {}
        self._next_opaque = 0
        #: The greenlet dispatching events now (None while nobody does);
        #: read it, never set it.
        self.dispatcher: Optional[greenlet] = None
        #: Earlier dispatchers still inside a callback that blocked.
        self._retired: Set[Any] = set()
        #: Earlier dispatchers whose callback returned, parked until a
        #: take-over needs a dispatcher again (skynet's coroutine pool).
        self._spares: List[Any] = []
        #: True while the current dispatcher greenlet is inside route().
        self._in_route = False
        self._freed = False
        #: Per-driver state of the gsocket.socket layer (created on first use).
        self.socket_pool: Any = None
        if start:
            self.init()

    # ------------------------------------------------------------------ lifecycle

    def init(self) -> None:
        """Start the dispatcher greenlet if it is not running (RuntimeError
        once freed). Returns None; never blocks."""
        if self._freed:
            raise RuntimeError("this Driver was freed")
        if self.dispatcher is None:
            self._spawn_dispatcher()

    def _spawn_dispatcher(self) -> None:
        self._in_route = False
        spares = self._spares
        # A raw greenlet, not a gevent.Greenlet: a callback that blocks keeps
        # its dispatcher (and the saved C stack under it) for as long as it
        # waits, one per connection when the callback is the handler, and
        # gevent's links, spawn record and run() frame add ~1 KiB to each.
        dispatcher = self.dispatcher = spares.pop() if spares else greenlet(
            self._dispatch_loop, self.hub)
        self.hub.loop.run_callback(dispatcher.switch)     # a spare resumes in _park()
        _watch_stalls(self.server, self._on_stall)
        self.server.set_direct(dispatcher, self._direct)

    def exit(self) -> None:
        """Ask the dispatcher to stop after the events already queued; when
        it reaches the EXIT event the driver frees itself (every socket is
        closed, blocked readers get None), so that no socket call waits on a
        driver nobody dispatches. A driver polled by hand (``start=False``)
        sees EXIT as ``poll() == 0`` instead. Never blocks."""
        self.server.exit()

    def free(self) -> None:
        """Stop the dispatcher and release the server (every socket is
        closed at once). Safe to call twice. Never blocks for long."""
        if self._freed:
            return
        self._freed = True
        current = getcurrent()
        dispatchers = [dispatcher for dispatcher in [self.dispatcher, *self._retired, *self._spares]
                       if dispatcher is not None and dispatcher is not current]
        self.dispatcher = None
        self._retired.clear()
        del self._spares[:]
        for dispatcher in dispatchers:
            self.hub.loop.run_callback(_end_greenlet, dispatcher)
        self.server.release()
        if self.socket_pool is not None:
            self.socket_pool.release()
        if dispatchers and current is not self.hub:
            _wait_dead(dispatchers, timeout=1.0)

    @property
    def freed(self) -> bool:
        """True once :meth:`free` ran (also after EXIT ended the dispatcher)."""
        return self._freed

    # ------------------------------------------------------------------ owners

    def register(self, owner: Owner, opaque: Optional[int] = None) -> int:
        """Route events whose opaque is ``opaque`` (a new number when None)
        to ``owner(skynet_type, message)``; return the opaque. Never blocks."""
        if not callable(owner):
            raise TypeError("owner must be callable")
        if opaque is None:
            self._next_opaque += 1
            while self._next_opaque in self._owners:
                self._next_opaque += 1
            opaque = self._next_opaque
        self._owners[opaque] = owner
        return opaque

    def unregister(self, opaque: int) -> None:
        """Stop routing to that owner; its later events are dropped (and
        their sockets closed). Returns None; never blocks."""
        self._owners.pop(opaque, None)
        self._direct.pop(opaque, None)

    def register_direct(self, opaque: int, on_data: Callable[[int, bytes], None]) -> None:
        """Let DATA events of ``opaque`` skip the dispatcher: while the
        dispatcher waits with nothing queued, ``on_data(socket_id, data)``
        runs at once in the greenlet that read the bytes (the hub), so it
        must never block or switch (buffer the bytes, wake readers with
        ``server.call_soon``); what it raises is logged. The owner still
        gets every other event, and DATA too whenever events are queued or
        the driver is polled by hand. Returns None; never blocks."""
        if opaque not in self._owners:
            raise ValueError(f"no owner {opaque} registered")
        self._direct[opaque] = on_data

    # ------------------------------------------------------------------ dispatch

    def _dispatch_loop(self) -> None:
        # The run of every dispatcher greenlet. Its parent is the hub: nothing
        # but GreenletExit may leave it.
        poll = self.server.poll
        route = self.route
        me = getcurrent()
        try:
            while True:
                while self.dispatcher is me:
                    message = poll()
                    if message is None or message.type == SOCKET_EXIT:
                        if self.dispatcher is me:
                            self.dispatcher = None
                            if message is not None and not self._freed:
                                # Nobody dispatches this driver any more: free
                                # it, or its sockets would wait forever.
                                self.free()
                        return
                    self._in_route = True
                    route(message)
                    if self.dispatcher is me:
                        self._in_route = False
                # Handed over while a callback blocked; that callback returned.
                self._retired.discard(me)
                if not self._park(me):
                    return
        except Exception:
            logger.exception("socket dispatcher failed")
            if self.dispatcher is me:
                self.dispatcher = None

    def _park(self, me: Any) -> bool:
        """Wait as a spare until a take-over makes this greenlet the
        dispatcher again (True); False at once when SPARE_DISPATCHERS wait
        already or the driver was freed."""
        spares = self._spares
        if self._freed or len(spares) >= SPARE_DISPATCHERS:
            return False
        spares.append(me)
        try:
            while self.dispatcher is not me:      # a stray switch parks again
                self.hub.switch()
        except BaseException:
            if me in spares:
                spares.remove(me)
            raise
        return True

    def _on_stall(self) -> None:
        # Called from the hub by the event channel: events wait and nobody
        # polls. Inside route() that means an owner callback blocked.
        if self._in_route and not self._freed and self.dispatcher is not getcurrent():
            self._take_over()

    def _take_over(self) -> None:
        dispatcher = self.dispatcher
        if dispatcher is not None:
            self._retired.add(dispatcher)
        self._spawn_dispatcher()

    def poll(self, timeout: Optional[float] = None) -> int:
        """Route one event by hand (skynet_socket_poll); return 0 after EXIT,
        -1 if nothing came within ``timeout``, 1 otherwise. Blocks the
        calling greenlet until then."""
        message = self.server.poll(timeout)
        if message is None:
            return -1
        if message.type == SOCKET_EXIT:
            return 0
        self.route(message)
        return 1

    def route(self, message: SocketMessage) -> None:
        """Hand one event to its owner; owner exceptions are logged. Returns
        None; blocks only as long as the owner callback does."""
        owner = self._owners.get(message.opaque)
        if owner is None:
            self._drop(message)
            return
        try:
            owner(SKYNET_TYPE[message.type], message)
        except Exception:
            logger.exception("socket owner %d failed on %r", message.opaque, message)

    def _drop(self, message: SocketMessage) -> None:
        """No owner: log, and close what would otherwise leak."""
        kind = message.type
        logger.warning("no owner %d for %r: dropped", message.opaque, message)
        if kind == SOCKET_ACCEPT:
            self.server.close(message.ud)
        elif kind in (SOCKET_DATA, SOCKET_CLOSE, SOCKET_UDP):
            self.server.close(message.id)
        elif kind == SOCKET_ERROR:
            self.server.shutdown(message.id)

    def before_block(self) -> None:
        """Called by gsocket before the current greenlet blocks: if it is
        the dispatcher (an owner callback is about to wait), a new
        dispatcher takes over at once so that events keep flowing. Never
        blocks. (A callback that blocks otherwise is caught by the stall
        signal, see the module docstring.)"""
        if getcurrent() is self.dispatcher and not self._freed:
            self._take_over()

    def in_dispatcher(self) -> bool:
        """True when called from the dispatcher greenlet. Never blocks."""
        return getcurrent() is self.dispatcher

    def foreign_thread(self) -> bool:
        """True when the caller runs in another OS thread than this
        driver's hub (a real thread of an unpatched legacy app). Never
        blocks."""
        return _get_ident() != self.thread_ident

    def call_threadsafe(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` soon in the hub's thread, in call order
        with the other calls made from the same thread. Never blocks.
        ``function`` must not block; what it raises is logged."""
        if not self._freed:
            self.server.call_threadsafe(function, *args)

    # ------------------------------------------------------------------ operations

    def send(self, socket_id: int, data: SendData) -> bool:
        """SocketServer.send: queue ``data`` with high priority; return
        False if the id is not a live socket. Never blocks."""
        return self.server.send(socket_id, data)

    def send_lowpriority(self, socket_id: int, data: SendData) -> bool:
        """SocketServer.send_lowpriority: queue ``data`` behind high-priority
        data; return False if the id is not live. Never blocks."""
        return self.server.send_lowpriority(socket_id, data)

    def listen(self, host: Optional[str], port: int, backlog: int = 32, opaque: int = 0,
               reuseport: bool = False, *, ssl_context: Any = None) -> int:
        """SocketServer.listen: bind+listen now and return the listen id;
        OSError on failure. Blocks only to resolve a host name."""
        return self.server.listen(host, port, backlog, opaque, reuseport, ssl_context=ssl_context)

    def connect(self, host: str, port: int, opaque: int = 0, *, ssl_context: Any = None,
                server_hostname: Optional[str] = None) -> int:
        """SocketServer.connect: return the id now, OPEN or ERROR follows.
        Never blocks."""
        return self.server.connect(host, port, opaque, ssl_context=ssl_context,
                                   server_hostname=server_hostname)

    def block_connect(self, host: str, port: int, opaque: int = 0, *, ssl_context: Any = None,
                      server_hostname: Optional[str] = None) -> int:
        """SocketServer.block_connect: return the id of a connected socket,
        or raise OSError. Blocks the calling greenlet (another dispatcher
        takes over when called from a callback)."""
        self.before_block()
        return self.server.block_connect(host, port, opaque, ssl_context=ssl_context,
                                         server_hostname=server_hostname)

    def shutdown_write(self, socket_id: int) -> None:
        """SocketServer.shutdown_write: FIN after the queued bytes; reading
        goes on. Returns None; never blocks."""
        self.server.shutdown_write(socket_id)

    def bind(self, fd: int, opaque: int = 0) -> int:
        """SocketServer.bind: adopt an fd (OPEN "binding" follows) and return
        its id. Never blocks."""
        return self.server.bind(fd, opaque)

    def close(self, socket_id: int) -> None:
        """SocketServer.close: graceful (queued bytes flush, then FIN).
        Returns None; never blocks."""
        self.server.close(socket_id)

    def shutdown(self, socket_id: int) -> None:
        """SocketServer.shutdown: forceful (queued bytes dropped). Returns
        None; never blocks."""
        self.server.shutdown(socket_id)

    def start(self, socket_id: int, opaque: Optional[int] = None) -> None:
        """SocketServer.start: accept (listener) or read (connection), owned
        by ``opaque`` when given. Returns None; never blocks."""
        self.server.start(socket_id, opaque)

    def pause(self, socket_id: int) -> None:
        """SocketServer.pause: stop reading until start(id). Returns None;
        never blocks."""
        self.server.pause(socket_id)

    def nodelay(self, socket_id: int) -> None:
        """SocketServer.nodelay: set TCP_NODELAY. Returns None; never blocks."""
        self.server.nodelay(socket_id)

    def udp(self, host: Optional[str] = None, port: int = 0, opaque: int = 0) -> int:
        """SocketServer.udp: return the id of a UDP socket (bound when host
        or port given). Blocks only to resolve a host name."""
        return self.server.udp(host, port, opaque)

    def udp_listen(self, host: str, port: int, opaque: int = 0) -> int:
        """SocketServer.udp_listen: return the id of a UDP socket bound to
        (host, port). Blocks only to resolve a host name."""
        return self.server.udp_listen(host, port, opaque)

    def udp_dial(self, host: str, port: int, opaque: int = 0) -> int:
        """SocketServer.udp_dial: return the id of a UDP socket whose default
        destination is (host, port). Blocks only to resolve a host name."""
        return self.server.udp_dial(host, port, opaque)

    def udp_connect(self, socket_id: int, host: str, port: int) -> None:
        """SocketServer.udp_connect: set the default destination. Returns
        None; blocks only to resolve a host name (in the caller)."""
        self.server.udp_connect(socket_id, host, port)

    def udp_send(self, socket_id: int, address: Optional[Tuple[str, int]], data: SendData) -> bool:
        """SocketServer.udp_send: send one datagram; return False when it
        cannot. Blocks only to resolve a host name (in the caller)."""
        return self.server.udp_send(socket_id, address, data)

    def udp_address(self, message: SocketMessage) -> Optional[Tuple[str, int]]:
        """SocketServer.udp_address: the (host, port) a SOCKET_UDP message
        came from, else None. Never blocks."""
        return self.server.udp_address(message)

    def info(self) -> List[SocketInfo]:
        """SocketServer.info: return a netstat row (SocketInfo) per live
        socket. Never blocks."""
        return self.server.info()


#: The hub attribute holding its default driver: read and written only by
#: default(), current(), installed() and install_default() below (and read
#: by gsocket._socket_lookup, through last_lookup).
_HUB_ATTRIBUTE = "_gsocket_driver"

_NO_HUB = object()
#: ``[(hub, driver, driver's socket pool)]``: the hub whose attribute
#: gsocket.socket read last and what it held, so that the next call from a
#: greenlet of that hub finds them without a thread-local lookup (one tuple,
#: replaced whole: threads never see half of it). Every write of the
#: attribute resets it, and so does a driver's first socket pool.
last_lookup: List[Tuple[Any, Optional[Driver], Any]] = [(_NO_HUB, None, None)]


def forget_lookup() -> None:
    """Reset :data:`last_lookup` (the next socket call looks the hub up).
    Never blocks."""
    last_lookup[0] = (_NO_HUB, None, None)


def _set_driver(hub: Any, driver: Optional[Driver]) -> None:
    setattr(hub, _HUB_ATTRIBUTE, driver)
    forget_lookup()


def installed(hub: Any = None) -> Optional[Driver]:
    """The default driver of ``hub`` (the current thread's when None) as it
    is, even if freed; None when it has none. Creates nothing, never
    blocks."""
    if hub is None:
        hub = get_hub_if_exists()
        if hub is None:
            return None
    return getattr(hub, _HUB_ATTRIBUTE, None)


def install_default(driver: Optional[Driver], hub: Any = None) -> Optional[Driver]:
    """Make ``driver`` the default driver of ``hub`` (the current thread's
    when None; ``driver`` None removes it) and return the previous one, so
    that ``install_default(previous)`` restores it. Never blocks."""
    if hub is None:
        hub = get_hub() if driver is None else driver.hub
    previous = getattr(hub, _HUB_ATTRIBUTE, None)
    _set_driver(hub, driver)
    return previous


def default() -> Driver:
    """The driver of the current thread's hub, created (and started) on
    first use; a new one replaces a driver that was freed (also by the end
    of its dispatcher after :meth:`Driver.exit`). Never blocks."""
    hub = get_hub()
    driver = getattr(hub, _HUB_ATTRIBUTE, None)
    if driver is None or driver._freed:
        driver = Driver()
        _set_driver(hub, driver)
    return driver


def current() -> Driver:
    """The current hub's driver as it is, even if freed (then every id is
    gone); created only when there has never been one. gsocket.socket uses
    it for calls on existing ids, so that a handler cleaning up after
    free() does not bring a new driver to life.

    Called from an OS thread that has no driver of its own while exactly
    one other thread has a live one, it returns that driver: its ids are
    the only ones the caller can mean (see :meth:`Driver.foreign_thread`).
    Never blocks.
    """
    hub = get_hub_if_exists()
    driver = getattr(hub, _HUB_ATTRIBUTE, None) if hub is not None else None
    if driver is None:
        owner = _other_thread_driver()
        if owner is not None:
            return owner
        driver = default()
    return driver


def thread_ident() -> int:
    """The calling OS thread's ident (the real one, also under monkey-patching)."""
    return _get_ident()


def hub_thread_driver() -> Optional[Driver]:
    """For a call made in an OS thread that has no driver of its own: the
    one live default driver of another thread (whose ids the caller means),
    else None. Never blocks, creates nothing."""
    if installed() is not None:
        return None
    return _other_thread_driver()


def _end_greenlet(target: Any) -> None:
    # In the hub: GreenletExit where ``target`` waits (one that never ran
    # just dies).
    if not target.dead:
        target.throw(gevent.GreenletExit)


def _wait_dead(greenlets: List[Any], timeout: float) -> None:
    """Block the calling greenlet (not the hub) until every one of
    ``greenlets`` is dead, at most ``timeout`` seconds."""
    deadline = monotonic() + timeout
    gevent.sleep(0)                   # after the hub's queued callbacks
    while any(not target.dead for target in greenlets) and monotonic() < deadline:
        gevent.sleep(0.005)


def _watch_stalls(server: SocketServer, hook: Callable[[], None]) -> None:
    # The event channel calls ``hook`` from the hub when events wait while
    # nobody polls (see the module docstring). The one place the driver
    # reaches past the server's public operations: the channel is the
    # server's, and the hook must be handed down to it.
    server.set_stall_hook(hook)


def _other_thread_driver() -> Optional[Driver]:
    """The one live default driver of another OS thread, or None."""
    me = _get_ident()
    live = [driver for driver in list(_all_drivers)
            if driver.thread_ident != me and not driver._freed
            and getattr(driver.hub, _HUB_ATTRIBUTE, None) is driver]
    if len(live) != 1:
        return None
    _warn_foreign_thread_once(live[0])
    return live[0]


def _warn_foreign_thread_once(driver: Driver) -> None:
    global _thread_warning_given
    if _thread_warning_given or is_module_patched("threading"):
        return
    _thread_warning_given = True
    threads_logger.warning(
        "gsocket is called from a real OS thread (ident %d), not from the hub's thread (ident %d): "
        "this process is not monkey-patched, so threading.Thread makes real threads. Their "
        "non-blocking socket calls (write, close, ...) hop onto the hub in order; blocking calls "
        "(read, readline, open, ...) raise RuntimeError there. Call gevent.monkey.patch_all() "
        "first to run such code as greenlets.", _get_ident(), driver.thread_ident)


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_driver")
