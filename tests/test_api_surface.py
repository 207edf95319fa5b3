"""The public names of API.md sections 1-4 import from the module the
contract names, with the contract's values and parameter names."""

from __future__ import annotations

import importlib
import inspect
from typing import List

import pytest

from helpers import is_function

#: API.md section 1: the socket server's event numbers (skynet socket_server.h).
SERVER_EVENTS = {
    "SOCKET_DATA": 0, "SOCKET_CLOSE": 1, "SOCKET_OPEN": 2, "SOCKET_ACCEPT": 3,
    "SOCKET_ERROR": 4, "SOCKET_EXIT": 5, "SOCKET_UDP": 6, "SOCKET_WARNING": 7,
    "SOCKET_ERR": 4,
}

#: API.md section 1: SocketServer methods and their leading parameters.
SERVER_METHODS = {
    "release": [], "poll": ["timeout"], "exit": [],
    "listen": ["host", "port", "backlog", "opaque"],
    "start": ["socket_id", "opaque"], "pause": ["socket_id"],
    "connect": ["host", "port", "opaque"], "block_connect": ["host", "port", "opaque"],
    "bind": ["fd", "opaque"], "send": ["socket_id", "data"],
    "send_lowpriority": ["socket_id", "data"], "close": ["socket_id"],
    "shutdown": ["socket_id"], "nodelay": ["socket_id"],
    "udp": ["host", "port", "opaque"], "udp_listen": ["host", "port", "opaque"],
    "udp_dial": ["host", "port", "opaque"], "udp_connect": ["socket_id", "host", "port"],
    "udp_send": ["socket_id", "address", "data"], "udp_address": ["message"],
    "info": [],
}

#: API.md section 2 (skynet_socket.h).
DRIVER_TYPES = {
    "SKYNET_SOCKET_TYPE_DATA": 1, "SKYNET_SOCKET_TYPE_CONNECT": 2,
    "SKYNET_SOCKET_TYPE_CLOSE": 3, "SKYNET_SOCKET_TYPE_ACCEPT": 4,
    "SKYNET_SOCKET_TYPE_ERROR": 5, "SKYNET_SOCKET_TYPE_UDP": 6,
    "SKYNET_SOCKET_TYPE_WARNING": 7,
}
DRIVER_METHODS = (
    "init exit free poll send send_lowpriority listen connect block_connect bind "
    "close start nodelay udp udp_connect udp_send udp_address").split()

#: API.md section 3: gsocket.socket functions and their leading parameters.
SOCKET_FUNCTIONS = {
    "open": ["host", "port"], "listen": ["host", "port", "backlog"],
    "start": ["socket_id", "on_accept"], "address": ["socket_id"],
    "read": ["socket_id", "n"], "readline": ["socket_id", "sep"],
    "readall": ["socket_id"], "block": ["socket_id"], "write": ["socket_id", "data"],
    "lwrite": ["socket_id", "data"], "close": ["socket_id"], "shutdown": ["socket_id"],
    "close_fd": ["socket_id"], "abandon": ["socket_id"], "invalid": ["socket_id"],
    "disconnected": ["socket_id"], "limit": ["socket_id", "nbytes"],
    "pause": ["socket_id"], "warning": ["socket_id", "callback"],
    "onclose": ["socket_id", "callback"], "header": ["data"], "netstat": [],
    "resolve": ["host"], "bind": ["fd"], "stdin": [],
    "udp": ["callback", "host", "port"], "udp_listen": ["host", "port", "callback"],
    "udp_dial": ["host", "port", "callback"],
    "udp_connect": ["socket_id", "host", "port", "callback"],
    "sendto": ["socket_id", "address", "data"], "udp_address": ["address"],
}
TIMEOUT_FUNCTIONS = ("open", "read", "readline", "readall", "block")

#: API.md section 4.
SKYNET_NAMES = ("socket", "start", "fork", "sleep", "timeout", "wait", "wakeup", "exit", "error")


