"""The RESP example side by side with a real redis-server: the same bytes
sent to both must get the same bytes back, replies and error texts alike.

The example runs in this process (leak-checked); redis-server is a child
process. Each exchange ends in QUIT or in a protocol error, after which
both servers close the connection.
"""

from __future__ import annotations

import re
from typing import List, Union

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _resp_support import example_in_this_process, raw_exchange, redis_server_running

@pytest.fixture(scope="module")
def redis_server():
    """A real redis-server for this module."""
    yield from redis_server_running()


@pytest.fixture
def resp_server(driver):
    """The example server in this process (leak-checked by ``driver``)."""
    yield from example_in_this_process()


Command = Union[bytes, List[bytes]]


def request(*commands: Command) -> bytes:
    """Inline commands (bytes) and multibulk ones (lists of arguments)."""
    out = b""
    for command in commands:
        if isinstance(command, bytes):
            out += command + b"\r\n"
        else:
            out += b"*%d\r\n" % len(command) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in command)
    return out


def both(redis_server, resp_server, data: bytes) -> None:
    """Send ``data`` (after FLUSHALL) to both servers; same replies."""
    data = b"FLUSHALL\r\n" + data
    expected = raw_exchange(redis_server.port, data)
    got = raw_exchange(resp_server.address[1], data)
    assert got.split(b"\r\n") == expected.split(b"\r\n")
    assert expected.startswith(b"+OK\r\n")      # the comparison compared something


