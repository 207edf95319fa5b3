"""Connection and server commands of the RESP example server, sans-I/O:
PING, ECHO, SELECT, QUIT, AUTH, RESET, DBSIZE, FLUSHDB, FLUSHALL, INFO and
as much of CONFIG GET, COMMAND, CLIENT and HELLO as real clients use when
they start (redis-cli, redis-benchmark, redis-py). Replies follow Redis 7.0
(``server.c``, ``networking.c``, ``config.c``, ``db.c``). After ``HELLO 3``
a client gets RESP3 replies: nulls are ``_``, HELLO / CONFIG GET / COMMAND
DOCS answer maps and INFO / CLIENT LIST verbatim strings, as Redis does.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from typing import Dict, List, Optional

from resp_command_table import (
    NOT_INTEGER, REDIS_VERSION, SYNTAX_ERROR, Client, CommandSpec, CommandTable, Context,
    arity_error, integer_arg, null_bulk,
)
from resp_keyspace import glob_match
from resp_protocol import (
    OK, PONG, array_reply, bulk_reply, error_reply, integer_reply, map_reply, simple_string,
    verbatim_reply,
)

__all__ = ["register", "config_values", "info_text"]

_BAD_NAME = error_reply("Client names cannot contain spaces, newlines or special characters.")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def register(table: CommandTable) -> None:
    """Add the connection and server commands to ``table``."""
    connection, server = "connection", "server"
    add = table.add
    add("ping", -1, ("fast",), group=connection, summary="Ping the server")(ping_command)
    add("echo", 2, ("loading", "stale", "fast"), group=connection,
        summary="Echo the given string")(echo_command)
    add("select", 2, ("loading", "stale", "fast"), group=connection,
        summary="Change the selected database for the current connection")(select_command)
    add("quit", -1, ("noscript", "loading", "stale", "fast", "no_auth", "allow_busy"), group=connection,
        summary="Close the connection")(quit_command)
    add("auth", -2, ("noscript", "loading", "stale", "fast", "no_auth", "allow_busy"), group=connection,
        summary="Authenticate to the server")(auth_command)
    add("hello", -1, ("noscript", "loading", "stale", "fast", "no_auth", "allow_busy"), group=connection,
        since="6.0.0", summary="Handshake with Redis")(hello_command)
    add("reset", 1, ("noscript", "loading", "stale", "fast", "no_auth", "allow_busy"), group=connection,
        since="6.2.0", summary="Reset the connection")(reset_command)
    add("dbsize", 1, ("readonly", "fast"), group=server,
        summary="Return the number of keys in the selected database")(dbsize_command)
    add("flushdb", -1, ("write",), group=server,
        summary="Remove all keys from the current database")(flush_command)
    add("flushall", -1, ("write",), group=server,
        summary="Remove all keys from all databases")(flush_command)
    add("info", -1, ("loading", "stale"), group=server,
        summary="Get information and statistics about the server")(info_command)

    table.container("config", group=server, since="2.0.0",
                    summary="A container for server configuration commands")
    add("get", -3, ("admin", "noscript", "loading", "stale"), group=server, since="2.0.0", parent="config",
        summary="Get the values of configuration parameters")(config_get_command)
    add("help", 2, ("loading", "stale"), group=server, since="5.0.0", parent="config",
        summary="Show helpful text about the different subcommands")(help_command)

    add("command", -1, ("loading", "stale"), group=server, since="2.8.13",
        summary="Get array of Redis command details")(command_command)
    for name, arity, summary in (
            ("count", 2, "Get total number of Redis commands"),
            ("info", -2, "Get array of specific Redis command details, or all when no argument is given"),
            ("docs", -2, "Get array of specific Redis command documentation"),
            ("list", -2, "Get an array of Redis command names"),
            ("help", 2, "Show helpful text about the different subcommands")):
        add(name, arity, ("loading", "stale"), group=server, parent="command", summary=summary,
            since="2.8.13")(command_command)

    table.container("client", group=connection, since="2.4.0",
                    summary="A container for client connection commands")
    for name, arity, summary in (
            ("id", 2, "Returns the client ID for the current connection"),
            ("getname", 2, "Get the current connection name"),
            ("setname", 3, "Set the current connection name"),
            ("list", -2, "Get the list of client connections"),
            ("info", 2, "Returns information about the current client connection."),
            ("help", 2, "Show helpful text about the different subcommands")):
        add(name, arity, ("noscript", "loading", "stale"), group=connection, parent="client",
            since="2.4.0", summary=summary)(client_command)


# ---------------------------------------------------------------------- connection

def ping_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    if len(args) > 2:
        return arity_error("ping")
    return PONG if len(args) == 1 else bulk_reply(args[1])


def echo_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    return bulk_reply(args[1])


def select_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    index = integer_arg(args[1])
    if index is None:
        return NOT_INTEGER
    if not _INT_MIN <= index <= _INT_MAX:       # Redis' getIntFromObjectOrReply
        return error_reply(f"value is out of range, value must between {_INT_MIN} and {_INT_MAX}")
    if not 0 <= index < ctx.keyspace.databases:
        return error_reply("DB index is out of range")
    client.db = index
    return OK


def quit_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    client.close_after_reply = True
    return OK


def _authenticate(user: bytes) -> Optional[bytes]:
    """The error for AUTH user pass, None when it succeeds: the only user is
    ``default`` and it has no password, so any password works (Redis'
    ``nopass`` default user)."""
    if user != b"default":
        return error_reply("-WRONGPASS invalid username-password pair or user is disabled.")
    return None


def auth_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    if len(args) > 3:
        return SYNTAX_ERROR
    if len(args) == 2:
        return error_reply("AUTH <password> called without any password configured for the "
                           "default user. Are you sure your configuration is correct?")
    return _authenticate(args[1]) or OK


def _valid_name(name: bytes) -> bool:
    return all(0x21 <= byte <= 0x7E for byte in name)


def hello_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """HELLO [2 [AUTH user pass] [SETNAME name]]: the server's facts."""
    index = 1
    if len(args) >= 2:
        version = integer_arg(args[1])
        if version is None:
            return error_reply("Protocol version is not an integer or out of range")
        if version not in (2, 3):
            return error_reply("-NOPROTO unsupported protocol version")
        index = 2
    name: Optional[bytes] = None
    while index < len(args):
        option = args[index].upper()
        more = len(args) - 1 - index
        if option == b"AUTH" and more >= 2:
            failure = _authenticate(args[index + 1])
            if failure:
                return failure
            index += 3
        elif option == b"SETNAME" and more >= 1:
            if not _valid_name(args[index + 1]):
                return _BAD_NAME
            name = args[index + 1]
            index += 2
        else:
            return error_reply(b"Syntax error in HELLO option '%s'" % args[index].split(b"\0")[0])
    if name is not None:
        client.name = name
    if len(args) >= 2:
        client.resp = int(args[1])
    return map_reply([
        bulk_reply(b"server"), bulk_reply(b"redis"),
        bulk_reply(b"version"), bulk_reply(REDIS_VERSION.encode()),
        bulk_reply(b"proto"), integer_reply(client.resp),
        bulk_reply(b"id"), integer_reply(client.id),
        bulk_reply(b"mode"), bulk_reply(b"standalone"),
        bulk_reply(b"role"), bulk_reply(b"master"),
        bulk_reply(b"modules"), array_reply([]),
    ], client.resp)


