"""gsocket.driver: routing SocketServer events to owners by opaque, with
skynet_socket's SKYNET_SOCKET_TYPE_* numbers; owner exceptions are logged
and the dispatcher keeps running; events for unowned opaques are dropped and
their sockets closed; a blocking owner callback hands the dispatcher over;
default() is per hub."""

from __future__ import annotations

import logging
import os
import socket as stdlib_socket
import threading
from typing import Any, List, Tuple

import gevent
import gevent.event
import gevent.queue
import gevent.socket
import pytest
from gevent import get_hub

import gsocket.driver as driver_module
from gsocket._accelerate import code_module
from gsocket import events
from gsocket import socket as gs
from gsocket import skynet
from gsocket.driver import (
    SKYNET_SOCKET_TYPE_ACCEPT, SKYNET_SOCKET_TYPE_CLOSE, SKYNET_SOCKET_TYPE_CONNECT,
    SKYNET_SOCKET_TYPE_DATA, SKYNET_SOCKET_TYPE_ERROR, SKYNET_SOCKET_TYPE_UDP,
    SKYNET_SOCKET_TYPE_WARNING, Driver, default,
)


from _peers import GeventListener, reader_waits, recv_exactly, wait_for  # noqa: E402

DATA, CONNECT, CLOSE, ACCEPT = (SKYNET_SOCKET_TYPE_DATA, SKYNET_SOCKET_TYPE_CONNECT,
                                SKYNET_SOCKET_TYPE_CLOSE, SKYNET_SOCKET_TYPE_ACCEPT)
ERROR, UDP, WARNING = SKYNET_SOCKET_TYPE_ERROR, SKYNET_SOCKET_TYPE_UDP, SKYNET_SOCKET_TYPE_WARNING


class Recorder:
    """An owner that records (skynet_type, message) and whether it ran in
    the dispatcher; ``queue`` lets a test wait for the next one."""

    def __init__(self, drv: Driver) -> None:
        self.driver = drv
        self.events: List[Tuple[int, Any]] = []
        self.queue: gevent.queue.Queue = gevent.queue.Queue()
        self.in_dispatcher: List[bool] = []

    def __call__(self, kind: int, message: Any) -> None:
        self.in_dispatcher.append(self.driver.in_dispatcher())
        self.events.append((kind, message))
        self.queue.put((kind, message))

    def next(self, timeout: float = 5) -> Tuple[int, Any]:
        return self.queue.get(timeout=timeout)

    def kinds(self) -> List[int]:
        return [kind for kind, _ in self.events]


def test_skynet_socket_type_numbers() -> None:
    assert (DATA, CONNECT, CLOSE, ACCEPT, ERROR, UDP, WARNING) == (1, 2, 3, 4, 5, 6, 7)
    assert SKYNET_SOCKET_TYPE_DATA is events.SKYNET_SOCKET_TYPE_DATA
    for name in ("DATA", "CONNECT", "CLOSE", "ACCEPT", "ERROR", "UDP", "WARNING"):
        assert f"SKYNET_SOCKET_TYPE_{name}" in driver_module.__all__


def test_driver_methods_do_the_server_operations(driver: Driver) -> None:
    # The methods the other tests here do not exercise: low-priority send,
    # pause/start, info, udp_listen and udp_dial, each seen working.
    owner = Recorder(driver)
    opaque = driver.register(owner)
    with GeventListener(lambda conn: None) as server:
        socket_id = driver.block_connect("127.0.0.1", server.port, opaque=opaque)
        assert owner.next()[0] == CONNECT
        wait_for(lambda: server.conns)
        peer = server.conns[0]
        assert driver.send_lowpriority(socket_id, b"low") is True
        assert driver.send(socket_id, b"high") is True
        assert recv_exactly(peer, 7) == b"lowhigh"
        assert driver.send_lowpriority(424242, b"x") is False
        rows = driver.info()
        assert rows == driver.server.info() and [r.id for r in rows] == [socket_id]
        assert rows[0].type == "TCP" and rows[0].write == 7 and rows[0].opaque == opaque
        driver.pause(socket_id)
        peer.sendall(b"held")
        gevent.sleep(0.05)
        assert owner.kinds() == [CONNECT]            # paused: nothing read
        driver.start(socket_id)
        kinds = [owner.next()[0], owner.next()]
        assert kinds[0] == CONNECT and kinds[1][0] == DATA and kinds[1][1].data == b"held"
        driver.close(socket_id)
        assert owner.next()[0] == CLOSE
    listening = driver.udp_listen("127.0.0.1", 0, opaque=opaque)
    dialing = driver.udp_dial("127.0.0.1", driver.server.address(listening)[1], opaque=opaque)
    try:
        assert driver.send(dialing, b"dialed") is True      # to its default destination
        kind, message = owner.next()
        assert (kind, message.id, message.data) == (UDP, listening, b"dialed")
        assert driver.udp_address(message)[1] == driver.server.address(dialing)[1]
    finally:
        driver.close(dialing)
        driver.close(listening)