SCRIPTS = {
    "strings": request(
        b"GET k", b"SET k v", b"GET k", b"SET k v2 GET", b"SET k v3 NX", b"SET k v3 NX GET",
        b"SET new v XX", b"SET new v XX GET", b"SET k v4 XX", b"GET k", b"SET k v nx xx", b"SET k v xx nx",
        b"SET k v EX", b"SET k v EX 0", b"SET k v EX -5", b"SET k v EX x", b"SET k v PX 1.5",
        b"SET k v EX 10 PX 10", b"SET k v KEEPTTL EX 10", b"SET k v EX 10 KEEPTTL",
        b"SET k v EX 9223372036854775",
        b"SET k v PX 9223372036854775807", b"SET k v EX 10 EX 20", b"TTL k", b"SET k v KEEPTTL", b"TTL k",
        b"SET k v", b"TTL k", b"SET k v EXAT 1", b"EXISTS k", b"SET k v PXAT 99999999999999", b"EXISTS k",
        b"SET k v foo", b"SET k", b"SET", b"GET", b"GET a b", [b"SET", b"bin\x00key", b"\x00\xff\r\nvalue"],
        [b"GET", b"bin\x00key"], b"MSET a 1 b 2 c", b"MSET a 1 b 2", b"MGET a b nokey", b"MGET", b"MSET",
        b"GETX k", b"QUIT"),
    "integers": request(
        b"INCR n", b"INCR n", b"DECR n", b"INCRBY n 10", b"DECRBY n 20", b"INCRBY n x", b"INCRBY n 1.5",
        b"INCRBY n 9223372036854775807", b"SET n 9223372036854775807", b"INCR n",
        b"SET n -9223372036854775808", b"DECR n", b"DECRBY n -9223372036854775808", b"INCRBY n -1",
        b"SET n 010", b"INCR n", b"SET n ' 1'", b"INCR n", b"SET n +1", b"INCR n", b"SET n -0", b"INCR n",
        b"SET n 12345678901234567890", b"INCR n", b"SET n 1", b"EXPIRE n 100", b"INCR n", b"TTL n",
        b"INCR", b"INCRBY n", b"DECRBY n 1 2", b"RPUSH l a", b"INCR l", b"QUIT"),
    "keys": request(
        b"SET a 1", b"SET b 2", b"RPUSH l x", b"EXISTS a b l nokey a", b"EXISTS", b"TYPE a", b"TYPE l",
        b"TYPE nokey", b"DEL a nokey a", b"DEL", b"EXISTS a", b"DBSIZE", b"DBSIZE x", b"KEYS l",
        b"KEYS nokey*",
        b"KEYS", b"KEYS [l]", b"KEYS ?x", b"KEYS [^bx]", b"FLUSHDB x", b"FLUSHDB sync x",
        b"FLUSHDB ASYNC", b"DBSIZE",
        b"SET a 1", b"SELECT 1", b"GET a", b"SET a 2", b"SELECT 0", b"GET a", b"FLUSHALL SYNC", b"SELECT 1",
        b"GET a", b"SELECT 16", b"SELECT -1", b"SELECT x", b"SELECT 2147483648", b"SELECT", b"QUIT"),
    "expire": request(
        b"EXPIRE k 100", b"SET k v", b"TTL k", b"PERSIST k", b"EXPIRE k 100", b"TTL k", b"EXPIRE k 100 NX",
        b"EXPIRE k 50 XX", b"TTL k", b"EXPIRE k 40 GT", b"EXPIRE k 60 GT", b"TTL k", b"EXPIRE k 70 LT",
        b"EXPIRE k 30 LT", b"TTL k", b"PERSIST k", b"PERSIST k", b"TTL k", b"EXPIRE k 10 XX",
        b"EXPIRE k 10 GT",
        b"EXPIRE k 10 LT", b"TTL k", b"EXPIRE k 10 NX XX", b"EXPIRE k 10 GT LT", b"EXPIRE k 10 NX GT",
        b"EXPIRE k 10 foo", b"EXPIRE k x", b"EXPIRE k 9223372036854775807", b"EXPIRE k -9223372036854775808",
        b"PEXPIRE k 9223372036854775807", b"PEXPIRE k 100000", b"TTL k", b"EXPIRE k -1", b"EXISTS k",
        b"TTL nokey", b"PTTL nokey", b"SET k v", b"PTTL k", b"PEXPIRE k 0", b"EXISTS k", b"PERSIST nokey",
        b"EXPIRE", b"TTL", b"TTL a b", b"QUIT"),
    "lists": request(
        b"RPUSH l a b c d e", b"LPUSH l z y", b"LLEN l", b"LRANGE l 0 -1", b"LRANGE l 1 2", b"LRANGE l -3 -1",
        b"LRANGE l 5 100", b"LRANGE l 100 200", b"LRANGE l -100 1", b"LRANGE l 3 1", b"LRANGE l x 1",
        b"LRANGE nokey 0 -1", b"LPOP l", b"RPOP l", b"LPOP l 2", b"RPOP l 2", b"LPOP l 0", b"LPOP l -1",
        b"LPOP l x", b"LPOP l 1 2", b"LPOP nokey", b"LPOP nokey 2", b"LPOP nokey 0", b"LLEN l", b"RPOP l 9",
        b"EXISTS l", b"LLEN l", b"SET s v", b"LPUSH s x", b"LPOP s", b"LLEN s", b"LRANGE s 0 1", b"GET s",
        b"RPUSH l2 a", b"GET l2", b"MGET s l2", b"SET l2 v GET", b"LPUSH", b"LRANGE l 0", b"QUIT"),
    "transactions": request(
        b"EXEC", b"DISCARD", b"MULTI", b"SET k 1", b"INCR k", b"GET k", b"RPUSH k x", b"EXEC", b"MULTI",
        b"MULTI", b"WATCH k", b"FOO", b"GET k", b"EXEC", b"MULTI", b"SET a", b"EXEC", b"MULTI", b"INCR k",
        b"DISCARD", b"GET k", b"WATCH k", b"SET k 5", b"MULTI", b"GET k", b"EXEC", b"WATCH k", b"MULTI",
        b"INCR k", b"EXEC", b"WATCH nokey", b"UNWATCH", b"SET nokey 1", b"MULTI", b"GET nokey", b"EXEC",
        b"WATCH", b"MULTI", b"UNWATCH", b"EXEC", b"MULTI", b"QUIT"),
    "connection": request(
        b"PING", b"PING hello", b"PING a b", b"ECHO", b"ECHO hi", b"ECHO a b", [b"ECHO", b"\x00\r\n"],
        b"CLIENT GETNAME", b"CLIENT SETNAME", b"CLIENT SETNAME 'a b'", b"CLIENT SETNAME x\xff",
        b"CLIENT SETNAME app1", b"CLIENT GETNAME", b"CLIENT SETNAME ''", b"CLIENT GETNAME", b"CLIENT",
        b"CLIENT FOO", b"CLIENT SETINFO LIB-NAME x", b"CONFIG", b"CONFIG FOO", b"CONFIG GET",
        b"CONFIG GET save", b"CONFIG GET appendonly", b"CONFIG GET nosuchparameter", b"CONFIG GET databases",
        b"COMMAND FOO", b"HELLO x", b"HELLO 1", b"HELLO 4", b"HELLO 2 foo", b"HELLO 2 SETNAME",
        b"HELLO 2 SETNAME 'a b'", b"HELLO 2 AUTH nobody pw", b"HELLO 2 AUTH default", b"AUTH pw",
        b"AUTH nobody pw", b"AUTH default pw", b"AUTH a b c", b"AUTH", b"INFO nosuchsection",
        b"QUIT"),
    "unknown commands": request(
        b"FOO", b"FOO bar baz", b"foo " + b"x" * 200, b"FOO " + b"a" * 100 + b" " + b"b" * 100 + b" c",
        b"X" * 300 + b" y", [b"FOO", b"a\r\nb", b"a\x00b"], [b"F\x00OO", b"x"], b"GET x y z", b"RESET",
        b"QUIT"),
    "inline quoting": request(
        b'SET "a b" "c\\x41\\n"', b"GET 'a b'", b'ECHO "\\x4g"', b"ECHO 'it\\'s'", b'ECHO ""',
        b"  PING  ", b"", b"\n", b"echo a\tb", b"ECHO a\x0bb", b'EC"HO" x', b"QUIT"),
    "pipelined mixed": request(
        [b"SET", b"k", b"x" * 70000], [b"GET", b"k"], b"PING", [b"MSET"] + [b"k%d" % i for i in range(200)],
        [b"MGET"] + [b"k%d" % i for i in range(0, 200, 2)], b"DBSIZE", b"QUIT"),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_same_replies_as_redis(redis_server, resp_server, name):
    both(redis_server, resp_server, SCRIPTS[name])


PROTOCOL_ERRORS = {
    "invalid multibulk length": b"*x\r\n",
    "multibulk too long": b"*2147483648\r\n",
    "leading zero": b"*01\r\n",
    "plus sign": b"*+1\r\n",
    "invalid bulk length": b"*1\r\n$x\r\n",
    "negative bulk length": b"*1\r\n$-1\r\n",
    "bulk too long": b"*1\r\n$536870913\r\n",
    "expected dollar": b"*1\r\n:1\r\n",
    "expected dollar after an argument": b"*2\r\n$3\r\nGET\r\n+x\r\n",
    "unbalanced double quotes": b'SET "abc\r\n',
    "unbalanced single quotes": b"SET 'abc\r\n",
    "closing quote not followed by a blank": b'SET "a"b c\r\n',
    "commands before the error": b"PING\r\nSET k 1\r\nGET k\r\n*1\r\n$-5\r\n",
    # one byte over 64 KiB, so that both servers have read everything when they close
    "inline too long": b"SET k " + b"x" * (65536 + 1 - 6),
    "mbulk count too long": b"*" + b"1" * 65536,
    "bulk count too long": b"*1\r\n$" + b"1" * 65536,
    "unchecked terminators": b"*1\rX$4\rYPINGZZQUIT\r\n",
    "empty requests": b"\r\n*0\r\n*-1\r\n\n\r\nQUIT\r\n",
}


@pytest.mark.parametrize("name", PROTOCOL_ERRORS)
def test_same_protocol_errors_as_redis(redis_server, resp_server, name):
    both(redis_server, resp_server, PROTOCOL_ERRORS[name])


def test_http_request_closes_without_any_reply_like_redis(redis_server, resp_server):
    attack = b"PING\r\nPOST / HTTP/1.1\r\nHost: localhost\r\n\r\nFLUSHALL\r\n"
    assert raw_exchange(redis_server.port, attack) == b""
    assert raw_exchange(resp_server.address[1], attack) == b""
    host_first = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert raw_exchange(resp_server.address[1], host_first) == raw_exchange(redis_server.port, host_first)


def test_keys_returns_the_same_set(redis_server, resp_server):
    keys = [b"a", b"ab", b"abc", b"b", b"ba", b"a*b", b"a?", b"[x]", b"x", b"h\\llo", b"hello", b"hallo"]
    data = request([b"MSET"] + [part for key in keys for part in (key, b"1")]) + b"QUIT\r\n"
    both(redis_server, resp_server, data)
    for pattern in (b"*", b"a*", b"?", b"*b*", b"[ab]*", b"[^a]*", b"h[ae]llo", b"h\\\\llo", b"a\\*b",
                    b"[\\[]x*", b"*[", b"a[", b"[a-b]?", b"[b-a]", b"*?*?*", b"h*o", b""):
        expected = sorted_keys(redis_server.port, pattern)
        assert sorted_keys(resp_server.address[1], pattern) == expected, pattern


def sorted_keys(port: int, pattern: bytes) -> List[bytes]:
    reply = raw_exchange(port, request([b"KEYS", pattern]) + b"QUIT\r\n")
    lines = reply.split(b"\r\n")
    if not lines[0].startswith(b"*"):
        raise AssertionError(f"KEYS replied {reply!r}")
    return sorted(lines[2:-2:2])


GLOB_KEYS = [b"", b"a", b"b", b"ab", b"ba", b"abc", b"a-c", b"^", b"]", b"[", b"\\", b"*", b"?", b"aa",
             b"bab"]
GLOB_PATTERNS = st.lists(st.sampled_from([b"a", b"b", b"c", b"*", b"?", b"[", b"]", b"^", b"-", b"\\"]),
                         min_size=1, max_size=7).map(b"".join)


def test_glob_patterns_match_like_redis(redis_server, resp_server):
    data = request([b"MSET"] + [part for key in GLOB_KEYS[1:] for part in (key, b"1")],
                   [b"SET", b"", b"empty"]) + b"QUIT\r\n"
    both(redis_server, resp_server, data)

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(GLOB_PATTERNS)
    def same_keys(pattern: bytes) -> None:
        assert sorted_keys(resp_server.address[1], pattern) == sorted_keys(redis_server.port, pattern)

    same_keys()


def test_same_resp3_replies_as_redis(redis_server, resp_server):
    """After HELLO 3 (its reply holds the connection id, so it is compared
    apart): nulls, maps and verbatim strings as Redis 7 sends them."""
    data = b"FLUSHALL\r\n" + request(
        b"HELLO 3", b"GET nokey", b"SET a 1", b"MGET a nokey", b"LPOP nokey 2", b"LPOP nokey", b"SET a 2 NX",
        b"SET a 3 NX GET", b"SET b 1 XX GET", b"CONFIG GET save", b"INFO nosuchsection", b"CLIENT GETNAME",
        b"WATCH a", b"SET a 4", b"MULTI", b"GET a", b"EXEC", b"COMMAND INFO nosuch", b"RESET", b"GET nokey",
        b"QUIT")
    marker = b"$7\r\nmodules\r\n*0\r\n"
    theirs_hello, _, theirs = raw_exchange(redis_server.port, data).partition(marker)
    ours_hello, _, ours = raw_exchange(resp_server.address[1], data).partition(marker)
    assert ours.split(b"\r\n") == theirs.split(b"\r\n")
    assert theirs.count(b"_\r\n") >= 8 and theirs.endswith(b"+RESET\r\n$-1\r\n+OK\r\n")
    strip_id = re.compile(rb"\$2\r\nid\r\n:\d+\r\n|\$7\r\nversion\r\n\$\d+\r\n[\d.]+\r\n")
    assert strip_id.sub(b"", ours_hello) == strip_id.sub(b"", theirs_hello)
