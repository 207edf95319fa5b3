"""A callback that blocks never stalls the other sockets (issue 8).

Owner callbacks (an accept callback, onclose, a udp callback) run inside
the dispatcher. Each test makes one of them block in one way -- gevent.sleep,
a gevent Queue, an Event, and time.sleep under monkey.patch_all() (in a
subprocess, since importing gsocket must not patch this process) -- and
checks, WHILE it is still blocked, that another connection's echo (served
through gsocket, so through the dispatcher) keeps answering, each round trip
well under the block's duration.
"""

from __future__ import annotations

import json
import os
import socket as stdlib_socket
import subprocess
import sys
import textwrap
import time
from typing import Any, Iterator, List

import gevent
import gevent.event
import gevent.queue
import gevent.socket
import pytest

from gsocket import socket as gs

from _peers import recv_exactly, wait_for  # noqa: E402

pytestmark = pytest.mark.usefixtures("driver")

#: Seconds a callback blocks (or would block, if the test did not release it).
BLOCK = 2.0
#: Every echo round trip made during the block must finish under this.
ROUND_TRIP_LIMIT = 1.0
ROUND_TRIPS = 10


class Blocker:
    """What a callback calls to block in one way; ``entered`` is set when
    the callback starts blocking, ``done`` when it returns."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entered = gevent.event.Event()
        self.done = False
        self.queue: gevent.queue.Queue = gevent.queue.Queue()
        self.event = gevent.event.Event()

    def block(self, *args: Any) -> None:
        self.entered.set()
        if self.kind == "gevent.sleep":
            gevent.sleep(BLOCK)
        elif self.kind == "queue":
            self.queue.get(timeout=BLOCK * 5)
        elif self.kind == "event":
            assert self.event.wait(BLOCK * 5)
        else:  # pragma: no cover - a typo in a parameter
            raise AssertionError(self.kind)
        self.done = True

    def release(self) -> None:
        """End the block early (queue and event kinds; sleep runs out)."""
        self.queue.put("go")
        self.event.set()


class Echo:
    """A gsocket echo server with one connected gevent client."""

    def __init__(self) -> None:
        self.readers: List[gevent.Greenlet] = []
        self.listen_id = gs.listen("127.0.0.1", 0)
        gs.start(self.listen_id, self._accept)
        self.client = gevent.socket.create_connection(gs.address(self.listen_id), timeout=10)
        self.round_trip(b"warm up")

    def _accept(self, socket_id: int, address: str) -> None:
        gs.start(socket_id)
        self.readers.append(gevent.spawn(self._serve, socket_id))

    @staticmethod
    def _serve(socket_id: int) -> None:
        while (data := gs.read(socket_id)) is not None:
            gs.write(socket_id, data)
        gs.close(socket_id)

    def round_trip(self, payload: bytes) -> float:
        """Seconds one echo of ``payload`` took."""
        began = time.monotonic()
        self.client.sendall(payload)
        assert recv_exactly(self.client, len(payload)) == payload
        return time.monotonic() - began

    def close(self) -> None:
        self.client.close()
        gevent.joinall(self.readers, timeout=5)
        assert all(reader.dead for reader in self.readers)
        gs.close(self.listen_id)


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    try:
        yield server
    finally:
        server.close()


def check_echo_while_blocked(echo: Echo, blocker: Blocker) -> None:
    """Echo round trips while ``blocker`` is blocked, then release it."""
    assert blocker.entered.wait(5), "the callback never ran"
    began = time.monotonic()
    latencies = [echo.round_trip(b"ping %d" % index) for index in range(ROUND_TRIPS)]
    still_blocked = not blocker.done
    elapsed = time.monotonic() - began
    blocker.release()
    assert still_blocked, "the echoes were only answered after the callback returned"
    assert elapsed < BLOCK
    assert max(latencies) < ROUND_TRIP_LIMIT, latencies
    wait_for(lambda: blocker.done, timeout=BLOCK * 3)
    assert echo.round_trip(b"after") < ROUND_TRIP_LIMIT


KINDS = ["gevent.sleep", "queue", "event"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_accept_callback_that_blocks(echo: Echo, kind: str) -> None:
    blocker = Blocker(kind)

    def on_accept(socket_id: int, address: str) -> None:
        blocker.block()
        gs.close_fd(socket_id)

    listen_id = gs.listen("127.0.0.1", 0)
    gs.start(listen_id, on_accept)
    client = gevent.socket.create_connection(gs.address(listen_id), timeout=10)
    try:
        check_echo_while_blocked(echo, blocker)
        assert client.recv(10) == b""          # the callback ran on and closed it
    finally:
        client.close()
        gs.close(listen_id)


@pytest.mark.parametrize("kind", KINDS)
def test_an_onclose_callback_that_blocks(echo: Echo, kind: str) -> None:
    blocker = Blocker(kind)
    accepted: gevent.queue.Queue = gevent.queue.Queue()
    listen_id = gs.listen("127.0.0.1", 0)
    gs.start(listen_id, lambda socket_id, address: accepted.put(socket_id))
    client = gevent.socket.create_connection(gs.address(listen_id), timeout=10)
    try:
        socket_id = accepted.get(timeout=5)
        gs.start(socket_id)
        gs.onclose(socket_id, blocker.block)
        client.close()                          # CLOSE -> onclose -> blocks
        check_echo_while_blocked(echo, blocker)
        assert gs.disconnected(socket_id)
        gs.close(socket_id)
    finally:
        client.close()
        gs.close(listen_id)


@pytest.mark.parametrize("kind", KINDS)
def test_a_udp_callback_that_blocks(echo: Echo, kind: str) -> None:
    blocker = Blocker(kind)
    got: List[bytes] = []

    def on_datagram(data: bytes, address: Any) -> None:
        got.append(data)
        if len(got) == 1:
            blocker.block()

    udp_id = gs.udp(on_datagram, "127.0.0.1", 0)
    peer = gevent.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM)
    try:
        peer.sendto(b"first", gs.address(udp_id))
        check_echo_while_blocked(echo, blocker)
        peer.sendto(b"second", gs.address(udp_id))
        wait_for(lambda: got == [b"first", b"second"])
    finally:
        peer.close()
        gs.close(udp_id)


# ---------------------------------------------------------------------- time.sleep under patch_all

PATCHED_SLEEP = textwrap.dedent('''
    from gevent import monkey
    monkey.patch_all()

    import json
    import socket
    import sys
    import time

    import gevent
    from gsocket import socket as gs

    BLOCK = float(sys.argv[1])
    where = sys.argv[2]                 # accept / onclose / udp
    state = {"entered": False, "done": False}

    def block(*args):
        state["entered"] = True
        time.sleep(BLOCK)               # patched: blocks this greenlet only
        state["done"] = True

    def serve(socket_id):
        while (data := gs.read(socket_id)) is not None:
            gs.write(socket_id, data)
        gs.close(socket_id)

    def on_echo_accept(socket_id, address):
        gs.start(socket_id)
        gevent.spawn(serve, socket_id)

    echo_id = gs.listen("127.0.0.1", 0)
    gs.start(echo_id, on_echo_accept)
    echo = socket.create_connection(gs.address(echo_id), timeout=10)

    def round_trip(payload):
        began = time.monotonic()
        echo.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = echo.recv(65536)
            assert chunk, "echo closed"
            got += chunk
        assert got == payload
        return time.monotonic() - began

    round_trip(b"warm up")
    other = None
    if where == "accept":
        listen_id = gs.listen("127.0.0.1", 0)
        gs.start(listen_id, lambda socket_id, address: block())
        other = socket.create_connection(gs.address(listen_id), timeout=10)
    elif where == "onclose":
        accepted = []
        listen_id = gs.listen("127.0.0.1", 0)
        gs.start(listen_id, lambda socket_id, address: accepted.append(socket_id))
        client = socket.create_connection(gs.address(listen_id), timeout=10)
        while not accepted:
            time.sleep(0.001)
        gs.start(accepted[0])
        gs.onclose(accepted[0], block)
        client.close()
    else:
        udp_id = gs.udp(lambda data, address: block(), "127.0.0.1", 0)
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.sendto(b"x", gs.address(udp_id))
    deadline = time.monotonic() + 5
    while not state["entered"] and time.monotonic() < deadline:
        time.sleep(0.001)
    latencies = [round_trip(b"ping %d" % i) for i in range(10)]
    still_blocked = not state["done"]
    print(json.dumps({"entered": state["entered"], "still_blocked": still_blocked,
                      "latencies": latencies}))
''')


@pytest.mark.parametrize("where", ["accept", "onclose", "udp"])
def test_time_sleep_under_patch_all_in_a_callback(where: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", PATCHED_SLEEP, str(BLOCK), where],
                            capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["entered"], "the callback never ran"
    assert report["still_blocked"], "the echoes were only answered after the callback returned"
    assert max(report["latencies"]) < ROUND_TRIP_LIMIT, report