def test_routing_by_opaque(driver: Driver) -> None:
    listener_owner, conn_owner = Recorder(driver), Recorder(driver)
    a = driver.register(listener_owner)
    b = driver.register(conn_owner)
    assert a != b
    listen_id = driver.listen("127.0.0.1", 0, opaque=a)
    driver.start(listen_id)
    kind, message = listener_owner.next()
    assert (kind, message.id, message.data) == (CONNECT, listen_id, "start")
    port = driver.server.address(listen_id)[1]
    client = gevent.socket.create_connection(("127.0.0.1", port))
    try:
        kind, message = listener_owner.next()
        assert kind == ACCEPT and message.id == listen_id
        new_id = message.ud
        assert message.data == "127.0.0.1:%d" % client.getsockname()[1]
        driver.start(new_id, opaque=b)           # hand the connection to b
        kind, message = conn_owner.next()
        assert (kind, message.id, message.data) == (CONNECT, new_id, "start")
        client.sendall(b"hi")
        kind, message = conn_owner.next()
        assert (kind, message.id, message.data, message.ud) == (DATA, new_id, b"hi", 2)
        assert driver.send(new_id, b"back") is True
        assert recv_exactly(client, 4) == b"back"
        client.close()
        kind, message = conn_owner.next()
        assert (kind, message.id) == (CLOSE, new_id)
        driver.close(new_id)
        gevent.sleep(0.05)
        assert listener_owner.kinds() == [CONNECT, ACCEPT]
        assert conn_owner.kinds() == [CONNECT, DATA, CLOSE]
        assert all(listener_owner.in_dispatcher + conn_owner.in_dispatcher)
    finally:
        client.close()
        driver.close(listen_id)


def test_error_udp_and_warning_types(driver: Driver) -> None:
    owner = Recorder(driver)
    opaque = driver.register(owner)
    # ERROR: start of an id that does not exist
    driver.start(987654, opaque=opaque)
    kind, message = owner.next()
    assert (kind, message.id, message.data) == (ERROR, 987654, "invalid socket")
    # UDP from a stdlib peer, and a reply with udp_send
    udp_id = driver.udp("127.0.0.1", 0, opaque=opaque)
    port = driver.server.address(udp_id)[1]
    peer = gevent.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM)
    try:
        peer.bind(("127.0.0.1", 0))
        peer.sendto(b"dgram", ("127.0.0.1", port))
        kind, message = owner.next()
        assert (kind, message.id, message.data) == (UDP, udp_id, b"dgram")
        assert driver.udp_address(message) == peer.getsockname()
        assert driver.udp_send(udp_id, driver.udp_address(message), b"reply") is True
        peer.settimeout(5)
        assert peer.recvfrom(100)[0] == b"reply"
        driver.udp_connect(udp_id, "127.0.0.1", peer.getsockname()[1])
        assert driver.send(udp_id, b"default dest") is True
        assert peer.recvfrom(100)[0] == b"default dest"
    finally:
        peer.close()
        driver.close(udp_id)
    kind, message = owner.next()
    assert (kind, message.id) == (CLOSE, udp_id)
    # WARNING: a big send to a peer that does not read, then the drain (0)
    with GeventListener(lambda conn: None) as server:
        socket_id = driver.block_connect("127.0.0.1", server.port, opaque=opaque)
        assert owner.next()[0] == CONNECT
        data = os.urandom(16 << 20)
        driver.send(socket_id, data)
        kind, message = owner.next()
        assert kind == WARNING and message.id == socket_id and message.ud >= 1024
        wait_for(lambda: server.conns)
        assert recv_exactly(server.conns[0], len(data)) == data
        wait_for(lambda: owner.events[-1][0] == WARNING and owner.events[-1][1].ud == 0)
        driver.close(socket_id)


def test_connect_then_send_before_open(driver: Driver) -> None:
    # scenario 14: bytes sent before OPEN go out once connected
    owner = Recorder(driver)
    opaque = driver.register(owner)
    received: gevent.queue.Queue = gevent.queue.Queue()
    with GeventListener(lambda conn: received.put(recv_exactly(conn, 10))) as server:
        socket_id = driver.connect("127.0.0.1", server.port, opaque=opaque)
        assert driver.send(socket_id, b"0123456789") is True
        assert driver.send_lowpriority(socket_id, b"") is True
        kind, message = owner.next()
        assert (kind, message.id, message.data) == (CONNECT, socket_id, f"127.0.0.1:{server.port}")
        assert received.get(timeout=5) == b"0123456789"
        driver.nodelay(socket_id)        # accepted on a live id...
        driver.nodelay(424242)           # ...and ignored on a gone one
        driver.shutdown(socket_id)
        kind, message = owner.next()
        assert (kind, message.id) == (CLOSE, socket_id)


def test_bind_a_pipe_through_the_driver(driver: Driver) -> None:
    owner = Recorder(driver)
    opaque = driver.register(owner)
    r, w = os.pipe()
    try:
        socket_id = driver.bind(r, opaque=opaque)
        assert owner.next()[1].data == "binding"
        os.write(w, b"piped")
        kind, message = owner.next()
        assert (kind, message.data) == (DATA, b"piped")
        os.close(w)
        w = -1
        assert owner.next()[0] == CLOSE
        driver.close(socket_id)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_owner_exception_is_logged_and_dispatcher_keeps_running(driver: Driver, caplog) -> None:
    seen: List[bytes] = []

    def owner(kind: int, message: Any) -> None:
        if kind == DATA:
            seen.append(message.data)
            if message.data == b"bad\n":
                raise RuntimeError("owner exploded")

    opaque = driver.register(owner)
    with GeventListener(lambda conn: (conn.sendall(b"bad\n"), gevent.sleep(0.05),
                                      conn.sendall(b"good\n"), gevent.sleep(0.05))) as server:
        socket_id = driver.block_connect("127.0.0.1", server.port, opaque=opaque)
        wait_for(lambda: b"good\n" in seen)
        driver.close(socket_id)
    assert seen == [b"bad\n", b"good\n"]
    failures = [r for r in caplog.records if r.exc_info and "owner exploded" in str(r.exc_info[1])]
    assert len(failures) == 1 and failures[0].name == "gsocket.driver"


def test_events_for_an_unowned_opaque_are_dropped_and_closed(driver: Driver, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="gsocket.driver")
    listen_id = driver.listen("127.0.0.1", 0, opaque=777)
    driver.start(listen_id)
    port = driver.server.address(listen_id)[1]
    client = gevent.socket.create_connection(("127.0.0.1", port))
    try:
        client.settimeout(5)
        assert client.recv(10) == b""          # ACCEPT dropped: the connection closed
        assert any("no owner 777" in r.getMessage() for r in caplog.records)
        assert [info.id for info in driver.server.info()] == [listen_id]
    finally:
        client.close()
        driver.close(listen_id)


def test_data_after_unregister_is_dropped_and_closed(driver: Driver, caplog) -> None:
    owner = Recorder(driver)
    opaque = driver.register(owner)
    with GeventListener(lambda conn: None) as server:
        socket_id = driver.block_connect("127.0.0.1", server.port, opaque=opaque)
        assert owner.next()[0] == CONNECT
        driver.unregister(opaque)
        wait_for(lambda: server.conns)
        conn = server.conns[0]
        conn.sendall(b"nobody listens")
        conn.settimeout(5)
        assert conn.recv(10) == b""            # we closed it
        assert driver.server.info() == []
        assert owner.kinds() == [CONNECT]
        assert any(f"no owner {opaque}" in r.getMessage() for r in caplog.records)
        assert driver.send(socket_id, b"x") is False


def test_register_validates_and_numbers(driver: Driver) -> None:
    with pytest.raises(TypeError):
        driver.register("not callable")  # type: ignore[arg-type]
    first = driver.register(lambda kind, message: None)
    second = driver.register(lambda kind, message: None)
    assert first != second
    assert driver.register(lambda kind, message: None, opaque=4242) == 4242
    driver.unregister(4242)
    driver.unregister(4242)   # twice is fine


