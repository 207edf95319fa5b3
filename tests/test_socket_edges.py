"""gsocket.socket at the edges of its contract (issue 8): listen with
reuseport, socket calls after Driver.exit(), skynet.sleep/wait without a
driver, bytes kept for an abandoned id nobody starts, an accept callback
that raises, onclose on an id that is already gone. Real loopback sockets,
every wait bounded."""

from __future__ import annotations

import logging
import os
import socket as stdlib_socket
from typing import Any, List

import gevent
import gevent.queue
import gevent.socket
import pytest
from gevent import get_hub

from gsocket import _socket_pool
from gsocket._accelerate import code_module
from gsocket import driver as driver_module
from gsocket import skynet
from gsocket import socket as gs
from gsocket.driver import Driver

pytest_plugins = ["_peers"]                 # fixtures: pair, unstarted_pair

from _peers import GeventListener, Pair, reader_waits, recv_until_eof, row, wait_for  # noqa: E402


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def echo_handler(conn: Any) -> None:
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


# ---------------------------------------------------------------------- listen(reuseport=True)

@pytest.mark.skipif(not hasattr(stdlib_socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
def test_two_reuseport_listeners_on_one_port_both_accept(driver: Driver) -> None:
    first = gs.listen("127.0.0.1", 0, reuseport=True)
    port = gs.address(first)[1]
    second = gs.listen("127.0.0.1", port, reuseport=True)
    with pytest.raises(OSError):
        gs.listen("127.0.0.1", port)        # without the option the port is taken
    accepted: "gevent.queue.Queue[tuple]" = gevent.queue.Queue()
    gs.start(first, lambda socket_id, address: accepted.put((first, socket_id)))
    gs.start(second, lambda socket_id, address: accepted.put((second, socket_id)))
    by_listener = {first: 0, second: 0}
    clients = []
    try:
        # The kernel spreads connections by a hash of the 4-tuple: 64 all on
        # one side has a chance of 2**-63.
        for _ in range(64):
            clients.append(gevent.socket.create_connection(("127.0.0.1", port)))
            listener, socket_id = accepted.get(timeout=5)
            by_listener[listener] += 1
            gs.close_fd(socket_id)
        assert by_listener[first] > 0 and by_listener[second] > 0, by_listener
    finally:
        for client in clients:
            client.close()
        gs.close(first)
        gs.close(second)


def test_reuseport_is_keyword_only_and_off_by_default(driver: Driver) -> None:
    listen_id = gs.listen("127.0.0.1", 0)
    port = gs.address(listen_id)[1]
    try:
        with pytest.raises(OSError):        # an ordinary listener does not share
            gs.listen("127.0.0.1", port, reuseport=True)
        with pytest.raises(TypeError):
            gs.listen("127.0.0.1", 0, 32, True)   # type: ignore[misc]
    finally:
        gs.close(listen_id)


# ---------------------------------------------------------------------- after Driver.exit()

def test_socket_calls_after_driver_exit_never_hang(leak_check: None) -> None:
    hub = get_hub()
    old = Driver()
    previous = driver_module.install_default(old, hub)
    fresh = None
    try:
        listen_id = gs.listen("127.0.0.1", 0)
        accepted: gevent.queue.Queue = gevent.queue.Queue()
        gs.start(listen_id, lambda socket_id, address: accepted.put(socket_id))
        client = gevent.socket.create_connection(gs.address(listen_id))
        socket_id = accepted.get(timeout=5)
        gs.start(socket_id)
        results: List[Any] = []
        reader = gevent.spawn(lambda: results.append(gs.read(socket_id, 10)))
        reader_waits(socket_id)
        old.exit()
        with gevent.Timeout(5, AssertionError("a socket call hung after Driver.exit()")):
            reader.join()
            assert results == [None]              # the blocked reader got the close
            assert old.freed
            client.settimeout(5)
            assert client.recv(10) == b""         # its sockets were closed
            client.close()
            # Calls on the old ids answer at once: every id is gone.
            assert gs.read(socket_id) is None
            assert gs.readline(socket_id) is None
            assert gs.readall(socket_id) == b""
            assert gs.block(socket_id) is False
            assert gs.write(socket_id, b"x") is False
            assert gs.invalid(socket_id) and gs.disconnected(socket_id)
            gs.close(socket_id)
            # A new socket works, on a new driver that dispatches.
            with GeventListener(echo_handler) as peer:
                new_id = gs.open("127.0.0.1", peer.port)
                fresh = driver_module.installed(hub)
                assert fresh is not old and fresh is not None and not fresh.freed
                assert gs.write(new_id, b"ping") is True
                assert gs.read(new_id, 4) == b"ping"
                gs.close(new_id)
    finally:
        if fresh is not None:
            fresh.free()
        old.free()
        driver_module.install_default(previous, hub)


# ---------------------------------------------------------------------- skynet without a driver

def test_skynet_sleep_and_wait_create_no_driver(leak_check: None) -> None:
    hub = get_hub()
    previous = driver_module.install_default(None, hub)
    try:
        fds = open_fds()
        skynet.sleep(0)
        skynet.sleep(0.001)
        token = object()
        gevent.spawn(skynet.wakeup, token, "woken")
        assert skynet.wait(token) == "woken"
        greenlet = skynet.fork(skynet.sleep, 0.001)
        greenlet.join(timeout=5)
        assert greenlet.dead
        assert driver_module.installed(hub) is None      # no driver, so no server
        assert open_fds() == fds                         # no reserve fd, no socket
    finally:
        driver_module.install_default(previous, hub)


# ---------------------------------------------------------------------- abandoned ids

def test_bytes_for_an_abandoned_id_nobody_starts_are_bounded(unstarted_pair: Pair) -> None:
    pair = unstarted_pair
    gs.start(pair.id)
    gs.abandon(pair.id)                     # nobody will start it again
    total = 32 << 20
    sender = gevent.spawn(pair.client.sendall, b"x" * total)
    # Reading pauses by the 128 KiB rule (plus what one wake-up of the
    # reader took in, as for a started id: test_socket_backpressure), and
    # stays paused: the peer's sendall cannot finish.
    wait_for(lambda: row(pair.id) is not None and row(pair.id).read > _socket_pool.BUFFER_LIMIT)
    wait_for(lambda: not row(pair.id).reading)
    settled = row(pair.id).read
    gevent.sleep(0.2)
    assert row(pair.id).read == settled and not row(pair.id).reading
    assert settled < 4 << 20
    assert not sender.dead
    sender.kill()


def test_an_abandoned_id_is_freed_when_its_peer_closes(unstarted_pair: Pair,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code_module(_socket_pool), "ABANDONED_GRACE", 0.05)
    pair = unstarted_pair
    gs.start(pair.id)
    pair.client.sendall(b"some bytes")
    wait_for(lambda: row(pair.id).read == 10)
    gs.abandon(pair.id)
    pair.client.close()
    wait_for(lambda: row(pair.id) is None)          # closed by gsocket: no fd left
    with pytest.raises(ConnectionError):
        gs.start(pair.id)                           # and nothing kept for it


def test_an_abandoned_id_paused_at_the_limit_is_freed_when_its_peer_closes(
        unstarted_pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    # Paused, the server reads nothing more, so the peer's FIN is not an
    # event: the pool must still notice it. (The peer sends a little over
    # the limit, so that its FIN is not stuck behind unsent bytes.)
    monkeypatch.setattr(code_module(_socket_pool), "ABANDONED_GRACE", 0.05)
    monkeypatch.setattr(code_module(_socket_pool), "ABANDONED_CHECK", 0.02)
    pair = unstarted_pair
    gs.start(pair.id)
    gs.abandon(pair.id)
    pair.client.sendall(b"y" * (_socket_pool.BUFFER_LIMIT + 32 * 1024))
    wait_for(lambda: row(pair.id) is not None and not row(pair.id).reading
             and row(pair.id).read > _socket_pool.BUFFER_LIMIT)
    pair.client.close()
    wait_for(lambda: row(pair.id) is None)
    with pytest.raises(ConnectionError):
        gs.start(pair.id)


def test_start_after_abandon_at_the_limit_gets_every_byte(unstarted_pair: Pair) -> None:
    pair = unstarted_pair
    gs.start(pair.id)
    gs.abandon(pair.id)
    payload = bytes(range(256)) * 2048              # 512 KiB
    sender = gevent.spawn(pair.client.sendall, payload)
    wait_for(lambda: not row(pair.id).reading and row(pair.id).read > _socket_pool.BUFFER_LIMIT)
    gs.start(pair.id)
    assert gs.read(pair.id, len(payload), timeout=10) == payload
    sender.join(timeout=5)
    assert sender.successful()
    gs.close(pair.id)


# ---------------------------------------------------------------------- an accept callback that raises

@pytest.mark.parametrize("before_raising", ["nothing", "start", "abandon"])
def test_an_accept_callback_that_raises_closes_the_accepted_id(
        driver: Driver, caplog: pytest.LogCaptureFixture, before_raising: str) -> None:
    seen: "gevent.queue.Queue[int]" = gevent.queue.Queue()

    def on_accept(socket_id: int, address: str) -> None:
        seen.put(socket_id)
        if before_raising == "start":
            gs.start(socket_id)
        elif before_raising == "abandon":
            gs.start(socket_id)
            gs.abandon(socket_id)
        raise RuntimeError("boom in accept")

    listen_id = gs.listen("127.0.0.1", 0)
    gs.start(listen_id, on_accept)
    fds = open_fds()
    with caplog.at_level(logging.ERROR, logger="gsocket"):
        client = gevent.socket.create_connection(gs.address(listen_id))
        try:
            socket_id = seen.get(timeout=5)
            client.settimeout(5)
            assert recv_until_eof(client) == b""        # the accepted id was closed
            wait_for(lambda: row(socket_id) is None)     # and is gone from the server
            assert gs.invalid(socket_id)
        finally:
            client.close()
    assert open_fds() == fds                            # no fd left behind
    failures = [r for r in caplog.records
                if r.exc_info and "boom in accept" in str(r.exc_info[1])]
    assert len(failures) == 1 and str(socket_id) in failures[0].getMessage()
    assert [info.id for info in gs.netstat()] == [listen_id]   # the listener keeps serving
    gs.close(listen_id)


# ---------------------------------------------------------------------- onclose on a gone id

def test_onclose_on_an_unknown_id_calls_back_at_once(driver: Driver) -> None:
    calls: List[int] = []
    gs.onclose(31337, calls.append)
    assert calls == [31337]


def test_onclose_after_we_closed_calls_back_at_once(pair: Pair) -> None:
    gs.close(pair.id)
    calls: List[int] = []
    gs.onclose(pair.id, calls.append)
    assert calls == [pair.id]


def test_onclose_after_the_peer_closed_calls_back_at_once(pair: Pair) -> None:
    pair.client.close()
    wait_for(lambda: gs.disconnected(pair.id))
    calls: List[int] = []
    gs.onclose(pair.id, calls.append)
    assert calls == [pair.id]
    gs.close(pair.id)
    gevent.sleep(0.01)
    assert calls == [pair.id]                   # once, not again at close


def test_onclose_on_an_open_id_waits_for_the_close(pair: Pair) -> None:
    calls: List[int] = []
    gs.onclose(pair.id, calls.append)
    gevent.sleep(0.01)
    assert calls == []
    pair.client.close()
    wait_for(lambda: calls == [pair.id])


def test_onclose_at_once_that_raises_is_logged(driver: Driver, caplog: pytest.LogCaptureFixture) -> None:
    def boom(socket_id: int) -> None:
        raise ValueError("onclose boom")

    with caplog.at_level(logging.ERROR, logger="gsocket"):
        gs.onclose(424242, boom)
    assert any(r.exc_info and "onclose boom" in str(r.exc_info[1]) for r in caplog.records)


# ---------------------------------------------------------------------- bind(fd) and the blocking flag

def test_closing_a_bound_fd_gives_its_blocking_flag_back(driver: Driver) -> None:
    # stdin shared with a shell must not be left non-blocking.
    r, w = os.pipe()
    try:
        assert os.get_blocking(r) is True
        bind_id = gs.bind(r)
        assert os.get_blocking(r) is False
        os.write(w, b"piped\n")
        assert gs.readline(bind_id, timeout=5) == b"piped"
        gs.close(bind_id)
        assert os.get_blocking(r) is True
        os.write(w, b"still open\n")                  # the fd itself is not closed
        assert os.read(r, 100) == b"still open\n"
    finally:
        os.close(r)
        os.close(w)
