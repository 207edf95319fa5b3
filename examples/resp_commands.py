"""The command engine of the RESP example server, sans-I/O.

``RespService`` holds the keyspace and the command table; a server makes
one ``Client`` per connection (``connect``), feeds the connection's bytes to
that client's ``parser()`` and hands each command to ``execute``, which
returns the encoded reply. ``client.close_after_reply`` tells the server to
close once the reply is sent (QUIT); ``client.abort_connection`` to close at
once without sending the replies still unsent (what Redis does when a
request looks like HTTP: a cross-protocol attack). Nothing here blocks
or touches a socket, so every reply can be checked without one.

Dispatch follows Redis 7.0's ``processCommand``: an unknown command or
subcommand, or a wrong number of arguments, is refused before anything runs
(and, inside MULTI, makes EXEC abort); between MULTI and EXEC everything but
EXEC, DISCARD, MULTI, WATCH, QUIT and RESET is queued.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, List, Optional

import resp_data_commands
import resp_server_commands
from resp_command_table import Client, CommandTable, Context, arity_error, null_array
from resp_keyspace import Keyspace
from resp_protocol import (
    DEFAULT_MAX_ARRAY_LENGTH, DEFAULT_MAX_BULK_LENGTH, DEFAULT_MAX_COMMAND_LENGTH, OK,
    QUEUED, ProtocolError, RespParser, array_reply, error_reply,
)

__all__ = ["RespService", "Client", "unknown_command_error"]

logger = logging.getLogger("resp_server")

#: Commands that run at once between MULTI and EXEC instead of being queued.
_NOT_QUEUED = frozenset({"exec", "discard", "multi", "watch", "quit", "reset"})
#: What an HTTP request looks like to a Redis server (Redis' securityWarningCommand).
_HTTP_COMMANDS = frozenset({b"post", b"host:"})


def _c_string(arg: bytes) -> bytes:
    """``arg`` up to its first NUL, as C's ``%s`` prints it."""
    nul = arg.find(b"\0")
    return arg if nul < 0 else arg[:nul]


def unknown_command_error(table: CommandTable, args: List[bytes]) -> bytes:
    """Redis 7's reply to a command (or subcommand) it does not know."""
    if len(args) > 1 and table.is_container(args[0]):
        return error_reply(b"unknown subcommand '%s'. Try %s HELP."
                           % (_c_string(args[1])[:128], _c_string(args[0]).upper()))
    quoted = b""
    for arg in args[1:]:
        if len(quoted) >= 128:
            break
        quoted += b"'" + _c_string(arg)[:128 - len(quoted)] + b"' "
    return error_reply(b"unknown command '%s', with args beginning with: %s"
                       % (_c_string(args[0])[:128], quoted))


