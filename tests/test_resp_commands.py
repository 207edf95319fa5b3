"""The RESP example's command engine without sockets (examples/resp_commands.py
and the modules under it), on a fake clock: expiry, the replies that cannot
be compared byte for byte with Redis (ids, times, INFO), WATCH, limits."""

from __future__ import annotations

from typing import List

import pytest

import _resp_support  # noqa: F401 - puts examples/ on sys.path
from resp_commands import RespService, execute_all
from resp_keyspace import Keyspace, Watcher, glob_match
from resp_protocol import RespParser


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(clock) -> RespService:
    return RespService(clock=clock)


def run(service: RespService, client, *commands: str) -> List[bytes]:
    """Each command's reply (inline commands)."""
    return [execute_all(service, client, command.encode() + b"\r\n") for command in commands]


def test_ttl_pttl_and_expiry_on_a_fake_clock(service, clock):
    client = service.connect()
    assert run(service, client, "SET k v PX 1500", "PTTL k", "TTL k") == [b"+OK\r\n", b":1500\r\n", b":2\r\n"]
    clock.now += 1.0
    assert run(service, client, "PTTL k", "TTL k", "GET k") == [b":500\r\n", b":1\r\n", b"$1\r\nv\r\n"]
    clock.now += 0.499
    assert run(service, client, "TTL k") == [b":0\r\n"]              # (1 + 500) // 1000
    clock.now += 0.001
    assert run(service, client, "GET k", "TTL k", "EXISTS k") == [b"$-1\r\n", b":-2\r\n", b":0\r\n"]
    assert run(service, client, "SET a v EXAT %d" % (clock.now + 10), "TTL a") == [b"+OK\r\n", b":10\r\n"]
    pxat = "SET b v PXAT %d" % (clock.now * 1000 + 10)
    assert run(service, client, pxat, "PTTL b") == [b"+OK\r\n", b":10\r\n"]
    assert run(service, client, "EXPIRE a 20 GT", "TTL a", "PEXPIRE a 5000 LT", "PTTL a") == [
        b":1\r\n", b":20\r\n", b":1\r\n", b":5000\r\n"]


def test_incr_keeps_the_ttl_set_and_mset_drop_it(service, clock):
    client = service.connect()
    run(service, client, "SET n 1 EX 100", "INCR n", "RPUSH l x", "EXPIRE l 100", "LPUSH l y")
    assert run(service, client, "TTL n", "TTL l") == [b":100\r\n", b":100\r\n"]
    assert run(service, client, "SET n 5", "TTL n") == [b"+OK\r\n", b":-1\r\n"]
    run(service, client, "EXPIRE n 100", "MSET n 6")
    assert run(service, client, "TTL n") == [b":-1\r\n"]
    run(service, client, "EXPIRE n 100", "SET n 7 KEEPTTL")
    assert run(service, client, "TTL n", "GET n") == [b":100\r\n", b"$1\r\n7\r\n"]


def test_active_expiry_frees_keys_nobody_looks_at(service, clock):
    client = service.connect()
    for index in range(100):
        run(service, client, f"SET k{index} v PX {10 * (index + 1)}")
    run(service, client, "SET forever v")
    clock.now += 0.5                                 # k0 .. k49 (10 .. 500 ms) are due
    assert service.expire_due() == 50
    assert len(service.keyspace.data[0]) == 51
    assert run(service, client, "DBSIZE") == [b":51\r\n"]
    clock.now += 10
    assert run(service, client, "DBSIZE", "KEYS *") == [b":1\r\n", b"*1\r\n$7\r\nforever\r\n"]
    assert service.expire_due() == 0


def test_deadline_heap_stays_bounded_when_ttls_are_reset(service, clock):
    client = service.connect()
    run(service, client, "SET k v")
    for seconds in range(1, 5001):
        run(service, client, f"EXPIRE k {seconds}")
    assert len(service.keyspace._deadlines) <= 66
    clock.now += 4999
    assert service.expire_due() == 0 and run(service, client, "TTL k") == [b":1\r\n"]
    clock.now += 1
    assert service.expire_due() == 1


