"""Unix domain socket addresses: a host written ``"unix:/path/to.sock"``.

A listener's file is made by bind; one left behind by a dead process (a
stale file nobody accepts on) is replaced, one a live listener holds is an
OSError, and the listener removes its own file when it closes (only if the
file is still the one it made).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any, List, Optional, Tuple

import _socket

__all__ = ["PREFIX", "unix_path", "address_info", "bind", "remove"]

#: How a host names a unix socket path.
PREFIX = "unix:"


def unix_path(host: Any) -> Optional[str]:
    """The path of a ``"unix:/path"`` host, None for any other host;
    ValueError for ``"unix:"`` without a path. Never blocks."""
    if not isinstance(host, str) or not host.startswith(PREFIX):
        return None
    path = host[len(PREFIX):]
    if not path or "\0" in path:
        raise ValueError(f"bad unix socket address {host!r}: expected 'unix:/path'")
    return path


def address_info(path: str, socktype: int = _socket.SOCK_STREAM) -> List[Tuple[Any, ...]]:
    """A getaddrinfo-style list of one entry for ``path``."""
    return [(_socket.AF_UNIX, socktype, 0, "", path)]


def bind(sock: Any, path: str) -> int:
    """Bind ``sock`` to ``path``, replacing a stale socket file; return the
    inode of the file made. OSError(EADDRINUSE) when a live listener holds
    it, or when the path is not a socket. Never blocks (a probe connect to
    a unix socket answers at once)."""
    try:
        sock.bind(path)
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        if not _is_stale(path):
            raise OSError(errno.EADDRINUSE, f"{path} is in use by a live listener") from None
        os.unlink(path)
        sock.bind(path)
    return os.stat(path).st_ino


def _is_stale(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return True
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EADDRINUSE, f"{path} exists and is not a socket")
    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    except BlockingIOError:
        return False          # a live listener with a full backlog
    finally:
        probe.close()
    return False


def remove(path: str, inode: int) -> None:
    """Remove the socket file at ``path`` if it is still the one with
    ``inode`` (another listener may have replaced it meanwhile)."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass
