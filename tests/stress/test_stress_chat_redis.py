"""Redis killed under the chat server's load: two chat processes scaled out
over a real redis-server, 200 clients (100 on each) in 10 rooms talking.

1. Before: every message reaches every other member of its room, across
   the two nodes.
2. redis-server is SIGKILLed while everyone talks: both nodes stay up,
   nobody is disconnected, every client is told the link is lost, and every
   message between clients of the same node is still delivered, in order.
3. redis-server is back: every client is told so, and again every message
   reaches every member on both nodes.
No traceback in either node's log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, List

import gevent
import gevent.pool
import pytest

from _chat_load import LoadClient
from _stress import ServerProcess, free_port
from chat_helpers import RedisServer

pytestmark = [pytest.mark.stress, pytest.mark.gsocket(timeout=100), pytest.mark.timeout(120)]

PER_NODE = 100
ROOMS = 10
LOST = "* lost the link to the other chat servers"
BACK = "* the link to the other chat servers is back"


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        gevent.sleep(0.05)


def talk(clients: List[LoadClient], count: int, first: int) -> None:
    gevent.joinall([gevent.spawn(c.talk, count, 0.3, first) for c in clients], raise_error=True)


def test_redis_killed_under_load(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    nodes: List[ServerProcess] = []
    clients: List[LoadClient] = []
    try:
        for _ in range(2):
            port = free_port()
            nodes.append(ServerProcess(["-m", "gsocket", "chat", "--host", "127.0.0.1", "--port", str(port),
                                        "--redis", redis.url, "--log-level", "WARNING"], port))
        clients = [LoadClient(nodes[index % 2].port, index, ROOMS) for index in range(2 * PER_NODE)]
        pool = gevent.pool.Pool(50)
        for client in clients:
            pool.spawn(client.join)
        pool.join(raise_error=True)
        room_of = {c.index: c.room for c in clients}
        node_of = {c.index: c.index % 2 for c in clients}

        def expected(client: LoadClient, numbers: range, same_node_only: bool) -> set:
            return {(other, n) for other, room in room_of.items()
                    if room == client.room and other != client.index
                    and (not same_node_only or node_of[other] == node_of[client.index])
                    for n in numbers}

        def delivered(numbers: range, same_node_only: bool) -> bool:
            return all(expected(c, numbers, same_node_only) <= c.got for c in clients)

        # 1. across both nodes
        gevent.sleep(0.5)                                  # presence settles on both nodes
        talk(clients, 2, 0)
        wait_until(lambda: delivered(range(0, 2), False), 20, "cross-node messages before the kill")

        # 2. redis dies while everyone talks
        talkers = [gevent.spawn(c.talk, 4, 0.3, 100) for c in clients]
        gevent.sleep(0.5)
        redis.stop()                                        # SIGKILL
        gevent.joinall(talkers, raise_error=True)
        wait_until(lambda: all(any(line.startswith(LOST) for line in c.lines) for c in clients), 20,
                   "the lost-link notice")
        wait_until(lambda: delivered(range(100, 104), True), 20, "same-node messages while Redis is down")
        assert all(node.process.poll() is None for node in nodes)
        assert not [c.nick for c in clients if c.eof]

        # 3. redis is back
        redis.start()
        wait_until(lambda: all(any(line.startswith(BACK) for line in c.lines) for c in clients), 30,
                   "the link-back notice")
        gevent.sleep(0.5)
        talk(clients, 2, 200)
        wait_until(lambda: delivered(range(200, 202), False), 20, "cross-node messages after the restart")
        assert not [c.disorder for c in clients if c.disorder][:3]
        assert not [c.nick for c in clients if c.eof]
        assert not [c.errors for c in clients if c.errors][:3]
    finally:
        for client in clients:
            client.close()
        for node in nodes:
            node.stop()
        redis.stop()
    for node in nodes:
        assert not node.tracebacks(), node.lines[-40:]