def test_blocking_owner_hands_the_dispatcher_over(driver: Driver) -> None:
    owner_events: List[str] = []
    second_accepted = gevent.event.Event()
    third_blocks = gevent.event.Event()
    dispatchers = []

    def owner(kind: int, message: Any) -> None:
        if kind != ACCEPT:
            return
        dispatchers.append(gevent.getcurrent())
        accept = len(dispatchers)
        if accept == 1:
            owner_events.append("first accept: blocking")
            driver.before_block()                # as every blocking gsocket call does
            assert not driver.in_dispatcher()
            second_accepted.wait(5)              # only another dispatcher can set it
            owner_events.append("first accept: done")
        elif accept == 2:
            owner_events.append("second accept")
            second_accepted.set()
        elif accept == 3:
            driver.before_block()
            third_blocks.wait(5)
        driver.close(message.ud)

    opaque = driver.register(owner)
    listen_id = driver.listen("127.0.0.1", 0, opaque=opaque)
    driver.start(listen_id)
    port = driver.server.address(listen_id)[1]
    clients = [gevent.socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        wait_for(lambda: len(owner_events) == 3)
        assert owner_events == ["first accept: blocking", "second accept", "first accept: done"]
        assert dispatchers[0] is not dispatchers[1]
        gevent.sleep(0.01)
        # Its callback returned: the first dispatcher parks as a spare, and
        # the next hand-over (the third callback blocks) resumes it.
        assert not dispatchers[0].dead
        clients += [gevent.socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        wait_for(lambda: len(dispatchers) == 4)
        assert dispatchers[2] is dispatchers[1]
        assert dispatchers[3] is dispatchers[0]
        third_blocks.set()
    finally:
        for client in clients:
            client.close()
        driver.close(listen_id)


def test_spare_dispatchers_are_capped_and_end_with_the_driver(leak_check: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code_module(driver_module), "SPARE_DISPATCHERS", 1)
    drv = Driver()
    release = gevent.event.Event()
    blocked: List[Any] = []

    def owner(kind: int, message: Any) -> None:
        if kind == ACCEPT:
            blocked.append(gevent.getcurrent())
            drv.before_block()
            release.wait(5)
            drv.close(message.ud)

    try:
        opaque = drv.register(owner)
        listen_id = drv.listen("127.0.0.1", 0, opaque=opaque)
        drv.start(listen_id)
        port = drv.server.address(listen_id)[1]
        clients = [gevent.socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        wait_for(lambda: len(blocked) == 3)
        assert len(set(blocked)) == 3            # three callbacks wait, each in its own greenlet
        release.set()
        wait_for(lambda: sum(not greenlet.dead for greenlet in blocked) == 1)
        spare = next(greenlet for greenlet in blocked if not greenlet.dead)
        current = drv.dispatcher
        assert current is not None and current is not spare
        for client in clients:
            client.close()
    finally:
        drv.free()
    assert spare.dead and current.dead           # free() ends spares and the dispatcher


def test_blocking_socket_calls_in_an_accept_callback(driver: Driver) -> None:
    # skynet style: the accept callback itself starts the connection and
    # reads; connection 1 only talks after connection 2 was served, which
    # needs the dispatcher to keep going while callback 1 blocks.
    served = gevent.event.Event()
    results: List[bytes] = []

    def on_accept(socket_id: int, address: str) -> None:
        gs.start(socket_id)
        line = gs.readline(socket_id, timeout=10)
        skynet.sleep(0.01)
        results.append(line)
        gs.write(socket_id, line.upper() + b"\n")
        if line == b"second":
            served.set()
        gs.close(socket_id)

    listen_id = gs.listen("127.0.0.1", 0)
    gs.start(listen_id, on_accept)
    port = gs.address(listen_id)[1]
    first = gevent.socket.create_connection(("127.0.0.1", port))
    second = gevent.socket.create_connection(("127.0.0.1", port))
    try:
        second.sendall(b"second\n")
        assert served.wait(5)
        first.sendall(b"first\n")
        assert first.makefile("rb").readline() == b"FIRST\n"
        assert second.makefile("rb").readline() == b"SECOND\n"
        assert results == [b"second", b"first"]
    finally:
        first.close()
        second.close()
        gs.close(listen_id)


def test_open_inside_a_callback(driver: Driver) -> None:
    answers: gevent.queue.Queue = gevent.queue.Queue()
    with GeventListener(lambda conn: conn.sendall(b"upstream says hi")) as upstream:
        def on_accept(socket_id: int, address: str) -> None:
            other = gs.open("127.0.0.1", upstream.port)     # blocks: hands over
            answers.put(gs.read(other, 16, timeout=5))
            gs.close(other)
            gs.close_fd(socket_id)

        listen_id = gs.listen("127.0.0.1", 0)
        gs.start(listen_id, on_accept)
        client = gevent.socket.create_connection(gs.address(listen_id))
        try:
            assert answers.get(timeout=5) == b"upstream says hi"
        finally:
            client.close()
            gs.close(listen_id)


def test_default_is_the_current_hub_driver(leak_check: None) -> None:
    hub = get_hub()
    previous = driver_module.install_default(None, hub)
    try:
        first = default()
        assert default() is first and not first.freed
        assert first.hub is hub
        first.free()
        assert first.freed
        second = default()
        assert second is not first and not second.freed
        seen = []

        def in_thread() -> None:
            other = default()
            seen.append((other, other.hub))
            other.free()
            get_hub().destroy(destroy_loop=True)

        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join(10)
        assert seen and seen[0][0] is not second and seen[0][1] is not hub
        second.free()
    finally:
        driver_module.install_default(previous, hub)


def test_default_is_what_gsocket_socket_uses(driver: Driver) -> None:
    assert default() is driver
    listen_id = gs.listen("127.0.0.1", 0)
    assert [info.id for info in driver.server.info()] == [listen_id]
    gs.close(listen_id)


def test_manual_poll_without_dispatcher(leak_check: None) -> None:
    drv = Driver(start=False)
    try:
        owner = Recorder(drv)
        opaque = drv.register(owner)
        assert drv.poll(timeout=0.02) == -1
        drv.start(13579, opaque=opaque)              # -> ERROR
        assert owner.events == []                    # nobody dispatches...
        assert drv.poll(timeout=1) == 1              # ...until we poll
        assert owner.kinds() == [ERROR]
        drv.exit()
        assert drv.poll(timeout=1) == 0
    finally:
        drv.free()
    with pytest.raises(RuntimeError):
        drv.init()


def test_exit_stops_the_dispatcher(driver: Driver) -> None:
    owner = Recorder(driver)
    opaque = driver.register(owner)
    dispatcher = driver.dispatcher
    driver.start(11111, opaque=opaque)
    driver.exit()
    driver.start(22222, opaque=opaque)               # queued after EXIT
    wait_for(lambda: dispatcher.dead)
    gevent.sleep(0.02)
    assert [message.id for _, message in owner.events] == [11111]


def test_free_wakes_readers_and_is_idempotent(leak_check: None) -> None:
    hub = get_hub()
    drv = Driver()
    previous = driver_module.install_default(drv, hub)
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
        drv.free()
        drv.free()
        reader.join(5)
        assert results == [None]
        client.settimeout(5)
        assert client.recv(10) == b""                # every socket was closed
        client.close()
    finally:
        driver_module.install_default(previous, hub)


def test_cleanup_after_free_does_not_bring_a_driver_back(leak_check):
    # Handlers woken by free() typically call close()/read() on their ids:
    # that must not start a new driver (whose dispatcher nobody would free).
    hub = get_hub()
    freed = Driver()
    previous = driver_module.install_default(freed, hub)
    try:
        listen_id = gs.listen("127.0.0.1", 0)
        freed.free()
        assert gs.read(listen_id + 1) is None
        assert gs.write(listen_id, b"x") is False
        gs.close(listen_id)
        assert gs.invalid(listen_id)
        assert gs.netstat() == []
        assert driver_module.current() is freed
        # A call that makes a socket starts a fresh driver.
        gs.listen("127.0.0.1", 0)
        fresh = driver_module.current()
        assert fresh is not freed and not fresh.freed
        fresh.free()
    finally:
        driver_module.install_default(previous, hub)


def test_register_direct_skips_the_dispatcher_only_when_nothing_waits(driver: Driver) -> None:
    owner = Recorder(driver)
    opaque = driver.register(owner)
    direct: List[Any] = []
    driver.register_direct(opaque, lambda socket_id, data: direct.append((socket_id, data)))
    with pytest.raises(ValueError):
        driver.register_direct(opaque + 1000, lambda socket_id, data: None)
    listen_id = driver.listen("127.0.0.1", 0, opaque=opaque)
    driver.start(listen_id)
    assert owner.next()[0] == CONNECT
    client = gevent.socket.create_connection(("127.0.0.1", driver.server.address(listen_id)[1]))
    try:
        kind, message = owner.next()
        new_id = message.ud
        driver.start(new_id)
        assert owner.next()[0] == CONNECT              # every other event: the owner
        client.sendall(b"one")
        wait_for(lambda: direct)
        assert direct == [(new_id, b"one")]
        assert DATA not in owner.kinds()               # the dispatcher was spared it
        client.close()
        assert owner.next()[0] == CLOSE
        driver.close(new_id)
    finally:
        client.close()
        driver.close(listen_id)


def test_a_direct_handler_closing_its_socket_mid_burst_ends_the_reads(driver: Driver) -> None:
    # The read callback reads on while reads fill the buffer; a direct DATA
    # handler that closes the socket in the middle must stop it there: no
    # read of the closed fd, so no ERROR after the close.
    owner = Recorder(driver)
    opaque = driver.register(owner)
    seen: List[int] = []

    def close_on_first(socket_id: int, data: bytes) -> None:
        seen.append(len(data))
        if len(seen) == 1:
            driver.close(socket_id)

    driver.register_direct(opaque, close_on_first)
    listen_id = driver.listen("127.0.0.1", 0, opaque=opaque)
    driver.start(listen_id)
    assert owner.next()[0] == CONNECT
    client = gevent.socket.create_connection(("127.0.0.1", driver.server.address(listen_id)[1]))
    try:
        new_id = owner.next()[1].ud
        client.sendall(b"b" * 200_000)              # queued in the kernel before reading starts
        driver.start(new_id)
        assert owner.next()[0] == CONNECT
        wait_for(lambda: seen)
        assert owner.next()[0] == CLOSE
        gevent.sleep(0.1)
        assert seen == [64]                         # the first read only, then it stopped
        assert [kind for kind, message in owner.events if message.id == new_id] == [CONNECT, CLOSE]
    finally:
        client.close()
        driver.close(listen_id)


def test_a_driver_polled_by_hand_sees_every_data_event() -> None:
    manual = Driver(start=False)
    try:
        owner = Recorder(manual)
        opaque = manual.register(owner)
        manual.register_direct(opaque, lambda socket_id, data: pytest.fail("direct while polled by hand"))
        listen_id = manual.listen("127.0.0.1", 0, opaque=opaque)
        manual.start(listen_id)
        assert manual.poll(5) == 1 and owner.kinds() == [CONNECT]
        client = gevent.socket.create_connection(("127.0.0.1", manual.server.address(listen_id)[1]))
        assert manual.poll(5) == 1
        new_id = owner.events[-1][1].ud
        manual.start(new_id)
        assert manual.poll(5) == 1
        client.sendall(b"by hand")
        assert manual.poll(5) == 1
        kind, message = owner.events[-1]
        assert (kind, message.data) == (DATA, b"by hand")
        client.close()
    finally:
        manual.free()


def test_socket_calls_follow_the_hubs_driver_as_it_changes(driver: Driver) -> None:
    """gsocket.socket remembers the hub it looked up last (driver.last_lookup):
    every change of the hub's driver must reach the next call, from the hub's
    children and from a greenlet that is not one."""
    import greenlet

    listen_id = gs.listen("127.0.0.1", 0)

    def ids_seen() -> List[int]:
        return [row.id for row in gs.netstat()]

    def from_a_grandchild() -> List[int]:
        return greenlet.greenlet(ids_seen).switch()   # its parent is not the hub

    def from_a_child() -> List[int]:
        return gevent.spawn(ids_seen).get(timeout=5)

    assert listen_id in ids_seen() and listen_id in from_a_child()
    assert listen_id in from_a_grandchild()
    other = Driver()
    previous = driver_module.install_default(other)
    try:
        assert previous is driver
        assert ids_seen() == [] and from_a_child() == [] and from_a_grandchild() == []
        other_id = gs.listen("127.0.0.1", 0)             # the new driver's first pool
        assert from_a_child() == [other_id] == ids_seen()
    finally:
        driver_module.install_default(previous)
        other.free()
    assert listen_id in from_a_child() and listen_id in ids_seen()
    gs.close(listen_id)
