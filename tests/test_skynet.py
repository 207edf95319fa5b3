"""gsocket.skynet: start/exit, fork, sleep, wait/wakeup, timeout, error,
and skynet.socket being gsocket.socket."""

from __future__ import annotations

import logging
from typing import Any, List

import gevent
import gevent.socket
import pytest
from gevent import get_hub

from gsocket import skynet
from gsocket import socket as gs
from gsocket.driver import Driver, installed


from _peers import recv_exactly  # noqa: E402


def test_namespace() -> None:
    # Each function's behaviour has its own test below; here: the namespace
    # is exactly API.md section 4, skynet.socket is the module itself.
    assert skynet.socket is gs and skynet.socket.read is gs.read
    names = ("start", "fork", "sleep", "timeout", "wait", "wakeup", "exit", "error")
    assert sorted(skynet.__all__) == sorted(("socket",) + names)
    for name in names:
        assert getattr(skynet, name).__module__ == "gsocket.skynet", name


def test_start_runs_main_until_exit_then_frees_the_driver(driver: Driver) -> None:
    order: List[Any] = []

    def main(a: int, b: int) -> None:
        order.append(("main", a, b, gevent.getcurrent() is not main_caller))
        skynet.fork(worker)

    def worker() -> None:
        skynet.sleep(0.02)
        order.append("worker")
        skynet.exit()
        order.append("after exit")      # exit only signals; the caller returns later

    main_caller = gevent.getcurrent()
    skynet.start(main, 1, 2)
    assert order == [("main", 1, 2, True), "worker", "after exit"]
    assert driver.freed                 # the default driver is released at the end


def test_start_kills_forked_greenlets_and_closes_sockets(driver: Driver) -> None:
    state: dict = {}

    def serve() -> None:
        state["listen"] = listen_id = gs.listen("127.0.0.1", 0)
        state["port"] = gs.address(listen_id)[1]

        def forever() -> None:
            try:
                skynet.sleep(60)
            finally:
                state["killed"] = True

        state["forever"] = skynet.fork(forever)
        skynet.timeout(0.05, skynet.exit)

    skynet.start(serve)
    assert state["killed"] is True and state["forever"].dead
    with pytest.raises(ConnectionRefusedError):
        gevent.socket.create_connection(("127.0.0.1", state["port"])).close()


def test_start_kills_greenlets_forked_while_others_die(driver: Driver) -> None:
    # A greenlet that forks another as it is killed: that one is killed too;
    # greenlets that ended on their own are no longer tracked.
    state: dict = {"done": []}

    def serve() -> None:
        def orphan() -> None:
            try:
                skynet.sleep(60)
            finally:
                state["orphan_killed"] = True

        def parent() -> None:
            try:
                skynet.sleep(60)
            finally:
                state["orphan"] = skynet.fork(orphan)

        for number in range(50):
            skynet.fork(state["done"].append, number)
        skynet.fork(parent)
        skynet.sleep(0.05)
        state["tracked"] = len(skynet._service().greenlets)
        skynet.timeout(0.01, skynet.exit)

    skynet.start(serve)
    assert sorted(state["done"]) == list(range(50))
    assert state["tracked"] == 1                 # parent only: the 50 ended, serve is not forked
    assert state["orphan"].dead                 # killed too (before or after it started)
    assert state.get("orphan_killed", True) is True


def test_start_reraises_an_exception_from_main(driver: Driver) -> None:
    def main() -> None:
        raise KeyError("main failed")

    with pytest.raises(KeyError, match="main failed"):
        skynet.start(main)
    assert driver.freed


def test_start_twice_at_once_is_refused(driver: Driver) -> None:
    errors: List[BaseException] = []

    def main() -> None:
        try:
            skynet.start(lambda: None)
        except RuntimeError as exc:
            errors.append(exc)
        skynet.exit()

    skynet.start(main)
    assert len(errors) == 1


def test_exit_without_start_frees_the_default_driver(driver: Driver) -> None:
    skynet.exit()
    assert driver.freed


