"""The RESP example with real clients nobody here wrote: redis-cli for every
command (its output compared with a real redis-server's), redis-py
including pipelines and WATCH, redis-benchmark, and the example run as its
own process (``python examples/resp_server.py``).
"""

from __future__ import annotations

import shutil
import signal
import socket as stdlib_socket
import subprocess
import time
from typing import List

import gevent
import gevent.socket
import pytest
import redis

from _resp_support import (
    ExampleProcess, example_in_this_process, example_process_running, raw_exchange, redis_server_running,
)
from resp_commands import RespService
from resp_server import FLUSH_BYTES

@pytest.fixture(scope="module")
def redis_server():
    """A real redis-server for this module."""
    yield from redis_server_running()


@pytest.fixture(scope="module")
def resp_process():
    """examples/resp_server.py as its own process, for this module."""
    yield from example_process_running()


@pytest.fixture
def resp_server(driver):
    """The example server in this process (leak-checked by ``driver``)."""
    yield from example_in_this_process()


REDIS_CLI = shutil.which("redis-cli") or "redis-cli"
REDIS_BENCHMARK = shutil.which("redis-benchmark") or "redis-benchmark"


def cli(port: int, *args: str, script: str = "") -> str:
    """redis-cli's output (``--no-raw``: types shown); commands from
    ``args`` or, one per line, from ``script`` on stdin."""
    result = subprocess.run([REDIS_CLI, "-p", str(port), "--no-raw", *args], input=script.encode(),
                            capture_output=True, timeout=30)
    if result.returncode != 0:
        raise AssertionError(f"redis-cli {args} exited {result.returncode}: {result.stderr!r}")
    return result.stdout.decode()


# Every command of the example, as redis-cli lines whose output does not
# depend on time, ids or hash order.
CLI_SCRIPT = """\
flushall
ping
ping "hello world"
echo 'it\\'s'
echo "a\\x00b"
set greeting hello
get greeting
set greeting bye get
set greeting x nx
set fresh y xx
set fresh y nx ex 100
ttl fresh
set fresh z keepttl
ttl fresh
set fresh z px 0
set fresh z bogus
get nokey
mset a 1 b 2 c 3
mset a
mget a b nokey c
incr a
incrby a 10
decr a
decrby a 5
incr greeting
incrby a 9223372036854775807
exists a b nokey a
del a nokey
exists a
type b
type nokey
keys c
expire b 100
ttl b
pexpire b 200000
ttl b
expire b 100 gt
expire b 300 gt
ttl b
persist b
ttl b
pttl nokey
pttl b
expire b -1
exists b
rpush list a b c
lpush list z
llen list
lrange list 0 -1
lpop list
rpop list 2
lpush greeting x
get list
dbsize
select 2
set other 1
dbsize
select 0
dbsize
flushdb
dbsize
multi
exec
discard
watch greeting
unwatch
auth pw
auth default pw
hello 4
hello x
client setname cli-test
client getname
client setname "bad name"
config get save
config get nosuch
config foo
command foo
reset
nosuchcommand arg
quit
"""

NONDETERMINISTIC = {"info", "command", "client", "hello", "keys", "quit"}


def test_redis_cli_every_command_same_output_as_redis(resp_process, redis_server):
    ours = cli(resp_process.port, script=CLI_SCRIPT)
    theirs = cli(redis_server.port, script=CLI_SCRIPT)
    assert ours.splitlines() == theirs.splitlines()
    assert '"hello"' in ours and "(integer) 12" in ours and "WRONGTYPE" in ours and "(nil)" in ours
    # the script (and the checks below) really cover every command of the example
    used = {line.split()[0].lower() for line in CLI_SCRIPT.splitlines() if line.strip()}
    assert {spec.name for spec in RespService().table} - used <= NONDETERMINISTIC


