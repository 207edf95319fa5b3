"""Shared fixtures: every test runs under a gevent Timeout, and servers are
checked for leaks (fds, listening ports, greenlets) after release(), with
the leak check of gsocket's own pytest plugin."""

from __future__ import annotations

from typing import Iterator

import gevent
import pytest

# Shared helper modules: rewrite their asserts too (before anything imports them).
pytest.register_assert_rewrite("helpers", "_peers")

from gsocket._leak_check import LeakCheck
from gsocket.driver import Driver
from gsocket.server import SocketServer

#: Seconds a single test may block in gevent before it fails.
TEST_TIMEOUT = 30


@pytest.fixture(autouse=True)
def gevent_timeout() -> Iterator[None]:
    """Fail a test that blocks longer than TEST_TIMEOUT instead of hanging."""
    timeout = gevent.Timeout(TEST_TIMEOUT)
    timeout.start()
    try:
        yield
    finally:
        timeout.close()


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