def positional_names(function: object) -> List[str]:
    parameters = inspect.signature(function).parameters.values()   # type: ignore[arg-type]
    return [p.name for p in parameters
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]


@pytest.mark.parametrize("name,value", sorted(SERVER_EVENTS.items()))
def test_server_event_constants(name: str, value: int) -> None:
    server = importlib.import_module("gsocket.server")
    events = importlib.import_module("gsocket.events")
    assert getattr(server, name) == value
    assert getattr(events, name) == value
    assert name in server.__all__


def test_server_records_and_send_data() -> None:
    from gsocket.events import SendData as EventsSendData
    from gsocket.server import SendData, SocketInfo, SocketMessage, SocketServer
    assert SendData is EventsSendData
    assert SocketMessage._fields == ("type", "id", "opaque", "ud", "data", "address")
    assert SocketMessage(0, 1, 2, 3, b"x").address is None
    assert SocketInfo._fields == ("id", "type", "opaque", "read", "write", "rtime", "wtime",
                                  "wbuffer", "reading", "writing", "name")
    assert inspect.isclass(SocketServer)


@pytest.mark.parametrize("name,leading", sorted(SERVER_METHODS.items()))
def test_server_methods(name: str, leading: List[str]) -> None:
    from gsocket.server import SocketServer
    method = getattr(SocketServer, name)
    assert positional_names(method)[:len(leading)] == leading
    assert method.__doc__, f"SocketServer.{name} has no docstring"


def test_server_method_defaults() -> None:
    from gsocket.server import SocketServer
    signature = inspect.signature(SocketServer.listen)
    assert signature.parameters["backlog"].default == 32
    assert signature.parameters["opaque"].default == 0
    assert inspect.signature(SocketServer.udp).parameters["host"].default is None
    assert inspect.signature(SocketServer.udp).parameters["port"].default == 0
    assert inspect.signature(SocketServer.start).parameters["opaque"].default is None
    assert inspect.signature(SocketServer.poll).parameters["timeout"].default is None


@pytest.mark.parametrize("name,value", sorted(DRIVER_TYPES.items()))
def test_driver_types(name: str, value: int) -> None:
    driver = importlib.import_module("gsocket.driver")
    assert getattr(driver, name) == value


@pytest.mark.parametrize("name", DRIVER_METHODS)
def test_driver_methods(name: str) -> None:
    from gsocket.driver import Driver, default
    assert is_function(getattr(Driver, name))
    assert is_function(default)
    server_method = getattr(importlib.import_module("gsocket.server").SocketServer, name, None)
    if server_method is not None and name not in ("poll", "exit"):
        # the same operation, the same parameters as the layer below
        assert positional_names(getattr(Driver, name))[:len(positional_names(server_method))] \
            == positional_names(server_method)


@pytest.mark.parametrize("name,leading", sorted(SOCKET_FUNCTIONS.items()))
def test_socket_functions(name: str, leading: List[str]) -> None:
    socket = importlib.import_module("gsocket.socket")
    function = getattr(socket, name)
    assert is_function(function)
    assert positional_names(function)[:len(leading)] == leading
    if name in TIMEOUT_FUNCTIONS:
        parameter = inspect.signature(function).parameters["timeout"]
        assert parameter.kind == parameter.KEYWORD_ONLY and parameter.default is None


def test_connection_names() -> None:
    import gsocket
    assert issubclass(gsocket.ConnectionClosed, Exception)
    for name in ("read", "readline", "readall", "write", "close", "__enter__", "__exit__",
                 "__iter__"):
        assert callable(getattr(gsocket.Connection, name))


@pytest.mark.parametrize("name", SKYNET_NAMES)
def test_skynet_names(name: str) -> None:
    from gsocket import skynet
    import gsocket.socket
    value = getattr(skynet, name)
    if name == "socket":
        assert value is gsocket.socket
    else:
        assert is_function(value)
