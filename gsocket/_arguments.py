"""Argument checks and send-data normalisation for SocketServer.

Misuse raises TypeError/ValueError at the call, with a message naming what
was wrong; data to send becomes bytes-like objects (or a list of them)
that the writer can hand to ``send``/``sendmsg`` as they are.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

__all__ = ["check_port", "check_host", "required_host", "check_opaque", "normalize", "frozen",
           "check_limits", "check_id", "split_address"]


def check_port(port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        else:
            raise TypeError(f"port must be an int, not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    return port


def check_host(host: Any) -> Optional[str]:
    if host is None or host == "":
        return None
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def required_host(host: Any, operation: str) -> str:
    checked = check_host(host)
    if checked is None:
        raise ValueError(f"{operation} needs a host")
    return checked


def check_limits(max_connections: Any, idle_timeout: Any) -> None:
    """A listener's limits: None, or a positive int / a positive number."""
    if max_connections is not None and (isinstance(max_connections, bool) or
                                        not isinstance(max_connections, int) or max_connections < 1):
        raise ValueError(f"max_connections must be a positive int, got {max_connections!r}")
    if idle_timeout is not None and (isinstance(idle_timeout, bool) or
                                     not isinstance(idle_timeout, (int, float)) or idle_timeout <= 0):
        raise ValueError(f"idle_timeout must be a number of seconds > 0, got {idle_timeout!r}")


def check_id(socket_id: Any) -> None:
    """TypeError unless ``socket_id`` is an int (not a bool)."""
    if isinstance(socket_id, bool) or not isinstance(socket_id, int):
        raise TypeError(f"socket id must be an int, not {type(socket_id).__name__}")


def check_opaque(opaque: Any) -> int:
    if isinstance(opaque, bool) or not isinstance(opaque, int):
        raise TypeError(f"opaque must be an int, not {type(opaque).__name__}")
    return opaque


def _flat(view: memoryview) -> Any:
    """A memoryview as flat bytes: len() must count bytes (not items) and
    the writer needs a C-contiguous buffer."""
    if view.ndim == 1 and view.itemsize == 1 and view.c_contiguous:
        return view
    if view.c_contiguous:
        return view.cast("B")
    return view.tobytes()


def normalize(data: Any) -> Any:
    """bytes-like, or a list of bytes-like; str becomes UTF-8."""
    kind = type(data)
    if kind is bytes:
        return data
    if kind is str:
        return data.encode()
    if isinstance(data, memoryview):
        return _flat(data)
    if isinstance(data, bytearray):
        return data
    if isinstance(data, (list, tuple)):
        parts = []
        for part in data:
            if type(part) is str:
                part = part.encode()
            elif isinstance(part, memoryview):
                part = _flat(part)
            elif not isinstance(part, (bytes, bytearray)):
                raise TypeError("send data list items must be bytes, bytearray, memoryview "
                                f"or str, not {type(part).__name__}")
            parts.append(part)
        return parts
    raise TypeError("send data must be bytes, bytearray, memoryview, str or a list of them, "
                    f"not {kind.__name__}")


def frozen(data: Any) -> Any:
    """A copy of normalized send data that the caller can no longer change:
    a send from another thread runs later, on the hub's loop."""
    if isinstance(data, list):
        return [part if type(part) is bytes else bytes(part) for part in data]
    return data if type(data) is bytes else bytes(data)


def split_address(host: str, port: Optional[int]) -> Tuple[str, Optional[int]]:
    """(host, port) from ``host, port`` or from ``"host:port"`` /
    ``"[v6]:port"`` when port is None; ``"unix:/path"`` keeps port None.
    ValueError/TypeError for anything else."""
    if port is not None:
        return host, port
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    if host.startswith("unix:"):
        return host, None
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or host[end + 1:end + 2] != ":":
            raise ValueError(f"Invalid address {host!r}")
        name, port_text = host[1:end], host[end + 2:]
    else:
        name, sep, port_text = host.rpartition(":")
        if not sep:
            raise ValueError(f"Invalid address {host!r}: expected 'host:port'")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"Invalid port in address {host!r}")
    return name, int(port_text)


from ._accelerate import use_compiled  # noqa: E402  (last: the twin replaces the above)

use_compiled(globals(), "gsocket._c_arguments")