def test_redis_cli_commands_with_varying_output(resp_process):
    port = resp_process.port
    assert cli(port, "flushall") == "OK\n"
    assert cli(port, "-n", "3", "set", "k", "v") == "OK\n"          # SELECT 3 first
    assert cli(port, "-n", "3", "keys", "*") == '1) "k"\n'
    assert cli(port, "keys", "*") == "(empty array)\n"
    info = cli(port, "info")
    assert "# Server" in info and "redis_version:7.0.0" in info and "db3:keys=1,expires=0" in info
    assert cli(port, "info", "keyspace").splitlines()[:2] == ["# Keyspace", "db3:keys=1,expires=0,avg_ttl=0"]
    assert cli(port, "client", "id").startswith("(integer) ")
    listing = cli(port, "client", "list")
    assert "cmd=client|list" in listing and "addr=127.0.0.1:" in listing
    hello = cli(port, "hello", "2").splitlines()
    assert hello[:6] == [' 1) "server"', ' 2) "redis"', ' 3) "version"', ' 4) "7.0.0"', ' 5) "proto"',
                         ' 6) (integer) 2']
    count = int(cli(port, "command", "count").split()[1])
    assert count == len(RespService().table)
    assert cli(port, "command", "info", "get").splitlines()[:3] == ['1)  1) "get"', '    2) (integer) 2',
                                                                    '    3) 1) readonly']
    assert '"Get the value of a key"' in cli(port, "command", "docs", "get")
    assert cli(port, "--raw", "command", "list").count("\n") == count
    assert "set" in cli(port, "--raw", "command").split("\n")
    assert cli(port, "quit") == "OK\n"


def test_redis_py_basics(resp_process):
    client = redis.Redis(port=resp_process.port, protocol=2, client_name="py-test", socket_timeout=10)
    try:
        client.flushall()
        assert client.ping() is True
        assert client.client_getname() == "py-test"
        assert client.set("k", b"\x00\xff" * 10000) and client.get("k") == b"\x00\xff" * 10000
        assert client.set("k", "v", nx=True) is None
        assert client.set("k", "new", get=True) == b"\x00\xff" * 10000
        assert client.set("t", "v", ex=100) and client.ttl("t") == 100
        assert 99_000 < client.pttl("t") <= 100_000
        assert client.expire("t", 5, gt=True) is False and client.persist("t") and client.ttl("t") == -1
        assert client.incr("n") == 1 and client.incrby("n", 41) == 42 and client.decrby("n", 2) == 40
        assert client.mset({"a": "1", "b": "2"}) and client.mget("a", "b", "zz") == [b"1", b"2", None]
        assert client.exists("a", "b", "zz") == 2 and client.delete("a", "zz") == 1
        assert sorted(client.keys("*")) == [b"b", b"k", b"n", b"t"] and client.dbsize() == 4
        assert client.rpush("l", "x", "y") == 2 and client.lrange("l", 0, -1) == [b"x", b"y"]
        assert client.type("l") == b"list" and client.lpop("l", 5) == [b"x", b"y"]
        with pytest.raises(redis.ResponseError, match="^WRONGTYPE Operation against a key"):
            client.lpush("k", "x")
        with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
            client.incr("k")
        with pytest.raises(redis.ResponseError, match="^syntax error$"):
            client.execute_command("SET", "k", "v", "NX", "XX")
        with pytest.raises(redis.ResponseError, match="^unknown command 'NOPE'"):
            client.execute_command("NOPE", "x")
        assert client.info()["redis_version"] == "7.0.0"
        assert client.info("keyspace")["db0"]["keys"] == 4
        assert client.config_get("save") == {"save": ""}
        assert {"get", "set", "multi"} <= set(client.command())
        other_db = redis.Redis(port=resp_process.port, protocol=2, db=5, socket_timeout=10)
        assert other_db.set("k", "db5") and other_db.get("k") == b"db5" and client.get("k") == b"new"
        other_db.close()
        assert client.flushdb() and client.dbsize() == 0
        assert redis.Redis(port=resp_process.port, protocol=2, decode_responses=True).echo("héllo") == "héllo"
    finally:
        client.close()