def reset_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    ctx.keyspace.unwatch(client.watcher)
    client.multi = None
    client.multi_error = False
    client.db = 0
    client.name = b""
    client.resp = 2
    return simple_string("RESET")


# ---------------------------------------------------------------------- server

def dbsize_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    return integer_reply(ctx.keyspace.size(client.db))


def flush_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """FLUSHDB / FLUSHALL [ASYNC|SYNC] (both run at once here)."""
    if len(args) > 2 or (len(args) == 2 and args[1].upper() not in (b"SYNC", b"ASYNC")):
        return SYNTAX_ERROR
    ctx.keyspace.flush(client.db if args[0].lower() == b"flushdb" else None)
    return OK


def info_text(ctx: Context, sections: List[bytes]) -> bytes:
    """The INFO text for ``sections`` (none, ``default``, ``all`` or
    ``everything``: all of them); unknown sections are left out."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    now = time.time()
    keyspace = ctx.keyspace
    rss_kib = usage.ru_maxrss
    try:
        with open("/proc/self/statm", "rb") as statm:
            rss_kib = int(statm.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        pass
    facts: Dict[str, List[str]] = {
        "server": [
            f"redis_version:{REDIS_VERSION}", "redis_mode:standalone",
            f"os:{platform.system()} {platform.release()} {platform.machine()}",
            f"arch_bits:{64 if sys.maxsize > 2**32 else 32}", "multiplexing_api:libev (gevent)",
            f"python_version:{platform.python_version()}", f"process_id:{os.getpid()}",
            f"tcp_port:{ctx.port}", f"uptime_in_seconds:{int(now - ctx.started)}",
            f"uptime_in_days:{int(now - ctx.started) // 86400}", "executable:gsocket examples/resp_server.py",
        ],
        "clients": [f"connected_clients:{len(ctx.clients)}", "blocked_clients:0"],
        "memory": [f"used_memory:{rss_kib * 1024}", f"used_memory_rss:{rss_kib * 1024}",
                   f"used_memory_peak:{usage.ru_maxrss * 1024}",
                   "maxmemory:0", "maxmemory_policy:noeviction"],
        "persistence": ["loading:0", "rdb_changes_since_last_save:0", "aof_enabled:0"],
        "stats": [f"total_connections_received:{ctx.connections_received}",
                  f"total_commands_processed:{ctx.commands_processed}"],
        "replication": ["role:master", "connected_slaves:0"],
        "cpu": [f"used_cpu_sys:{usage.ru_stime:.6f}", f"used_cpu_user:{usage.ru_utime:.6f}"],
        "keyspace": [
            f"db{index}:keys={len(data)},expires={keyspace.expiring(index)},avg_ttl=0"
            for index, data in enumerate(keyspace.data) if data],
    }
    wanted = {section.decode("latin-1").lower() for section in sections}
    if not wanted or wanted & {"default", "all", "everything"}:
        wanted = set(facts)
    parts = [f"# {name.capitalize()}\r\n" + "".join(line + "\r\n" for line in lines)
             for name, lines in facts.items() if name in wanted]
    return "\r\n".join(parts).encode()


def info_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    ctx.keyspace.expire_due()
    return verbatim_reply(info_text(ctx, args[1:]), client.resp)


def config_values(ctx: Context) -> Dict[str, str]:
    """The parameters CONFIG GET reports, with their values."""
    return {
        "bind": ctx.host, "port": str(ctx.port), "databases": str(ctx.keyspace.databases),
        "save": "", "appendonly": "no", "maxmemory": "0", "maxclients": "10000", "timeout": "0",
        "proto-max-bulk-len": str(ctx.max_bulk_length),
        "client-query-buffer-limit": str(ctx.max_command_length),
    }


def config_get_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    values = config_values(ctx)
    found: Dict[str, str] = {}
    for pattern in args[2:]:
        for name, value in values.items():
            if glob_match(pattern, name.encode(), nocase=True):
                found[name] = value
    return map_reply([bulk_reply(text.encode()) for pair in found.items() for text in pair], client.resp)


_HELP = {
    "config": ["GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values."],
    "command": ["(no subcommand)", "    Return details about all Redis commands.",
                "COUNT", "    Return the total number of commands in this Redis server.",
                "LIST", "    Return a list of all commands in this Redis server.",
                "INFO [<command-name> ...]", "    Return details about multiple Redis commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple Redis commands."],
    "client": ["ID", "    Return the ID of the current connection.",
               "GETNAME", "    Return the name of the current connection.",
               "SETNAME <name>", "    Assign the name <name> to the current connection.",
               "LIST", "    Return information about client connections.",
               "INFO", "    Return information about the current client connection."],
}


def help_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """CONFIG / COMMAND / CLIENT HELP."""
    name = args[0].decode("latin-1").upper()
    lines = [f"{name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
             *_HELP[name.lower()], "HELP", "    Print this help."]
    return array_reply([simple_string(line) for line in lines])


def _categories(spec: CommandSpec) -> List[bytes]:
    categories = []
    if "write" in spec.flags:
        categories.append(b"@write")
    elif "readonly" in spec.flags:
        categories.append(b"@read")
    if spec.group in ("string", "list", "generic"):
        categories.append(b"@keyspace" if spec.group == "generic" else b"@" + spec.group.encode())
    categories.append(b"@fast" if "fast" in spec.flags else b"@slow")
    if spec.group == "connection":
        categories.append(b"@connection")
    return categories


def command_info(spec: CommandSpec) -> bytes:
    """COMMAND INFO's entry for one command (subcommands nested)."""
    return array_reply([
        bulk_reply(spec.name.encode()), integer_reply(spec.arity),
        array_reply([simple_string(flag) for flag in spec.flags]),
        integer_reply(spec.first_key), integer_reply(spec.last_key), integer_reply(spec.step),
        array_reply([simple_string(category) for category in _categories(spec)]),
        array_reply([]), array_reply([]),
        array_reply([command_info(sub) for sub in spec.subcommands.values()]),
    ])