class RespService:
    """A Redis-compatible command engine: the keyspace, the command table,
    the clients. One per server."""

    def __init__(self, *, databases: int = 16, clock: Callable[[], float] = time.time,
                 max_bulk_length: int = DEFAULT_MAX_BULK_LENGTH,
                 max_array_length: int = DEFAULT_MAX_ARRAY_LENGTH,
                 max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        table = CommandTable()
        resp_data_commands.register(table)
        resp_server_commands.register(table)
        self._register_transactions(table)
        self.table = table
        self.keyspace = Keyspace(databases, clock)
        self.context = Context(self.keyspace, table, max_bulk_length=max_bulk_length,
                               max_array_length=max_array_length,
                               max_command_length=max_command_length, host=host, port=port)

    # ------------------------------------------------------------------ clients

    def connect(self, address: str = "", local_address: str = "") -> Client:
        """A new client (one per connection); ``disconnect`` it at the end."""
        return self.context.new_client(address, local_address)

    def disconnect(self, client: Client) -> None:
        """Forget a client whose connection closed."""
        self.context.drop_client(client)

    def parser(self) -> RespParser:
        """A request parser with this server's limits."""
        context = self.context
        return RespParser(max_bulk_length=context.max_bulk_length,
                          max_array_length=context.max_array_length,
                          max_command_length=context.max_command_length)

    # ------------------------------------------------------------------ commands

    def execute(self, client: Client, args: List[bytes]) -> bytes:
        """Run one command for ``client``; its encoded reply (b"" when the
        connection is to be closed without one). Never raises for any input."""
        context = self.context
        context.commands_processed += 1
        spec = self.table.lookup(args)
        if spec is None:
            if args[0].lower() in _HTTP_COMMANDS:
                logger.warning("possible cross protocol scripting attack from %s "
                               "(an HTTP request); connection closed", client.address or "?")
                client.close_after_reply = client.abort_connection = True
                return b""
            return self._refuse(client, unknown_command_error(self.table, args))
        if not spec.arity_ok(len(args)):
            return self._refuse(client, arity_error(spec.name))
        client.last_command = spec.name.encode()
        if client.multi is not None and spec.name.split("|")[0] not in _NOT_QUEUED:
            client.multi.append(args)
            return QUEUED
        handler = spec.handler
        assert handler is not None     # containers have arity -2 and subcommands
        try:
            return handler(context, client, args)
        except Exception:              # a bug here must not take the connection down
            logger.exception("command %r failed", spec.name)
            return error_reply(f"internal error in '{spec.name}'")

    @staticmethod
    def _refuse(client: Client, reply: bytes) -> bytes:
        if client.multi is not None:
            client.multi_error = True
        return reply

    # ------------------------------------------------------------------ MULTI / EXEC / WATCH

    def _register_transactions(self, table: CommandTable) -> None:
        flags = ("noscript", "loading", "stale", "fast", "allow_busy")
        group = "transactions"
        table.add("multi", 1, flags, group=group, since="1.2.0",
                  summary="Mark the start of a transaction block")(self._multi)
        table.add("exec", 1, ("noscript", "loading", "stale", "skip_slowlog"), group=group,
                  since="1.2.0", summary="Execute all commands issued after MULTI")(self._exec)
        table.add("discard", 1, flags, group=group, since="2.0.0",
                  summary="Discard all commands issued after MULTI")(self._discard)
        table.add("watch", -2, flags, (1, -1, 1), group=group, since="2.2.0",
                  summary="Watch the given keys to determine execution of the MULTI/EXEC block")(self._watch)
        table.add("unwatch", 1, flags, group=group, since="2.2.0",
                  summary="Forget about all watched keys")(self._unwatch)

    def _multi(self, context: Context, client: Client, args: List[bytes]) -> bytes:
        if client.multi is not None:
            return error_reply("MULTI calls can not be nested")
        client.multi = []
        client.multi_error = False
        return OK

    def _end_transaction(self, client: Client) -> None:
        client.multi = None
        client.multi_error = False
        self.keyspace.unwatch(client.watcher)

    def _exec(self, context: Context, client: Client, args: List[bytes]) -> bytes:
        queued = client.multi
        if queued is None:
            return error_reply("EXEC without MULTI")
        if client.multi_error:
            self._end_transaction(client)
            return error_reply("-EXECABORT Transaction discarded because of previous errors.")
        for db, key in list(client.watcher.watched):
            self.keyspace.lookup(db, key)      # a watched key that expired is a change
        if client.watcher.dirty:
            self._end_transaction(client)
            return null_array(client)
        self._end_transaction(client)
        replies: List[bytes] = []
        for command in queued:
            reply = self.execute(client, command)
            replies.append(reply)
        return array_reply(replies)

    def _discard(self, context: Context, client: Client, args: List[bytes]) -> bytes:
        if client.multi is None:
            return error_reply("DISCARD without MULTI")
        self._end_transaction(client)
        return OK

    def _watch(self, context: Context, client: Client, args: List[bytes]) -> bytes:
        if client.multi is not None:
            return error_reply("WATCH inside MULTI is not allowed")
        for key in args[1:]:
            self.keyspace.lookup(client.db, key)   # drop it now if it already expired
            self.keyspace.watch(client.watcher, client.db, key)
        return OK

    def _unwatch(self, context: Context, client: Client, args: List[bytes]) -> bytes:
        self.keyspace.unwatch(client.watcher)
        return OK

    def expire_due(self, limit: int = 10_000) -> int:
        """Remove up to ``limit`` keys whose time has come; how many went."""
        return self.keyspace.expire_due(limit)


def execute_all(service: RespService, client: Client, data: bytes,
                parser: Optional[RespParser] = None) -> bytes:
    """Feed ``data`` to a parser and run every whole command in it; the
    replies, then the protocol error line if the input went bad. For tests
    and tools: one call per connection's worth of bytes."""
    parser = parser if parser is not None else service.parser()
    parser.feed(data)
    replies = []
    try:
        for command in parser:
            replies.append(service.execute(client, command))
            if client.close_after_reply:
                break
    except ProtocolError as exc:
        replies.append(exc.reply)
    return b"" if client.abort_connection else b"".join(replies)