def test_watch_sees_expiry_flush_and_other_clients(service, clock):
    first, second = service.connect(), service.connect()
    run(service, first, "SET k v PX 100", "WATCH k")
    clock.now += 1
    assert run(service, first, "MULTI", "GET k", "EXEC") == [b"+OK\r\n", b"+QUEUED\r\n", b"*-1\r\n"]
    run(service, first, "SET k v", "WATCH k")
    run(service, second, "SET k other")
    assert run(service, first, "MULTI", "GET k", "EXEC")[-1] == b"*-1\r\n"
    run(service, first, "WATCH k")
    run(service, second, "FLUSHALL")
    assert run(service, first, "MULTI", "PING", "EXEC")[-1] == b"*-1\r\n"
    run(service, first, "WATCH k")                  # k does not exist: a flush changes nothing
    run(service, second, "FLUSHDB", "SELECT 1", "SET k x")      # another database
    assert run(service, first, "MULTI", "PING", "EXEC")[-1] == b"*1\r\n+PONG\r\n"
    run(service, first, "WATCH k")
    service.disconnect(first)
    assert service.keyspace._watchers == {}


def test_client_ids_names_list_and_hello(service):
    first = service.connect("127.0.0.1:5000", "127.0.0.1:6380")
    second = service.connect("127.0.0.1:5001", "127.0.0.1:6380")
    assert run(service, first, "CLIENT ID") == [b":1\r\n"]
    assert run(service, second, "CLIENT ID") == [b":2\r\n"]
    hello = run(service, first, "HELLO 2 SETNAME app")[0]
    assert hello == (b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n"
                     b"$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
                     b"$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n")
    assert run(service, first, "HELLO 4") == [b"-NOPROTO unsupported protocol version\r\n"]
    listing = run(service, second, "CLIENT LIST")[0]
    lines = listing.split(b"\r\n", 1)[1].rstrip(b"\r\n").split(b"\n")
    assert [line.split()[0] for line in lines] == [b"id=1", b"id=2"]
    assert b"addr=127.0.0.1:5000 laddr=127.0.0.1:6380" in lines[0] and b"name=app" in lines[0]
    assert b"cmd=client|list" in lines[1]
    assert run(service, second, "CLIENT LIST TYPE normal") == [b"-ERR syntax error\r\n"]
    assert run(service, first, "CLIENT INFO")[0].split(b"\r\n")[1].startswith(b"id=1 ")
    service.disconnect(second)
    assert b"id=2" not in run(service, first, "CLIENT LIST")[0]
    assert run(service, first, "RESET", "CLIENT GETNAME") == [b"+RESET\r\n", b"$-1\r\n"]
    resp3 = run(service, first, "HELLO 3", "GET nokey", "CONFIG GET save", "INFO keyspace", "RESET", "GET x")
    assert resp3[0].startswith(b"%7\r\n$6\r\nserver\r\n") and b"$5\r\nproto\r\n:3\r\n" in resp3[0]
    assert resp3[1:] == [b"_\r\n", b"%1\r\n$4\r\nsave\r\n$0\r\n\r\n", b"=16\r\ntxt:# Keyspace\r\n\r\n",
                         b"+RESET\r\n", b"$-1\r\n"]


def test_info_sections(service):
    client = service.connect()
    run(service, client, "SET a 1", "SET b 2 EX 100", "SELECT 3", "SET c 3")
    text = run(service, client, "INFO")[0].split(b"\r\n", 1)[1].decode()
    sections = [line for line in text.splitlines() if line.startswith("# ")]
    assert sections == ["# Server", "# Clients", "# Memory", "# Persistence", "# Stats",
                        "# Replication", "# Cpu", "# Keyspace"]
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    assert fields["redis_version"] == "7.0.0" and fields["connected_clients"] == "1"
    assert fields["db0"] == "keys=2,expires=1,avg_ttl=0" and fields["db3"] == "keys=1,expires=0,avg_ttl=0"
    assert int(fields["total_commands_processed"]) >= 5
    keyspace_only = run(service, client, "INFO keyspace")[0].decode()
    assert "# Keyspace" in keyspace_only and "# Server" not in keyspace_only
    assert "# Server" in run(service, client, "INFO server clients")[0].decode()
    assert "# Clients" in run(service, client, "INFO everything")[0].decode()


