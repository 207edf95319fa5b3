"""gsocket: skynet's socket layer on gevent.

Three layers, lowest first: :mod:`gsocket.server` (SocketServer, events),
:mod:`gsocket.driver` (routing to owners), :mod:`gsocket.socket` (blocking
lua-socket-style functions). ``from gsocket import skynet`` gives the
skynet-flavoured namespace. Importing gsocket never monkey-patches.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .connection import Connection as Connection, ConnectionClosed as ConnectionClosed
from .driver import Driver as Driver
from .events import SocketInfo as SocketInfo, SocketMessage as SocketMessage
from .server import SocketServer as SocketServer
from .serving import serve as serve

__all__ = ["Connection", "ConnectionClosed", "Driver", "SocketInfo", "SocketMessage",
           "SocketServer", "serve", "__version__"]
