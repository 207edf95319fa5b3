"""gsocket.socket called from real OS threads (an unpatched process): the
non-blocking calls hop onto the hub's thread in call order, the blocking
ones fail clearly in the calling thread, and nothing written is lost."""

from __future__ import annotations

import threading

import gevent
import gevent.socket
import pytest
from gevent.threadpool import ThreadPool

from gsocket import driver as gdriver
from gsocket import socket

pytestmark = pytest.mark.timeout(30)


def _connected_pair():
    """A started gsocket id and the gevent client socket at its other end."""
    listen_id = socket.listen("127.0.0.1", 0)
    port = socket.address(listen_id)[1]
    accepted = []
    socket.start(listen_id, lambda id, addr: accepted.append(id))
    client = gevent.socket.create_connection(("127.0.0.1", port), timeout=10)
    with gevent.Timeout(10):
        while not accepted:
            gevent.sleep(0.001)
    socket.start(accepted[0])
    return listen_id, accepted[0], client


def _read_until_closed(client) -> bytes:
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    return data


def _wait_for(thread: threading.Thread) -> None:
    while thread.is_alive():
        gevent.sleep(0.005)


def test_a_thousand_writes_from_a_real_thread_arrive_in_order_then_its_close(gsocket_driver):
    listen_id, conn_id, client = _connected_pair()
    results = []

    def legacy():
        for index in range(1000):
            results.append(socket.write(conn_id, b"%d\n" % index))
        socket.close(conn_id)                          # hops too: after every write

    thread = threading.Thread(target=legacy)
    thread.start()
    data = _read_until_closed(client)
    _wait_for(thread)
    assert results == [True] * 1000
    assert data.split(b"\n")[:-1] == [b"%d" % index for index in range(1000)]
    assert socket.invalid(conn_id)
    client.close()
    socket.close(listen_id)


def test_the_hub_closing_after_a_thread_wrote_sends_the_threads_bytes_first(gsocket_driver):
    listen_id, conn_id, client = _connected_pair()

    def legacy():
        for index in range(100):
            socket.write(conn_id, b"x" * 100)

    thread = threading.Thread(target=legacy)
    thread.start()
    thread.join()                                     # the hub did not run: every write is queued
    socket.close(conn_id)                             # the hub's own close comes after them
    assert len(_read_until_closed(client)) == 100 * 100
    client.close()
    socket.close(listen_id)


def test_writes_from_a_gevent_threadpool_worker_arrive(gsocket_driver):
    listen_id, conn_id, client = _connected_pair()
    pool = ThreadPool(2)
    try:
        written = pool.apply(lambda: [socket.write(conn_id, b"%d," % index) for index in range(50)])
        assert written == [True] * 50
        socket.close(conn_id)
        assert _read_until_closed(client) == b"".join(b"%d," % index for index in range(50))
    finally:
        pool.kill()
        client.close()
        socket.close(listen_id)


def test_blocking_calls_from_a_real_thread_raise_clearly_there(gsocket_driver):
    listen_id, conn_id, client = _connected_pair()
    errors = {}

    def legacy():
        for name, call in [("read", lambda: socket.read(conn_id)),
                           ("readline", lambda: socket.readline(conn_id)),
                           ("resolve", lambda: socket.resolve("localhost"))]:
            try:
                call()
            except RuntimeError as err:
                errors[name] = str(err)

    thread = threading.Thread(target=legacy)
    thread.start()
    _wait_for(thread)
    assert set(errors) == {"read", "readline", "resolve"}
    assert all("thread" in text for text in errors.values())
    client.sendall(b"still readable\n")
    assert socket.readline(conn_id, timeout=5) == b"still readable"   # the hub's reads still work
    socket.close(conn_id)
    client.close()
    socket.close(listen_id)


def test_bad_arguments_from_a_thread_raise_in_the_thread_not_in_the_hub(gsocket_driver):
    listen_id, conn_id, client = _connected_pair()
    errors = []

    def legacy():
        for call in (lambda: socket.close("nope"), lambda: socket.write(conn_id, 12345)):
            try:
                call()
            except TypeError as err:
                errors.append(err)

    thread = threading.Thread(target=legacy)
    thread.start()
    _wait_for(thread)
    assert len(errors) == 2
    assert socket.write(conn_id, b"ok")               # the hub is fine
    socket.close(conn_id)
    assert _read_until_closed(client) == b"ok"
    client.close()
    socket.close(listen_id)


def test_a_thread_resolves_to_the_one_live_driver(gsocket_driver):
    seen = []
    thread = threading.Thread(target=lambda: seen.append(gdriver.current()))
    thread.start()
    _wait_for(thread)
    assert seen == [gdriver.default()]
