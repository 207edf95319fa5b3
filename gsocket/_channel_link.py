"""The parts of a channel connection: errors, the socket handed to response
functions, a waiting caller, one link (private to gsocket.channel)."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, Union

import gevent
from gevent import get_hub
from gevent.hub import Waiter

from . import driver as _driver
from . import socket as gs

Address = Tuple[str, int]


class ChannelError(Exception):
    """A request failed: the connection dropped or could not be made, the
    reply timed out, the channel was closed, or (:class:`ResponseError`)
    the response function said not ok."""


class ResponseError(ChannelError):
    """The response function returned ``ok`` false; ``data`` is what it
    returned with it. The connection stays up."""

    def __init__(self, data: Any) -> None:
        super().__init__(data if isinstance(data, str) else repr(data))
        self.data = data


class ChannelSocket:
    """What response and auth functions read from: the channel's current
    connection. Reads block the calling greenlet and raise ChannelError
    once the socket closed."""

    __slots__ = ("id",)

    def __init__(self, socket_id: int) -> None:
        self.id = socket_id

    def read(self, n: Optional[int] = None) -> bytes:
        """``n`` bytes exactly (n None: whatever is buffered, at least one)."""
        data = gs.read(self.id, n)
        if data is None:
            raise ChannelError(f"socket {self.id} closed")
        return data

    def readline(self, sep: Union[bytes, str] = b"\n") -> bytes:
        """The next line, without ``sep``."""
        line = gs.readline(self.id, sep)
        if line is None:
            raise ChannelError(f"socket {self.id} closed")
        return line

    def __repr__(self) -> str:
        return f"<ChannelSocket id={self.id}>"


class Pending:
    """One caller waiting for its reply."""

    __slots__ = ("waiter", "hub", "done", "parts")

    def __init__(self) -> None:
        self.hub = get_hub()
        self.waiter = Waiter(self.hub)
        self.done = False
        self.parts: Optional[List[Any]] = None   # session mode, multi-part replies

    def resolve(self, ok: Any, data: Any) -> None:
        self._set((bool(ok), data))

    def fail(self, message: str, cause: Optional[BaseException]) -> None:
        self._set((None, (message, cause)))

    def _set(self, outcome: Tuple[Optional[bool], Any]) -> None:
        if not self.done:
            self.done = True
            self.hub.loop.run_callback(self.waiter.switch, outcome)

    @staticmethod
    def outcome(result: Tuple[Optional[bool], Any]) -> Any:
        ok, data = result
        if ok:
            return data
        if ok is None:
            message, cause = data
            raise ChannelError(message) from cause
        raise ResponseError(data)


class Link:
    """One connection and what waits on it."""

    __slots__ = ("id", "sock", "address", "alive", "queue", "sessions", "dispatcher")

    def __init__(self, socket_id: int, address: Address) -> None:
        self.id = socket_id
        self.sock = ChannelSocket(socket_id)
        self.address = address
        self.alive = True
        self.queue: Deque[Tuple[Callable[[ChannelSocket], Any], "Pending"]] = deque()
        self.sessions: Dict[Any, "Pending"] = {}
        self.dispatcher: Optional[gevent.Greenlet] = None

    def idle(self) -> bool:
        return not self.queue and not self.sessions


def before_block() -> None:
    # A request made from a driver owner callback (a gate handler, an accept
    # callback) must not hold up the dispatcher that will deliver its reply.
    _driver.current().before_block()


def fields(result: Any, count: int, what: str) -> Tuple[Any, ...]:
    """``count`` fields plus an optional ``more`` flag (False when absent)."""
    if isinstance(result, (tuple, list)) and len(result) in (count, count + 1):
        return tuple(result) + (False,) * (count + 1 - len(result))
    raise TypeError(f"{what} must return a tuple of {count} or {count + 1} items, got {result!r}")


def check_port(port: Any) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be an int in 1..65535, got {port!r}")
