"""Shared fixtures: every test runs under a gevent Timeout, and servers are
checked for leaks (fds, greenlets, listening ports) after release()."""

from __future__ import annotations

import gc
import os
from typing import Iterator, Set

import gevent
import pytest
from greenlet import greenlet as RawGreenlet

from gsocket.driver import Driver
from gsocket.server import SocketServer

#: Seconds a single test may block in gevent before it fails.
TEST_TIMEOUT = 30


def open_fds() -> Set[int]:
    """The fds this process has open now."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


def listening_inodes() -> Set[str]:
    """Socket inodes in LISTEN state (TCP, v4 and v6) system-wide."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    if fields[3] == "0A":
                        inodes.add(fields[9])
        except FileNotFoundError:
            continue
    return inodes


def my_socket_inodes() -> Set[str]:
    inodes = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def live_greenlets() -> Set[RawGreenlet]:
    hub = gevent.get_hub()
    # Only this thread's greenlets (children of our hub): gevent's resolver
    # threads run greenlets of their own hubs, which are not ours to check.
    return {obj for obj in gc.get_objects()
            if isinstance(obj, RawGreenlet) and not obj.dead and obj.parent is hub}


def assert_no_leaks(fds_before: Set[int], greenlets_before: Set[RawGreenlet]) -> None:
    """Fail listing fds, listening sockets or greenlets left since *before*."""
    for _ in range(50):
        gevent.sleep(0.01)
        leaked_fds = open_fds() - fds_before
        leaked_greenlets = live_greenlets() - greenlets_before - {gevent.getcurrent()}
        if not leaked_fds and not leaked_greenlets:
            break
    listening = my_socket_inodes() & listening_inodes()
    details = {fd: _describe_fd(fd) for fd in leaked_fds}
    assert not leaked_fds, f"fds left open: {details}"
    assert not listening, f"listening sockets left: {listening}"
    assert not leaked_greenlets, f"greenlets left alive: {leaked_greenlets}"


def _describe_fd(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


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
def leak_check() -> Iterator[None]:
    """Assert that the test leaves no fd, listening socket or greenlet."""
    gc.collect()
    fds_before = open_fds()
    greenlets_before = live_greenlets()
    yield
    assert_no_leaks(fds_before, greenlets_before)


@pytest.fixture
def server(leak_check: None) -> Iterator[SocketServer]:
    """A fresh SocketServer, released (and leak-checked) after the test."""
    srv = SocketServer()
    try:
        yield srv
    finally:
        srv.release()


@pytest.fixture
def driver(leak_check: None) -> Iterator[Driver]:
    """A fresh Driver installed as the hub's default (so gsocket.socket
    uses it), freed and leak-checked after the test."""
    hub = gevent.get_hub()
    previous = getattr(hub, "_gsocket_driver", None)
    drv = Driver()
    hub._gsocket_driver = drv
    try:
        yield drv
    finally:
        drv.free()
        hub._gsocket_driver = previous
