"""Step 5: the tiny chat on several processes, joined by Redis pub/sub.

    python docs/tutorial/chat_redis.py --port 8888 --redis 127.0.0.1:6379
    python docs/tutorial/chat_redis.py --port 8889 --redis 127.0.0.1:6379   # another node
    python docs/tutorial/chat_redis.py --port 8888 --redis 127.0.0.1:6379 --workers 4

Every node publishes its members' lines on one Redis channel and delivers
what it hears there to its own members. No Redis library is needed: Redis
speaks a line protocol, so gsocket's own client pieces are enough, a
``Channel`` for PUBLISH and a plain socket id for the subscription.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from typing import List, Optional

import gevent
from gevent.event import Event

from gsocket import skynet, socket
from gsocket.channel import Channel

from chat import Room, serve

logger = logging.getLogger("tutorial.chat_redis")

CHANNEL = b"tutorial-chat"


def command(*args: bytes) -> bytes:
    """One Redis command in RESP, the protocol Redis speaks on the wire."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def integer_reply(sock) -> tuple:
    """Channel response function: PUBLISH answers ``:<receivers>``."""
    line = sock.readline(b"\r\n")
    return line.startswith(b":"), line


def read_array(conn_id: int) -> Optional[List[bytes]]:
    """One RESP array of bulk strings or integers; None once the socket closed."""
    head = socket.readline(conn_id, b"\r\n")
    if head is None or not head.startswith(b"*"):
        return None
    items = []
    for _ in range(int(head[1:])):
        kind = socket.readline(conn_id, b"\r\n")
        if kind is None:
            return None
        if kind.startswith(b"$"):
            body = socket.read(conn_id, int(kind[1:]) + 2)   # the payload and its CRLF
            if body is None:
                return None
            items.append(body[:-2])
        else:
            items.append(kind[1:])
    return items


class SharedRoom(Room):
    """A Room whose announcements go through Redis to every node."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.node = str(os.getpid()).encode()
        self.publisher = Channel(host, port)            # reconnects by itself
        self.redis = (host, port)
        self.subscribed = Event()

    def join(self, conn_id: int) -> str:
        """As in Room; the nick carries the node, so nicks differ across nodes."""
        nick = f"guest{conn_id}@{self.node.decode()}"
        self.members[conn_id] = nick
        self.announce(f"* {nick} joined", sender=conn_id)
        return nick

    def announce(self, line: str, sender: Optional[int] = None) -> None:
        """Publish the line; every node (this one too) delivers it."""
        payload = b"%s %d %s" % (self.node, sender or 0, line.encode())
        self.publisher.request(command(b"PUBLISH", CHANNEL, payload), integer_reply)

    def listen_to_redis(self) -> None:
        """Deliver every published line to the local members; runs in its own greenlet."""
        conn_id = socket.open(*self.redis, timeout=5)
        socket.write(conn_id, command(b"SUBSCRIBE", CHANNEL))
        confirm = read_array(conn_id)                   # [b"subscribe", channel, b"1"]
        if confirm is None or confirm[0] != b"subscribe":
            raise ConnectionError(f"SUBSCRIBE failed: {confirm!r}")
        self.subscribed.set()
        while (message := read_array(conn_id)) is not None:
            if message[0] != b"message":
                continue
            node, sender, line = message[2].split(b" ", 2)
            mine = node == self.node
            self.deliver(line.decode(), int(sender) if mine else None)
        logger.error("lost the Redis subscription; stopping")
        skynet.exit()


def run_node(host: str, port: int, redis: str, reuseport: bool) -> None:
    """One chat process: subscribe first, then listen (so nothing is missed)."""
    redis_host, redis_port = redis.rsplit(":", 1)
    room = SharedRoom(redis_host, int(redis_port))

    def start() -> None:
        skynet.fork(room.listen_to_redis)
        room.subscribed.wait(timeout=10)
        if not room.subscribed.is_set():
            logger.error("could not subscribe at %s", redis)
            skynet.exit()
            return
        listen_id = serve(room, host, port, reuseport=reuseport)
        logger.info("node %s: chat on %s:%d", room.node.decode(), *socket.address(listen_id))

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, skynet.exit)
    skynet.start(start)


def run_workers(count: int, argv: List[str]) -> int:
    """Start ``count`` nodes on one port (SO_REUSEPORT); stop them on SIGTERM."""
    workers = [subprocess.Popen([sys.executable, __file__, *argv, "--reuseport"]) for _ in range(count)]

    def stop(*_: object) -> None:
        for worker in workers:
            worker.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return max(worker.wait() for worker in workers)


def main() -> int:
    """Parse the options; run one node, or ``--workers N`` of them."""
    parser = argparse.ArgumentParser(description="step 5: the chat over Redis")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--redis", default="127.0.0.1:6379", help="HOST:PORT")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--reuseport", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.workers:
        return run_workers(args.workers, ["--host", args.host, "--port", str(args.port),
                                          "--redis", args.redis])
    run_node(args.host, args.port, args.redis, args.reuseport)
    return 0


if __name__ == "__main__":
    sys.exit(main())
