"""What every command of the RESP example server shares, sans-I/O: the
command table, the per-connection ``Client``, the server-wide ``Context``,
argument parsing helpers and the error replies Redis 7 gives.

A command handler is ``handler(ctx, client, args) -> bytes``: ``args`` are
the request (``args[0]`` the command name as sent), the return value the
encoded reply. Handlers never block and never touch a socket.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from resp_keyspace import Keyspace, Watcher
from resp_protocol import (
    DEFAULT_MAX_ARRAY_LENGTH, DEFAULT_MAX_BULK_LENGTH, DEFAULT_MAX_COMMAND_LENGTH, NULL, NULL_ARRAY,
    NULL_BULK, error_reply, parse_integer,
)

__all__ = [
    "CommandSpec", "CommandTable", "Client", "Context", "Handler",
    "WRONGTYPE", "SYNTAX_ERROR", "NOT_INTEGER", "arity_error", "expire_time_error",
    "integer_arg", "LLONG_MIN", "LLONG_MAX", "REDIS_VERSION", "null_bulk", "null_array",
]

#: The Redis release whose replies and error texts this server follows.
REDIS_VERSION = "7.0.0"

LLONG_MIN = -(2**63)
LLONG_MAX = 2**63 - 1

WRONGTYPE = error_reply("-WRONGTYPE Operation against a key holding the wrong kind of value")
SYNTAX_ERROR = error_reply("syntax error")
NOT_INTEGER = error_reply("value is not an integer or out of range")


@dataclass
class Client:
    """One connection's state: selected database, name, transaction."""

    id: int
    address: str = ""                   # the peer, "host:port"
    local_address: str = ""
    name: bytes = b""
    db: int = 0
    created: float = field(default_factory=time.time)
    last_active: float = field(default_factory=time.time)
    last_command: bytes = b"NULL"
    multi: Optional[List[List[bytes]]] = None   # commands queued since MULTI
    multi_error: bool = False           # a queued command was refused: EXEC aborts
    watcher: Watcher = field(default_factory=Watcher)
    close_after_reply: bool = False     # QUIT: close once the reply is sent
    abort_connection: bool = False      # an HTTP request: close now, replies unsent (as Redis)
    resp: int = 2                       # the protocol version chosen with HELLO

    def info_line(self) -> bytes:
        """The client's line in CLIENT LIST / CLIENT INFO."""
        now = time.time()
        return (b"id=%d addr=%s laddr=%s fd=-1 name=%s age=%d idle=%d flags=%s db=%d "
                b"multi=%d cmd=%s" % (
                    self.id, self.address.encode(), self.local_address.encode(), self.name,
                    now - self.created, now - self.last_active,
                    b"x" if self.multi is not None else b"N", self.db,
                    -1 if self.multi is None else len(self.multi), self.last_command))


Handler = Callable[["Context", Client, List[bytes]], bytes]


@dataclass
class CommandSpec:
    """One command (or subcommand) as COMMAND INFO describes it."""

    name: str                            # lower case; "config|get" for a subcommand
    handler: Optional[Handler]           # None for a container (CONFIG, CLIENT)
    arity: int                           # > 0: exactly; < 0: at least -arity arguments
    flags: Tuple[str, ...] = ()
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    summary: str = ""                    # for COMMAND DOCS (redis-cli's help)
    group: str = ""
    since: str = "1.0.0"
    subcommands: Dict[str, "CommandSpec"] = field(default_factory=dict)

    def arity_ok(self, argc: int) -> bool:
        """Whether ``argc`` arguments (the name included) are allowed."""
        return argc == self.arity if self.arity > 0 else argc >= -self.arity


class CommandTable:
    """Commands by lower-case name; ``add`` registers, ``lookup`` finds."""

    def __init__(self) -> None:
        self.commands: Dict[str, CommandSpec] = {}

    def add(self, name: str, arity: int, flags: Sequence[str] = (), keys: Tuple[int, int, int] = (0, 0, 0),
            *, group: str, summary: str, since: str = "1.0.0",
            parent: Optional[str] = None) -> Callable[[Handler], Handler]:
        """Decorator: register ``handler`` as command ``name`` (a subcommand
        of ``parent`` when given)."""
        def register(handler: Handler) -> Handler:
            full = f"{parent}|{name}" if parent else name
            spec = CommandSpec(full, handler, arity, tuple(flags), *keys,
                               summary=summary, group=group, since=since)
            if parent:
                self.commands[parent].subcommands[name] = spec
            else:
                self.commands[name] = spec
            return handler
        return register

    def container(self, name: str, *, group: str, summary: str, since: str = "1.0.0") -> None:
        """Register ``name`` as a command that only has subcommands."""
        self.commands[name] = CommandSpec(name, None, -2, summary=summary, group=group, since=since)

    def lookup(self, args: Sequence[bytes]) -> Optional[CommandSpec]:
        """The spec for a request: the subcommand of a container when there
        is a second argument, else the command; None when unknown."""
        spec = self.commands.get(args[0].decode("latin-1").lower())
        if spec is not None and spec.subcommands and len(args) > 1:
            return spec.subcommands.get(args[1].decode("latin-1").lower())
        return spec

    def is_container(self, name: bytes) -> bool:
        """Whether ``name`` is a command with subcommands."""
        spec = self.commands.get(name.decode("latin-1").lower())
        return spec is not None and bool(spec.subcommands)

    def __iter__(self):
        return iter(self.commands.values())

    def __len__(self) -> int:
        return len(self.commands)


@dataclass
class Context:
    """Everything the commands of one server share."""

    keyspace: Keyspace
    table: CommandTable
    max_bulk_length: int = DEFAULT_MAX_BULK_LENGTH
    max_array_length: int = DEFAULT_MAX_ARRAY_LENGTH
    max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH
    host: str = "127.0.0.1"
    port: int = 0
    started: float = field(default_factory=time.time)
    clients: Dict[int, Client] = field(default_factory=dict)
    next_client_id: int = 1
    connections_received: int = 0
    commands_processed: int = 0

    def new_client(self, address: str = "", local_address: str = "") -> Client:
        """A Client with a fresh id, registered until ``drop_client``."""
        client = Client(self.next_client_id, address, local_address)
        self.next_client_id += 1
        self.connections_received += 1
        self.clients[client.id] = client
        return client

    def drop_client(self, client: Client) -> None:
        """Forget a client that disconnected (and what it WATCHed)."""
        self.keyspace.unwatch(client.watcher)
        self.clients.pop(client.id, None)


def null_bulk(client: Client) -> bytes:
    """A missing value: ``$-1`` in RESP2, ``_`` in RESP3."""
    return NULL if client.resp == 3 else NULL_BULK


def null_array(client: Client) -> bytes:
    """A missing array: ``*-1`` in RESP2, ``_`` in RESP3."""
    return NULL if client.resp == 3 else NULL_ARRAY


def arity_error(name: str) -> bytes:
    """``-ERR wrong number of arguments for 'NAME' command``."""
    return error_reply(f"wrong number of arguments for '{name}' command")


def expire_time_error(name: str) -> bytes:
    """``-ERR invalid expire time in 'NAME' command``."""
    return error_reply(f"invalid expire time in '{name}' command")


def integer_arg(arg: bytes, low: int = LLONG_MIN, high: int = LLONG_MAX) -> Optional[int]:
    """``arg`` as a Redis integer within [low, high], else None."""
    value = parse_integer(arg)
    if value is None or value < low or value > high:
        return None
    return value
