"""The flow-control operations of :class:`~gsocket.server.SocketServer`
(a mixin): half-close, what is queued for a peer and a wake-up when it
falls under a mark (``drain``), TLS handshake state, and the connections a
listener keeps (``max_connections``, ``idle_timeout``, ``stop``)."""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from ._arguments import check_id, check_limits
from ._listener import ListenerSlot
from ._slot import CLOSED
from ._stream import StreamSlot

__all__ = ["FlowOperations"]


class FlowOperations:
    """SocketServer's flow-control methods; the server provides ``_live``, ``_slots``,
    ``_other_thread`` and ``_from_other_thread``."""

    _live: Any
    _slots: Any
    _other_thread: Any
    _from_other_thread: Any

    def shutdown_write(self, socket_id: int) -> None:
        """Half-close the sending side: later sends return False, the FIN
        goes out after every queued byte, and reading goes on (CLOSE comes
        when the peer closes its side). Ignored for unknown ids and
        non-stream sockets. Returns None; never blocks."""
        if self._other_thread():
            check_id(socket_id)
            self._from_other_thread(self.shutdown_write, socket_id)
            return
        slot = self._live(socket_id)
        if isinstance(slot, StreamSlot):
            slot.shutdown_write()

    def stream(self, socket_id: int) -> Optional[StreamSlot]:
        """The stream of ``socket_id`` (a TCP connection or an adopted fd),
        or None for other ids and ids gone. Its ``send(data, low_priority)``
        is what :meth:`send` calls, and ``pending_bytes`` what
        :meth:`pending_bytes` returns while its ``state`` is not CLOSED:
        gsocket.socket keeps it per started id and calls it directly, so
        that a write or a drain does not look the id up again. Hub's thread
        only; never blocks."""
        slot = self._slots.get(socket_id)
        return slot if isinstance(slot, StreamSlot) else None

    def handshaking(self, socket_id: int) -> bool:
        """True while ``socket_id`` is a TLS connection whose handshake
        runs (its OPEN is still to come). Never blocks."""
        slot = self._live(socket_id)
        return getattr(slot, "handshaking", False) is True   # only TLS slots have it

    def pending_bytes(self, socket_id: int) -> Optional[int]:
        """Bytes queued for the peer of ``socket_id`` (None: no such id).
        Never blocks."""
        slot = self._slots.get(socket_id)
        if slot is None:
            self._live(socket_id)   # TypeError for a non-int id
            return None
        return slot.pending_bytes

    def when_below(self, socket_id: int, below: int,
                   callback: Callable[[bool], None]) -> Optional[Callable[[], None]]:
        """Call ``callback(True)`` once at most ``below`` bytes are queued for
        the peer (at once if so already), or ``callback(False)`` if the
        socket closes first; either may run in any greenlet of the hub's
        thread. Returns a function that cancels the wait, or None (callback
        never called) when the id is gone or not a stream. Hub's thread
        only; never blocks."""
        if not isinstance(below, int) or isinstance(below, bool) or below < 0:
            raise ValueError(f"below must be an int >= 0, got {below!r}")
        slot = self._live(socket_id)
        if not isinstance(slot, StreamSlot) or slot.state is CLOSED:
            return None
        slot.when_below(below, callback)
        return lambda: slot.forget_below(callback)

    def limit_accept(self, listen_id: int, max_connections: Optional[int] = None,
                     idle_timeout: Optional[float] = None) -> None:
        """Make listener ``listen_id`` keep the connections it accepts from
        now on (see :meth:`accepted`); with ``max_connections`` it stops
        accepting while that many are alive (peers wait in the kernel's
        backlog) and accepts again when one closes; with ``idle_timeout``
        a connection that receives nothing for that many seconds is closed
        (CLOSE is reported). ValueError for bad limits or a non-listener id.
        Hub's thread only; never blocks."""
        check_limits(max_connections, idle_timeout)
        slot = self._live(listen_id)
        if not isinstance(slot, ListenerSlot):
            raise ValueError(f"socket {listen_id} is not a listener")
        slot.set_limits(max_connections, None if idle_timeout is None else float(idle_timeout))

    def accepted(self, listen_id: int) -> List[int]:
        """The ids of the live connections accepted through ``listen_id``
        since :meth:`limit_accept` (empty for other ids). Never blocks."""
        slot = self._live(listen_id)
        return slot.child_ids() if isinstance(slot, ListenerSlot) else []


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_flow_ops")