def test_command_count_info_docs_and_config(service):
    client = service.connect()
    count = int(run(service, client, "COMMAND COUNT")[0][1:-2])
    assert count == len(service.table) >= 40
    listing = run(service, client, "COMMAND")[0]
    assert listing.startswith(b"*%d\r\n" % count)
    info = run(service, client, "COMMAND INFO get nosuch")[0]
    assert info.startswith(b"*2\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n")
    assert info.endswith(b"$-1\r\n")
    docs = run(service, client, "COMMAND DOCS get")[0]
    assert docs == (b"*2\r\n$3\r\nget\r\n*6\r\n$7\r\nsummary\r\n$22\r\nGet the value of a key\r\n"
                    b"$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n")
    assert b"config|get" in run(service, client, "COMMAND DOCS config")[0]
    assert run(service, client, "CONFIG GET *max*bulk* DATABASES") == [
        b"*4\r\n$18\r\nproto-max-bulk-len\r\n$9\r\n536870912\r\n$9\r\ndatabases\r\n$2\r\n16\r\n"]
    for container in ("CONFIG", "COMMAND", "CLIENT"):
        assert run(service, client, container + " HELP")[0].startswith(b"*")
    names = run(service, client, "COMMAND LIST")[0]
    assert b"$3\r\nset\r\n" in names and b"$4\r\nexec\r\n" in names


def test_a_failing_command_answers_an_error_and_the_server_goes_on(service, monkeypatch):
    client = service.connect()

    def broken(*args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(service.table.commands["echo"], "handler", broken)
    assert run(service, client, "ECHO x", "PING") == [b"-ERR internal error in 'echo'\r\n", b"+PONG\r\n"]


def test_the_parser_gets_the_service_limits():
    service = RespService(max_bulk_length=5, max_array_length=2, max_command_length=8)
    client = service.connect()
    assert execute_all(service, client, b"*1\r\n$6\r\n") == b"-ERR Protocol error: invalid bulk length\r\n"
    assert execute_all(service, client, b"*3\r\n") == b"-ERR Protocol error: invalid multibulk length\r\n"
    assert execute_all(service, client, b"*2\r\n$4\r\nECHO\r\n$5\r\n") == \
        b"-ERR Protocol error: too big command\r\n"
    assert isinstance(service.parser(), RespParser)


def test_quit_stops_the_batch(service):
    client = service.connect()
    assert execute_all(service, client, b"PING\r\nQUIT\r\nPING\r\n") == b"+PONG\r\n+OK\r\n"
    assert client.close_after_reply


def test_keyspace_watchers_and_types():
    keyspace = Keyspace(databases=2)
    watcher = Watcher()
    keyspace.watch(watcher, 1, b"k")
    keyspace.set(0, b"k", b"v")
    assert not watcher.dirty
    keyspace.set(1, b"k", b"v")
    assert watcher.dirty
    keyspace.unwatch(watcher)
    assert not watcher.dirty and not watcher.watched


@pytest.mark.parametrize("pattern, string, matches", [
    (b"*", b"anything", True), (b"*", b"", False), (b"", b"", True), (b"a*", b"a", True),
    (b"h?llo", b"hello", True), (b"h?llo", b"hllo", False), (b"h[ae]llo", b"hallo", True),
    (b"h[^e]llo", b"hello", False), (b"h[a-b]llo", b"hbllo", True), (b"h[b-a]llo", b"hallo", True),
    (b"h\\*llo", b"h*llo", True), (b"h\\*llo", b"hello", False), (b"a[", b"a", False),
    (b"[^", b"x", True), (b"a\\", b"a\\", True), (b"*a*b*c*", b"xaybzc", True),
    (b"*a*a*a*a*a*a*a*a*b", b"a" * 60, False), (b"HeLLo", b"hello", False),
])
def test_glob_match(pattern, string, matches):
    assert glob_match(pattern, string) is matches


def test_glob_match_nocase_and_long_patterns_do_not_recurse():
    assert glob_match(b"SAVE", b"save", nocase=True)
    assert glob_match(b"a*" * 5000 + b"b", b"a" * 5000 + b"b")
    assert not glob_match(b"a*" * 5000 + b"c", b"a" * 6000 + b"b")