def test_fork_runs_concurrently_and_logs_exceptions(driver: Driver, caplog) -> None:
    order: List[str] = []

    def job(name: str, delay: float) -> str:
        skynet.sleep(delay)
        order.append(name)
        return name

    slow = skynet.fork(job, "slow", 0.06)
    fast = skynet.fork(job, "fast", 0.01)
    assert isinstance(slow, gevent.Greenlet)
    assert slow.get(timeout=5) == "slow" and fast.get(timeout=5) == "fast"
    assert order == ["fast", "slow"]

    def broken() -> None:
        raise ValueError("forked failure")

    failing = skynet.fork(broken)
    failing.join(5)
    assert failing.successful()     # logged, not propagated
    records = [r for r in caplog.records if r.exc_info and "forked failure" in str(r.exc_info[1])]
    assert len(records) == 1 and records[0].levelno == logging.ERROR


def test_forked_greenlets_leave_the_tracked_set_however_they_end(driver: Driver) -> None:
    tracked = skynet._service().greenlets
    before = len(tracked)
    finished = [skynet.fork(lambda: None) for _ in range(20)]
    failed = [skynet.fork(lambda: 1 / 0) for _ in range(5)]
    sleeping = [skynet.fork(skynet.sleep, 60) for _ in range(5)]
    gevent.joinall(finished + failed, timeout=5)
    gevent.sleep(0)
    assert len(tracked) == before + 5                       # the sleepers
    gevent.killall(sleeping, timeout=5)                     # killed while running
    assert len(tracked) == before
    # Killed before they ever ran: they cannot take themselves out, so fork
    # drops them once the set grows, and the set stays bounded.
    for _ in range(3 * skynet.PRUNE_AT):
        skynet.fork(skynet.sleep, 60).kill(block=False)
    assert len(tracked) <= skynet.PRUNE_AT
    gevent.sleep(0)


def test_sleep_blocks_only_the_caller(driver: Driver) -> None:
    ticks: List[int] = []

    def ticker() -> None:
        for i in range(3):
            ticks.append(i)
            gevent.sleep(0.005)

    other = gevent.spawn(ticker)
    skynet.sleep(0.1)
    assert ticks == [0, 1, 2]
    skynet.sleep(0)          # yields
    other.join()


def test_wait_and_wakeup_with_a_token(driver: Driver) -> None:
    results: List[Any] = []
    waiter = gevent.spawn(lambda: results.append(skynet.wait("token")))
    gevent.sleep(0)                   # the spawned greenlet runs first, up to its wait
    assert results == []
    with pytest.raises(RuntimeError):
        skynet.wait("token")          # one waiter per token
    assert skynet.wakeup("token", 42) is True
    waiter.join(5)
    assert results == [42]
    assert skynet.wakeup("token") is False      # nobody waits any more


def test_wait_defaults_to_the_current_greenlet(driver: Driver) -> None:
    results: List[Any] = []
    waiter = gevent.spawn(lambda: results.append(skynet.wait()))
    gevent.sleep(0)                   # the spawned greenlet runs first, up to its wait
    assert skynet.wakeup(waiter) is True
    waiter.join(5)
    assert results == [None]


def test_timeout_calls_later_and_logs_errors(driver: Driver, caplog) -> None:
    calls: List[str] = []
    skynet.timeout(0.05, lambda: calls.append("late"))
    skynet.timeout(0.01, lambda: calls.append("early"))
    bad = skynet.timeout(0.01, lambda: 1 / 0)
    assert calls == []
    gevent.sleep(0.15)
    assert calls == ["early", "late"]
    assert bad.dead
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_error_logs_space_separated(caplog) -> None:
    skynet.error("socket", 7, "closed:", None)
    record = [r for r in caplog.records if r.name == "gsocket.skynet"][-1]
    assert record.levelno == logging.ERROR and record.getMessage() == "socket 7 closed: None"


def test_sleep_in_an_accept_callback_hands_over(driver: Driver) -> None:
    events: List[str] = []

    def on_accept(socket_id: int, address: str) -> None:
        gs.start(socket_id)
        if not events:
            events.append("first sleeps")
            skynet.sleep(0.1)
            events.append("first wakes")
        else:
            events.append("second served")
        gs.write(socket_id, b"bye")
        gs.close(socket_id)

    listen_id = gs.listen("127.0.0.1", 0)
    gs.start(listen_id, on_accept)
    clients = []
    try:
        for _ in range(2):
            clients.append(gevent.socket.create_connection(gs.address(listen_id)))
            gevent.sleep(0.02)
        assert [recv_exactly(c, 3) for c in clients] == [b"bye", b"bye"]
        assert events == ["first sleeps", "second served", "first wakes"]
    finally:
        for client in clients:
            client.close()
        gs.close(listen_id)
    assert installed(get_hub()) is driver
