"""A Redis-protocol key-value server on gsocket's blocking socket API.

    python examples/resp_server.py --host 127.0.0.1 --port 6380
    redis-cli -p 6380 set greeting hello        # or redis-benchmark, redis-py ...

Strings, keys with expiry, lists, MULTI/EXEC/WATCH, 16 databases, and the
handshake commands real clients send (HELLO 2, CLIENT SETNAME, CONFIG GET,
COMMAND); replies and error texts are Redis 7.0's, in RESP2, or RESP3
after ``HELLO 3`` (redis-py 8's default). Data lives in memory
only. The protocol and the commands are sans-I/O modules next to this file
(``resp_protocol``, ``resp_commands`` ...); this one does the I/O: one
greenlet per connection reads what arrived, runs every whole command in it
(pipelining) and writes all the replies in one go. A protocol error is
answered with ``-ERR Protocol error: ...`` and the connection is closed.

A client that sends faster than it reads its replies is not read from while
more than 1 MiB of replies wait for it (gsocket's SOCKET_WARNING), so memory
stays bounded. Stops cleanly on SIGTERM or SIGINT.

Where it differs from Redis 7.0: memory only (no RDB/AOF, no replication,
no pub/sub, no other data types or commands than those listed); a single
``default`` user without password (AUTH and HELLO AUTH accept it with any
password, as Redis' ``nopass`` default user does); KEYS lists keys in
insertion order and DBSIZE never counts keys that already expired; at most
1 Mi arguments per command (``--max-array-length``) and a command over
``--max-command-length`` bytes gets ``-ERR Protocol error: too big command``
before the close (Redis closes such a client silently); INFO has fewer
fields. Everything else a client can see is meant to be Redis' own, and the
tests compare it with a real redis-server byte for byte.
"""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Dict, Optional

import gevent

from gsocket import skynet
from gsocket import socket
from resp_commands import RespService
from resp_protocol import (
    DEFAULT_MAX_ARRAY_LENGTH, DEFAULT_MAX_BULK_LENGTH, DEFAULT_MAX_COMMAND_LENGTH, ProtocolError,
)

__all__ = ["RespServer", "main"]

logger = logging.getLogger("resp_server")

#: Replies gathered before they are written mid-batch (then backpressure is checked).
FLUSH_BYTES = 256 * 1024
#: Seconds between two rounds of active expiry.
EXPIRE_INTERVAL = 0.1


class _Backpressure:
    """Tracks one connection's unsent replies through gsocket's warnings:
    congested from the first warning (1 MiB pending) until the queue drains."""

    __slots__ = ("connection_id", "congested", "waiting")

    def __init__(self, connection_id: int) -> None:
        self.connection_id = connection_id
        self.congested = False
        self.waiting = False
        socket.warning(connection_id, self.on_warning)
        socket.onclose(connection_id, self.on_close)

    def on_warning(self, connection_id: int, kib: int) -> None:
        self.congested = kib > 0
        if not self.congested:
            self._wake()

    def on_close(self, connection_id: int) -> None:
        self.congested = False
        self._wake()

    def _wake(self) -> None:
        if self.waiting:
            skynet.wakeup(self)

    def wait(self) -> None:
        """Block the calling greenlet while the peer has too much to read."""
        skynet.sleep(0)                     # let pending warnings be delivered
        while self.congested:
            self.waiting = True
            try:
                skynet.wait(self)
            finally:
                self.waiting = False


class RespServer:
    """Serves a :class:`RespService` on one listening socket."""

    def __init__(self, service: Optional[RespService] = None) -> None:
        self.service = service if service is not None else RespService()
        self.listen_id: Optional[int] = None
        self.address = ("", 0)
        self._connections: Dict[int, gevent.Greenlet] = {}
        self._expiry: Optional[gevent.Greenlet] = None

    def start(self, host: str = "127.0.0.1", port: int = 0, backlog: int = 511) -> int:
        """Listen and start accepting; returns the listen id once listening."""
        listen_id = socket.listen(host, port, backlog)
        address = socket.address(listen_id)
        assert address is not None
        self.address = address
        self.service.context.host, self.service.context.port = address[0], address[1]
        self.listen_id = listen_id
        socket.start(listen_id, self._accept)
        self._expiry = skynet.fork(self._expire_loop)
        return listen_id

    def stop(self) -> None:
        """Stop listening, close every connection and wait for its greenlet."""
        if self.listen_id is not None:
            socket.close(self.listen_id)
            self.listen_id = None
        if self._expiry is not None:
            self._expiry.kill()
            self._expiry = None
        for connection_id in list(self._connections):
            socket.close(connection_id)
        gevent.joinall(list(self._connections.values()), timeout=5)

    def _accept(self, connection_id: int, peer: str) -> None:
        self._connections[connection_id] = skynet.fork(self._serve, connection_id, peer)

    def _expire_loop(self) -> None:
        while True:
            skynet.sleep(EXPIRE_INTERVAL)
            self.service.expire_due()

    def _serve(self, connection_id: int, peer: str) -> None:
        service = self.service
        socket.start(connection_id)
        socket.nodelay(connection_id)
        client = service.connect(peer, "%s:%d" % self.address)
        parser = service.parser()
        backpressure = _Backpressure(connection_id)
        read, write, execute = socket.read, socket.write, service.execute
        try:
            while not client.close_after_reply:
                data = read(connection_id)
                if data is None:
                    break
                parser.feed(data)
                replies = []
                size = 0
                try:
                    for command in parser:
                        reply = execute(client, command)
                        replies.append(reply)
                        if client.close_after_reply:
                            break
                        size += len(reply)
                        if size >= FLUSH_BYTES:
                            write(connection_id, replies)
                            replies, size = [], 0
                            backpressure.wait()
                except ProtocolError as exc:
                    logger.info("protocol error from %s: %s", peer, exc.message)
                    replies.append(exc.reply)
                    client.close_after_reply = True
                if client.abort_connection:
                    socket.shutdown(connection_id)      # drop what is still queued, too
                    break
                if replies:
                    write(connection_id, replies)
                if backpressure.congested:
                    backpressure.wait()
        finally:
            service.disconnect(client)
            socket.close(connection_id)
            self._connections.pop(connection_id, None)


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6380)
    parser.add_argument("--backlog", type=int, default=511)
    parser.add_argument("--databases", type=int, default=16)
    parser.add_argument("--max-bulk-length", type=int, default=DEFAULT_MAX_BULK_LENGTH,
                        help="largest argument in bytes (Redis' proto-max-bulk-len)")
    parser.add_argument("--max-array-length", type=int, default=DEFAULT_MAX_ARRAY_LENGTH,
                        help="most arguments in one command")
    parser.add_argument("--max-command-length", type=int, default=DEFAULT_MAX_COMMAND_LENGTH,
                        help="most argument bytes in one command (Redis' client-query-buffer-limit)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    server = RespServer(RespService(
        databases=args.databases, max_bulk_length=args.max_bulk_length,
        max_array_length=args.max_array_length, max_command_length=args.max_command_length))

    def serve() -> None:
        server.start(args.host, args.port, args.backlog)
        logger.info("resp_server listening on %s:%d", *server.address)

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, skynet.exit)
    skynet.start(serve)
    logger.info("resp_server stopped")


if __name__ == "__main__":
    main()
