"""gsocket.socket from real OS threads (an unpatched process), issue 8:
a bad argument raises in the calling thread and never inside the hub,
netstat() from a thread is the hub's own view, and a host name given to
udp_connect / sendto is resolved in the thread, never in the hub."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Tuple

import gevent
import gevent.queue
import pytest

from gsocket import socket as gs

pytest_plugins = ["_peers"]                 # fixtures: pair

from _peers import Pair, wait_for  # noqa: E402
from helpers import InThread  # noqa: E402

pytestmark = pytest.mark.usefixtures("driver")


def hub_errors(caplog: pytest.LogCaptureFixture) -> List[str]:
    """What gsocket logged at ERROR or above (a call that failed in the hub)."""
    return [record.getMessage() for record in caplog.records
            if record.levelno >= logging.ERROR and record.name.startswith("gsocket")]


def in_thread(fn: Callable[[], Any]) -> Any:
    """fn() in a real OS thread; its result (the hub keeps running meanwhile)."""
    return InThread(fn).result()


def test_bad_arguments_from_a_thread_raise_there_and_never_in_the_hub(
        pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    udp_id = gs.udp(lambda data, address: None, "127.0.0.1", 0)
    calls: Dict[str, Tuple[Callable[[], Any], type]] = {
        "write": (lambda: gs.write("1", b"x"), TypeError),
        "write data": (lambda: gs.write(pair.id, 12345), TypeError),
        "lwrite data": (lambda: gs.lwrite(pair.id, object()), TypeError),
        "close": (lambda: gs.close("nope"), TypeError),
        "shutdown": (lambda: gs.shutdown(None), TypeError),          # type: ignore[arg-type]
        "pause": (lambda: gs.pause(1.5), TypeError),                 # type: ignore[arg-type]
        "abandon": (lambda: gs.abandon(b"1"), TypeError),            # type: ignore[arg-type]
        "nodelay": (lambda: gs.nodelay("1"), TypeError),             # type: ignore[arg-type]
        "limit": (lambda: gs.limit(pair.id, -1), ValueError),
        "warning": (lambda: gs.warning(pair.id, 5), TypeError),      # type: ignore[arg-type]
        "onclose": (lambda: gs.onclose(pair.id, None), TypeError),   # type: ignore[arg-type]
        "start": (lambda: gs.start(pair.id, 5), TypeError),          # type: ignore[arg-type]
        "sendto address": (lambda: gs.sendto(udp_id, "127.0.0.1:9", b"x"), TypeError),
        "sendto tcp id": (lambda: gs.sendto(pair.id, ("127.0.0.1", 9), b"x"), ValueError),
        "udp_connect port": (lambda: gs.udp_connect(udp_id, "127.0.0.1", "9"), TypeError),
        "udp_connect tcp id": (lambda: gs.udp_connect(pair.id, "127.0.0.1", 9), ValueError),
    }

    def legacy() -> Dict[str, Any]:
        raised: Dict[str, Any] = {}
        for name, (call, _) in calls.items():
            try:
                call()
            except Exception as err:  # noqa: BLE001 - recorded, compared below
                raised[name] = type(err)
            else:
                raised[name] = None
        return raised

    with caplog.at_level(logging.DEBUG, logger="gsocket"):
        raised = in_thread(legacy)
        # Let the hub run whatever the thread queued.
        assert gs.write(pair.id, b"still fine") is True
        gevent.sleep(0.05)
    assert raised == {name: kind for name, (_, kind) in calls.items()}
    assert hub_errors(caplog) == []
    assert not gs.disconnected(pair.id)
    gs.close(udp_id)


def test_netstat_from_a_thread_is_the_hubs_view(pair: Pair) -> None:
    pair.client.sendall(b"12345")
    assert gs.read(pair.id, 5, timeout=5) == b"12345"
    assert gs.write(pair.id, b"abc") is True
    mine = gs.netstat()
    theirs = in_thread(gs.netstat)
    # rtime/wtime are the same snapshot's; every field matches.
    assert theirs == mine
    assert [row.id for row in theirs] == sorted(row.id for row in theirs)
    assert {row.id: (row.type, row.read, row.write) for row in theirs}[pair.id] == ("TCP", 5, 3)
    assert in_thread(lambda: gs.address(pair.id)) == gs.address(pair.id)


def test_udp_connect_with_a_host_name_from_a_thread_resolves_there(
        caplog: pytest.LogCaptureFixture) -> None:
    received: "gevent.queue.Queue[bytes]" = gevent.queue.Queue()
    target = gs.udp(lambda data, address: received.put(data), "127.0.0.1", 0)
    port = gs.address(target)[1]
    sender = gs.udp(lambda data, address: None, "127.0.0.1", 0)
    replies: "gevent.queue.Queue[bytes]" = gevent.queue.Queue()
    with caplog.at_level(logging.DEBUG, logger="gsocket"):
        in_thread(lambda: gs.udp_connect(sender, "localhost", port,
                                         lambda data, address: replies.put(data)))
        # The thread's call hops onto the hub in its own order, not before
        # this greenlet's next call: write fails (sends nothing) until then.
        wait_for(lambda: gs.write(sender, b"by name"))
        assert received.get(timeout=5) == b"by name"
        # the callback given from the thread took effect too
        assert gs.sendto(target, gs.address(sender), b"back") is True
        assert replies.get(timeout=5) == b"back"
    assert hub_errors(caplog) == []
    gs.close(sender)
    gs.close(target)


def test_sendto_a_host_name_from_a_thread_resolves_there(caplog: pytest.LogCaptureFixture) -> None:
    received: "gevent.queue.Queue[bytes]" = gevent.queue.Queue()
    target = gs.udp(lambda data, address: received.put(data), "127.0.0.1", 0)
    port = gs.address(target)[1]
    sender = gs.udp(lambda data, address: None)
    with caplog.at_level(logging.DEBUG, logger="gsocket"):
        assert in_thread(lambda: gs.sendto(sender, ("localhost", port), b"by name")) is True
        assert received.get(timeout=5) == b"by name"
    assert hub_errors(caplog) == []
    gs.close(sender)
    gs.close(target)
