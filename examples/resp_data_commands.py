"""The data commands of the RESP example server, sans-I/O: strings (GET,
SET, INCR ...), keys (DEL, EXISTS, KEYS, TYPE), expiry (EXPIRE, TTL ...) and
a few list commands (so that WRONGTYPE means something). Replies and error
texts follow Redis 7.0 (``t_string.c``, ``db.c``, ``expire.c``, ``t_list.c``),
including the order in which arguments are checked.
"""

from __future__ import annotations

from collections import deque
from typing import List, Optional

from resp_command_table import (
    LLONG_MAX, LLONG_MIN, NOT_INTEGER, SYNTAX_ERROR, WRONGTYPE, Client, CommandTable, Context,
    arity_error, expire_time_error, integer_arg, null_array, null_bulk,
)
from resp_keyspace import glob_match, type_name
from resp_protocol import (
    EMPTY_ARRAY, OK, array_reply, bulk_reply, error_reply, integer_reply,
    parse_integer, simple_string,
)

__all__ = ["register"]

_NOT_POSITIVE = error_reply("value is out of range, must be positive")
_OVERFLOW = error_reply("increment or decrement would overflow")
_SECONDS_MAX = LLONG_MAX // 1000
_SECONDS_MIN = -(-LLONG_MIN // 1000)      # C division truncates toward zero


def register(table: CommandTable) -> None:
    """Add the data commands to ``table``."""
    string, generic, lists = "string", "generic", "list"
    table.add("get", 2, ("readonly", "fast"), (1, 1, 1), group=string,
              summary="Get the value of a key")(get_command)
    table.add("set", -3, ("write", "denyoom"), (1, 1, 1), group=string,
              summary="Set the string value of a key")(set_command)
    table.add("mget", -2, ("readonly", "fast"), (1, -1, 1), group=string,
              summary="Get the values of all the given keys")(mget_command)
    table.add("mset", -3, ("write", "denyoom"), (1, -1, 2), group=string, since="1.0.1",
              summary="Set multiple keys to multiple values")(mset_command)
    for name, summary in (("incr", "Increment the integer value of a key by one"),
                          ("decr", "Decrement the integer value of a key by one")):
        table.add(name, 2, ("write", "denyoom", "fast"), (1, 1, 1), group=string,
                  summary=summary)(incr_command)
    for name, summary in (("incrby", "Increment the integer value of a key by the given amount"),
                          ("decrby", "Decrement the integer value of a key by the given number")):
        table.add(name, 3, ("write", "denyoom", "fast"), (1, 1, 1), group=string,
                  summary=summary)(incrby_command)
    table.add("del", -2, ("write",), (1, -1, 1), group=generic,
              summary="Delete a key")(del_command)
    table.add("exists", -2, ("readonly", "fast"), (1, -1, 1), group=generic,
              summary="Determine if a key exists")(exists_command)
    table.add("type", 2, ("readonly", "fast"), (1, 1, 1), group=generic,
              summary="Determine the type stored at key")(type_command)
    table.add("keys", 2, ("readonly",), group=generic,
              summary="Find all keys matching the given pattern")(keys_command)
    table.add("expire", -3, ("write", "fast"), (1, 1, 1), group=generic,
              summary="Set a key's time to live in seconds")(expire_command)
    table.add("pexpire", -3, ("write", "fast"), (1, 1, 1), group=generic, since="2.6.0",
              summary="Set a key's time to live in milliseconds")(expire_command)
    table.add("ttl", 2, ("readonly", "fast"), (1, 1, 1), group=generic,
              summary="Get the time to live for a key in seconds")(ttl_command)
    table.add("pttl", 2, ("readonly", "fast"), (1, 1, 1), group=generic, since="2.6.0",
              summary="Get the time to live for a key in milliseconds")(ttl_command)
    table.add("persist", 2, ("write", "fast"), (1, 1, 1), group=generic, since="2.2.0",
              summary="Remove the expiration from a key")(persist_command)
    table.add("lpush", -3, ("write", "denyoom", "fast"), (1, 1, 1), group=lists,
              summary="Prepend one or multiple elements to a list")(push_command)
    table.add("rpush", -3, ("write", "denyoom", "fast"), (1, 1, 1), group=lists,
              summary="Append one or multiple elements to a list")(push_command)
    table.add("lpop", -2, ("write", "fast"), (1, 1, 1), group=lists,
              summary="Remove and get the first elements in a list")(pop_command)
    table.add("rpop", -2, ("write", "fast"), (1, 1, 1), group=lists,
              summary="Remove and get the last elements in a list")(pop_command)
    table.add("llen", 2, ("readonly", "fast"), (1, 1, 1), group=lists,
              summary="Get the length of a list")(llen_command)
    table.add("lrange", 4, ("readonly",), (1, 1, 1), group=lists,
              summary="Get a range of elements from a list")(lrange_command)


# ---------------------------------------------------------------------- strings

def get_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    value = ctx.keyspace.lookup(client.db, args[1])
    if value is None:
        return null_bulk(client)
    if not isinstance(value, bytes):
        return WRONGTYPE
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _option(arg: bytes) -> bytes:
    return arg.upper() if len(arg) <= 7 else b""


def set_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL]."""
    if len(args) == 3:                  # the common case, no options
        ctx.keyspace.set(client.db, args[1], args[2])
        return OK
    nx = xx = get = keep_ttl = False
    unit = ""                           # "EX", "PX", "EXAT" or "PXAT"
    expire_arg = b""
    index = 3
    while index < len(args):
        option = _option(args[index])
        has_next = index + 1 < len(args)
        if option == b"NX" and not xx:
            nx = True
        elif option == b"XX" and not nx:
            xx = True
        elif option == b"GET":
            get = True
        elif option == b"KEEPTTL" and not unit:
            keep_ttl = True
        elif option in (b"EX", b"PX", b"EXAT", b"PXAT") and has_next and not keep_ttl \
                and unit in ("", option.decode()):
            unit = option.decode()
            expire_arg = args[index + 1]
            index += 1
        else:
            return SYNTAX_ERROR
        index += 1
    keyspace, db, key = ctx.keyspace, client.db, args[1]
    when = 0
    if unit:
        when_arg = integer_arg(expire_arg)
        if when_arg is None:
            return NOT_INTEGER
        when = when_arg
        seconds = unit in ("EX", "EXAT")
        if when <= 0 or (seconds and when > _SECONDS_MAX):
            return expire_time_error("set")
        if seconds:
            when *= 1000
        if unit in ("EX", "PX"):
            when += keyspace.now_ms()
        if when > LLONG_MAX:
            return expire_time_error("set")
    old = keyspace.lookup(db, key)
    if get and old is not None and not isinstance(old, bytes):
        return WRONGTYPE
    if (nx and old is not None) or (xx and old is None):
        return (bulk_reply(old) if old is not None else null_bulk(client)) if get else null_bulk(client)
    keyspace.set(db, key, args[2], keep_ttl=keep_ttl)
    if unit:
        keyspace.set_expire(db, key, when)
    return (bulk_reply(old) if old is not None else null_bulk(client)) if get else OK


def mget_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    lookup, db = ctx.keyspace.lookup, client.db
    null = null_bulk(client)
    replies = []
    for key in args[1:]:
        value = lookup(db, key)
        replies.append(bulk_reply(value) if isinstance(value, bytes) else null)
    return array_reply(replies)


def mset_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    if len(args) % 2 == 0:
        return arity_error("mset")
    store, db = ctx.keyspace.set, client.db
    for index in range(1, len(args), 2):
        store(db, args[index], args[index + 1])
    return OK


def _add_to_integer(ctx: Context, client: Client, key: bytes, delta: int) -> bytes:
    keyspace = ctx.keyspace
    value = keyspace.lookup(client.db, key)
    if value is None:
        old = 0
    elif not isinstance(value, bytes):
        return WRONGTYPE
    else:
        parsed = parse_integer(value)
        if parsed is None:
            return NOT_INTEGER
        old = parsed
    new = old + delta
    if new < LLONG_MIN or new > LLONG_MAX:
        return _OVERFLOW
    keyspace.set(client.db, key, b"%d" % new, keep_ttl=True)
    return integer_reply(new)


def incr_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """INCR / DECR key."""
    return _add_to_integer(ctx, client, args[1], -1 if args[0][:1] in b"dD" else 1)


def incrby_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """INCRBY / DECRBY key amount."""
    amount = integer_arg(args[2])
    if amount is None:
        return NOT_INTEGER
    if args[0][:1] in b"dD":
        if amount == LLONG_MIN:
            return error_reply("decrement would overflow")
        amount = -amount
    return _add_to_integer(ctx, client, args[1], amount)


# ---------------------------------------------------------------------- keys

def del_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    delete, db = ctx.keyspace.delete, client.db
    return integer_reply(sum(delete(db, key) for key in args[1:]))


def exists_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    lookup, db = ctx.keyspace.lookup, client.db
    return integer_reply(sum(lookup(db, key) is not None for key in args[1:]))


def type_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    return simple_string(type_name(ctx.keyspace.lookup(client.db, args[1])))


def keys_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    pattern = args[1]
    keys = ctx.keyspace.keys(client.db)
    if pattern != b"*":
        keys = (key for key in keys if glob_match(pattern, key))
    return array_reply([bulk_reply(key) for key in keys])


def expire_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """EXPIRE / PEXPIRE key time [NX|XX|GT|LT]."""
    name = args[0].decode("latin-1").lower()
    options = set()
    for arg in args[3:]:
        option = _option(arg)
        if option not in (b"NX", b"XX", b"GT", b"LT"):
            return error_reply(b"Unsupported option " + arg.split(b"\0")[0])
        options.add(option)
    if b"NX" in options and len(options) > 1:
        return error_reply("NX and XX, GT or LT options at the same time are not compatible")
    if b"GT" in options and b"LT" in options:
        return error_reply("GT and LT options at the same time are not compatible")
    when_arg = integer_arg(args[2])
    if when_arg is None:
        return NOT_INTEGER
    when = when_arg
    if name == "expire":
        if when > _SECONDS_MAX or when < _SECONDS_MIN:
            return expire_time_error(name)
        when *= 1000
    keyspace, db, key = ctx.keyspace, client.db, args[1]
    now = keyspace.now_ms()
    if when > LLONG_MAX - now:
        return expire_time_error(name)
    when += now
    if keyspace.lookup(db, key) is None:
        return integer_reply(0)
    current = keyspace.get_expire(db, key)
    if (b"NX" in options and current != -1) or (b"XX" in options and current == -1) \
            or (b"GT" in options and (current == -1 or when <= current)) \
            or (b"LT" in options and current != -1 and when >= current):
        return integer_reply(0)
    if when <= now:
        keyspace.delete(db, key)
    else:
        keyspace.set_expire(db, key, when)
    return integer_reply(1)


def ttl_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """TTL / PTTL key: -2 no key, -1 no expiry, else the time left."""
    keyspace = ctx.keyspace
    if keyspace.lookup(client.db, args[1]) is None:
        return integer_reply(-2)
    when = keyspace.get_expire(client.db, args[1])
    if when == -1:
        return integer_reply(-1)
    left = max(0, when - keyspace.now_ms())
    return integer_reply(left if args[0][:1] in b"pP" else (left + 500) // 1000)


def persist_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    keyspace = ctx.keyspace
    if keyspace.lookup(client.db, args[1]) is None:
        return integer_reply(0)
    return integer_reply(int(keyspace.persist(client.db, args[1])))


# ---------------------------------------------------------------------- lists

def push_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """LPUSH / RPUSH key element [element ...]; the new length."""
    keyspace, db, key = ctx.keyspace, client.db, args[1]
    value = keyspace.lookup(db, key)
    if value is None:
        value = deque()
    elif isinstance(value, bytes):
        return WRONGTYPE
    if args[0][:1] in b"lL":
        value.extendleft(args[2:])
    else:
        value.extend(args[2:])
    keyspace.set(db, key, value, keep_ttl=True)
    return integer_reply(len(value))


def pop_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    """LPOP / RPOP key [count]."""
    if len(args) > 3:
        return arity_error(args[0].decode("latin-1").lower())
    count: Optional[int] = None
    if len(args) == 3:
        count = integer_arg(args[2], 0)
        if count is None:
            return _NOT_POSITIVE
    keyspace, db, key = ctx.keyspace, client.db, args[1]
    value = keyspace.lookup(db, key)
    if value is None:
        return null_bulk(client) if count is None else null_array(client)
    if isinstance(value, bytes):
        return WRONGTYPE
    if count == 0:
        return EMPTY_ARRAY
    pop = value.popleft if args[0][:1] in b"lL" else value.pop
    if count is None:
        reply = bulk_reply(pop())
    else:
        reply = array_reply([bulk_reply(pop()) for _ in range(min(count, len(value)))])
    if value:
        keyspace.touch(db, key)
    else:
        keyspace.delete(db, key)
    return reply


def llen_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    value = ctx.keyspace.lookup(client.db, args[1])
    if value is None:
        return integer_reply(0)
    if isinstance(value, bytes):
        return WRONGTYPE
    return integer_reply(len(value))


def lrange_command(ctx: Context, client: Client, args: List[bytes]) -> bytes:
    start, end = integer_arg(args[2]), integer_arg(args[3])
    if start is None or end is None:
        return NOT_INTEGER
    value = ctx.keyspace.lookup(client.db, args[1])
    if value is None:
        return EMPTY_ARRAY
    if isinstance(value, bytes):
        return WRONGTYPE
    length = len(value)
    if start < 0:
        start += length
    if end < 0:
        end += length
    start = max(start, 0)
    if start > end or start >= length:
        return EMPTY_ARRAY
    end = min(end, length - 1)
    items = list(value) if start == 0 and end == length - 1 else \
        [value[index] for index in range(start, end + 1)]
    return array_reply([bulk_reply(item) for item in items])