def _command_docs(spec: CommandSpec, resp: int) -> bytes:
    fields = [bulk_reply(b"summary"), bulk_reply(spec.summary.encode()),
              bulk_reply(b"since"), bulk_reply(spec.since.encode()),
              bulk_reply(b"group"), bulk_reply(spec.group.encode())]
    if spec.subcommands:
        fields += [bulk_reply(b"subcommands"), map_reply(
            [part for sub in spec.subcommands.values()
             for part in (bulk_reply(sub.name.encode()), _command_docs(sub, resp))], resp)]
    return map_reply(fields, resp)


def command_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """COMMAND [COUNT | LIST | INFO names... | DOCS names... | HELP]."""
    table = ctx.table
    if len(args) == 1:
        return array_reply([command_info(spec) for spec in table])
    sub = args[1].lower()
    if sub == b"count":
        return integer_reply(len(table))
    if sub == b"help":
        return help_command(ctx, client, args)
    if sub == b"list":
        if len(args) > 2:
            return SYNTAX_ERROR
        return array_reply([bulk_reply(spec.name.encode()) for spec in table])
    names = [arg.decode("latin-1").lower() for arg in args[2:]]
    specs = list(table) if not names else [table.commands.get(name) for name in names]
    if sub == b"info":
        return array_reply([null_bulk(client) if spec is None else command_info(spec) for spec in specs])
    return map_reply([part for spec in specs if spec is not None            # docs
                      for part in (bulk_reply(spec.name.encode()), _command_docs(spec, client.resp))],
                     client.resp)


def client_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """CLIENT ID | GETNAME | SETNAME name | LIST | INFO | HELP."""
    sub = args[1].lower()
    if sub == b"id":
        return integer_reply(client.id)
    if sub == b"getname":
        return bulk_reply(client.name) if client.name else null_bulk(client)
    if sub == b"setname":
        if not _valid_name(args[2]):
            return _BAD_NAME
        client.name = args[2]
        return OK
    if sub == b"list":
        if len(args) > 2:
            return SYNTAX_ERROR
        return verbatim_reply(b"".join(other.info_line() + b"\n" for other in ctx.clients.values()),
                              client.resp)
    if sub == b"info":
        return verbatim_reply(client.info_line() + b"\n", client.resp)
    return help_command(ctx, client, args)