def test_redis_py_pipelines_and_watch(resp_process):
    client = redis.Redis(port=resp_process.port, protocol=2, socket_timeout=10)
    try:
        client.flushall()
        with client.pipeline(transaction=False) as pipe:
            for index in range(1000):
                pipe.set(f"key:{index}", index).incr("counter")
            results = pipe.execute()
        assert results == [x for index in range(1000) for x in (True, index + 1)]
        with client.pipeline() as pipe:                    # MULTI / EXEC
            pipe.incr("counter").get("key:7").lpush("list", "a", "b").lrange("list", 0, -1)
            results = pipe.execute()
        assert results == [1001, b"7", 2, [b"b", b"a"]]
        with client.pipeline() as pipe:
            pipe.set("s", "v").lpush("s", "x").get("s")
            with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
                pipe.execute()
        assert client.get("s") == b"v"                     # the other commands did run
        with client.pipeline() as pipe:
            pipe.watch("counter")
            assert int(pipe.get("counter")) == 1001
            client.incr("counter")                         # someone else changes it
            pipe.multi()
            pipe.set("counter", 0)
            with pytest.raises(redis.WatchError):
                pipe.execute()
        assert client.get("counter") == b"1002"

        def increment(pipe: redis.client.Pipeline) -> None:
            value = int(pipe.get("counter"))
            pipe.multi()
            pipe.set("counter", value + 1)

        client.transaction(increment, "counter")
        assert client.get("counter") == b"1003"
        assert client.mget([f"key:{index}" for index in range(0, 1000, 100)]) == [
            str(index).encode() for index in range(0, 1000, 100)]
    finally:
        client.close()


def test_redis_py_with_its_default_protocol_resp3(resp_process):
    client = redis.Redis(port=resp_process.port, socket_timeout=10)     # redis-py 8: HELLO 3
    try:
        client.flushall()
        assert client.connection_pool.get_connection().protocol == 3
        assert client.set("k", "v") and client.get("k") == b"v" and client.get("nokey") is None
        assert client.mget("k", "nokey") == [b"v", None] and client.lpop("nokey", 2) is None
        assert client.set("k", "w", nx=True) is None
        assert client.config_get("save") == {"save": ""}
        assert client.info("keyspace") == {"db0": {"keys": 1, "expires": 0, "avg_ttl": 0}}
        assert client.client_getname() is None
        with client.pipeline() as pipe:
            assert pipe.incr("n").incr("n").get("nokey").execute() == [1, 2, None]
        with client.pipeline(transaction=False) as pipe:
            assert pipe.set("a", 1).get("a").execute() == [True, b"1"]
    finally:
        client.close()


def benchmark_payload(size: int = 3) -> bytes:
    """The value redis-benchmark sets (its fixed pseudo-random data)."""
    state, data = 1234, bytearray()
    for _ in range(size):
        state = (state * 1103515245 + 12345) & 0xFFFFFFFF
        data.append(ord("0") + ((state >> 16) & 63))
    return bytes(data)


def test_redis_benchmark_pipelined_runs_clean_and_leaves_correct_data(resp_process):
    client = redis.Redis(port=resp_process.port, protocol=2, socket_timeout=10)
    try:
        client.flushall()
        result = subprocess.run(
            [REDIS_BENCHMARK, "-p", str(resp_process.port), "-q", "-n", "20000", "-P", "16",
             "-t", "ping,set,get,incr,mset"], capture_output=True, timeout=240)
        output = (result.stdout + result.stderr).decode(errors="replace")
        assert result.returncode == 0, output
        summary = [line.rsplit("\r", 1)[-1] for line in output.splitlines() if "requests per second" in line]
        assert [line.split(":")[0].strip() for line in summary] == [
            "PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET (10 keys)"], output
        for word in ("ERR", "WARNING", "Error", "error"):
            assert word not in output, output
        # no request lost or repeated: 20000 INCRs of one counter
        assert client.get("counter:__rand_int__") == b"20000"
        assert client.get("key:__rand_int__") == benchmark_payload()
        assert client.dbsize() == 2
    finally:
        client.close()


