"""Small helpers shared by the server and every kind of slot: the logger,
the errors that mean "try again later", and how addresses and OS errors are
written in events."""

from __future__ import annotations

import logging
import os
import select
from typing import Any

from gevent.monkey import get_original

__all__ = ["logger", "WOULD_BLOCK", "format_address", "error_text", "peer_hung_up"]

#: The logger of the socket server and its slots.
logger = logging.getLogger("gsocket.server")

#: A non-blocking call that found nothing to do: wait for the next wake-up.
WOULD_BLOCK = (BlockingIOError, InterruptedError)


def format_address(address: Any) -> str:
    """``"host:port"`` for IPv4, ``"[host]:port"`` for IPv6 addresses,
    ``"unix:PATH"`` for unix sockets (``"unix:"`` for an unnamed one);
    ``str(address)`` for anything else. Never blocks."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    if isinstance(address, str):
        return "unix:" + address
    return str(address)


def error_text(err: BaseException) -> str:
    """The text an ERROR event carries for ``err``: the OS message for an
    errno, else the exception's text (or its class name). Never blocks."""
    if isinstance(err, OSError) and err.errno is not None:
        return os.strerror(err.errno)
    return str(err) or type(err).__name__


#: poll(2) unpatched (a zero timeout never blocks), and the flag that
#: reports a peer's FIN while unread bytes still sit before it (Linux).
_poll = get_original("select", "poll")
_POLLRDHUP = getattr(select, "POLLRDHUP", 0)


def peer_hung_up(fd: int) -> bool:
    """True when the OS says the peer of a stream socket closed its side
    (FIN or reset), without reading a byte, so also behind unread data;
    False when it did not, or where the OS cannot tell. Never blocks."""
    if not _POLLRDHUP:
        return False
    poller = _poll()
    poller.register(fd, _POLLRDHUP)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_netutil")
