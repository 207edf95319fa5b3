"""1,000 concurrent connections to an echo server written with the blocking
socket API (accept callback forks one reader per connection, as skynet's
testsocket.lua does); every byte each client sends comes back to it."""

from __future__ import annotations

import random
from typing import Dict, List

import gevent
import gevent.socket

from gsocket import socket as gs


from _peers import recv_exactly, wait_for  # noqa: E402

CONNECTIONS = 1000


def echo(socket_id: int, finished: List[int]) -> None:
    gs.start(socket_id)
    while True:
        data = gs.read(socket_id)
        if data is None:
            break
        assert gs.write(socket_id, data) is True
    gs.close(socket_id)
    finished.append(socket_id)


def client(port: int, index: int) -> int:
    rng = random.Random(index)
    sock = gevent.socket.create_connection(("127.0.0.1", port))
    try:
        total = 0
        for size in (1, rng.randrange(2, 2000), rng.randrange(2000, 40000)):
            message = b"%d:" % index + rng.randbytes(size)
            sock.sendall(message)
            assert recv_exactly(sock, len(message)) == message
            total += len(message)
        sock.shutdown(gevent.socket.SHUT_WR)
        assert sock.recv(1) == b""          # the server closes after our EOF
        return total
    finally:
        sock.close()


def test_echo_1000_connections(driver) -> None:
    finished: List[int] = []
    handlers: List[gevent.Greenlet] = []
    addresses: Dict[int, str] = {}

    def on_accept(socket_id: int, address: str) -> None:
        addresses[socket_id] = address
        handlers.append(gevent.spawn(echo, socket_id, finished))

    listen_id = gs.listen("127.0.0.1", 0, backlog=1024)
    gs.start(listen_id, on_accept)
    port = gs.address(listen_id)[1]
    clients = [gevent.spawn(client, port, index) for index in range(CONNECTIONS)]
    gevent.joinall(clients, timeout=25)
    failed = [c for c in clients if not c.successful()]
    assert not failed, f"{len(failed)} clients failed, first: {failed[0].exception!r}"
    assert all(c.value > 2000 for c in clients)
    wait_for(lambda: len(finished) == CONNECTIONS, timeout=10)
    gevent.joinall(handlers, timeout=5, raise_error=True)
    assert len(addresses) == CONNECTIONS == len(set(finished))
    assert all(address.startswith("127.0.0.1:") for address in addresses.values())
    assert [info.type for info in gs.netstat()] == ["LISTEN"]
    assert [info.read for info in gs.netstat()] == [CONNECTIONS]   # accepted count
    gs.close(listen_id)