def test_the_example_process_logs_limits_and_stops_cleanly():
    example = ExampleProcess("--max-bulk-length", "1024", "--databases", "2")
    try:
        with stdlib_socket.create_connection(("127.0.0.1", example.port), timeout=10) as peer:
            peer.sendall(b"SELECT 1\r\nSELECT 2\r\n*2\r\n$4\r\nECHO\r\n$1025\r\n")
            reply = b""
            while chunk := peer.recv(4096):
                reply += chunk
        assert reply == (b"+OK\r\n-ERR DB index is out of range\r\n"
                         b"-ERR Protocol error: invalid bulk length\r\n")
        idle = stdlib_socket.create_connection(("127.0.0.1", example.port), timeout=10)
        assert example.stop() == 0
        assert idle.recv(10) == b""                         # closed by the server on SIGTERM
        idle.close()
        output = example.output()
        assert f"listening on 127.0.0.1:{example.port}" in output
        assert "resp_server stopped" in output and "Traceback" not in output
    finally:
        example.cleanup()


def test_sigint_stops_it_too():
    example = ExampleProcess()
    try:
        example.process.send_signal(signal.SIGINT)
        assert example.process.wait(10) == 0
    finally:
        example.cleanup()


# ---------------------------------------------------------------------- in this process

def wbuffer(port_of_peer: int) -> int:
    """Bytes queued for the peer connected from ``port_of_peer`` (netstat)."""
    from gsocket import socket as gsock
    for row in gsock.netstat():
        if row.type == "TCP" and row.name.endswith(f":{port_of_peer}"):
            return row.wbuffer
    return -1


def test_a_client_that_does_not_read_is_not_served_beyond_a_bound(resp_server):
    port = resp_server.address[1]
    value_size, count = 100_000, 300
    setup = raw_exchange(port, b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\nQUIT\r\n"
                         % (value_size, b"v" * value_size))
    assert setup == b"+OK\r\n+OK\r\n"
    greedy = gevent.socket.socket()
    greedy.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 65536)
    greedy.connect(("127.0.0.1", port))
    local_port = greedy.getsockname()[1]
    try:
        greedy.sendall(b"GET big\r\n" * count)
        peak, last_change, last = 0, time.monotonic(), -1
        while time.monotonic() - last_change < 0.5:         # until the server stops producing
            pending = wbuffer(local_port)
            peak = max(peak, pending)
            if pending != last:
                last, last_change = pending, time.monotonic()
            gevent.sleep(0.01)
        total = count * (len(b"$100000\r\n") + value_size + 2)
        assert 0 < peak < 1024 * 1024 + 2 * FLUSH_BYTES + 2 * value_size, peak
        # meanwhile everyone else is served
        assert raw_exchange(port, b"PING\r\nQUIT\r\n") == b"+PONG\r\n+OK\r\n"
        received = 0
        expected_reply = b"$100000\r\n" + b"v" * value_size + b"\r\n"
        buffered = b""
        while received < total:
            chunk = greedy.recv(1 << 20)
            assert chunk, f"closed after {received} of {total} bytes"
            buffered += chunk
            whole = len(buffered) // len(expected_reply) * len(expected_reply)
            assert buffered[:whole] == expected_reply * (whole // len(expected_reply))
            received += whole
            buffered = buffered[whole:]
        assert received == total and buffered == b""
    finally:
        greedy.close()


def test_pipelined_replies_come_in_order_from_many_clients(resp_server):
    port = resp_server.address[1]

    def client(index: int) -> List[bytes]:
        commands = b"".join(b"INCR c%d\r\nGET c%d\r\n" % (index, index) for _ in range(200)) + b"QUIT\r\n"
        return raw_exchange(port, commands).split(b"\r\n")

    jobs = [gevent.spawn(client, index) for index in range(20)]
    gevent.joinall(jobs, raise_error=True)
    for job in jobs:
        lines = job.value
        expected = []
        for n in range(1, 201):
            expected += [b":%d" % n, b"$%d" % len(str(n)), str(n).encode()]
        assert lines == expected + [b"+OK", b""]
