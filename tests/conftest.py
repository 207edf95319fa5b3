"""Shared fixtures: every test runs under gsocket's timeout marker, and servers are
checked for leaks (fds, listening ports, greenlets) after release(), with
the leak check of gsocket's own pytest plugin."""

from __future__ import annotations

from typing import List

import pytest

from gsocket._leak_check import LeakCheck
from gsocket.driver import Driver
from gsocket.server import SocketServer

# Shared helper modules: rewrite their asserts too (before anything imports them).
pytest.register_assert_rewrite("helpers", "_peers")

#: Seconds a test body may run before it fails (the gsocket marker).
TEST_TIMEOUT = 30


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    """Every test body runs under the plugin's ``gsocket`` marker: in a
    greenlet, failing after TEST_TIMEOUT seconds with the stacks of the
    greenlets still blocked (unless the test sets its own marker)."""
    for item in items:
        if item.get_closest_marker("gsocket") is None:
            item.add_marker(pytest.mark.gsocket(timeout=TEST_TIMEOUT))


@pytest.fixture
def leak_check(gsocket_leak_check: LeakCheck) -> LeakCheck:
    """The plugin's leak check: after the test, no new fd, listening socket
    or live greenlet may remain."""
    return gsocket_leak_check


@pytest.fixture
def server(leak_check: LeakCheck, gsocket_server: SocketServer) -> SocketServer:
    """A fresh SocketServer, released (and leak-checked) after the test."""
    return gsocket_server


@pytest.fixture
def driver(leak_check: LeakCheck, gsocket_driver: Driver) -> Driver:
    """A fresh Driver installed as the hub's default (so gsocket.socket uses
    it), freed and leak-checked after the test."""
    return gsocket_driver
