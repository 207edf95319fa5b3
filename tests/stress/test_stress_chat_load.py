"""1,000 line-protocol clients in 10 rooms of the chat server (the real
``python -m gsocket chat`` process) talking for DURATION seconds: every
message reaches every other member of its room exactly once, in the order
its sender sent it, and nobody is throttled or disconnected."""

from __future__ import annotations

import time
from typing import List

import gevent
import gevent.pool
import pytest

from _chat_load import LoadClient
from _stress import ServerProcess, free_port

pytestmark = [pytest.mark.stress, pytest.mark.gsocket(timeout=150), pytest.mark.timeout(180)]

CLIENTS = 1000
ROOMS = 10
#: Seconds of talking.
DURATION = 30.0
#: Seconds between two messages of one client.
INTERVAL = 1.0


def test_thousand_chat_clients_in_ten_rooms_every_message_counted() -> None:
    port = free_port()
    server = ServerProcess(["-m", "gsocket", "chat", "--host", "127.0.0.1", "--port", str(port),
                            "--log-level", "WARNING"], port, nofile=4 * CLIENTS)
    clients: List[LoadClient] = [LoadClient(port, index, ROOMS) for index in range(CLIENTS)]
    try:
        pool = gevent.pool.Pool(100)
        for client in clients:
            pool.spawn(client.join)
        pool.join(raise_error=True)
        count = int(DURATION / INTERVAL)
        started = time.monotonic()
        talkers = [gevent.spawn(client.talk, count, INTERVAL) for client in clients]
        gevent.joinall(talkers, raise_error=True)
        members = CLIENTS // ROOMS
        expected = (members - 1) * count
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(c.received < expected for c in clients):
            gevent.sleep(0.1)
        elapsed = time.monotonic() - started
        short = [(c.nick, c.received) for c in clients if c.received != expected or len(c.got) != expected]
        assert not short, f"expected {expected} each; short: {short[:10]}"
        assert not [c.disorder for c in clients if c.disorder][:3]
        assert not [c.errors for c in clients if c.errors][:3]
        assert not [c.nick for c in clients if c.eof]
        assert server.process.poll() is None
        print(f"chat: {CLIENTS * count} messages, {CLIENTS * expected} deliveries in {elapsed:.1f} s")
    finally:
        for client in clients:
            client.close()
        server.stop()
    assert not server.tracebacks(), server.lines[-40:]
