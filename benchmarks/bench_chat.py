"""Chat fan-out throughput: deliveries per second in one room.

    python -m benchmarks.bench_chat                    # 100 and 1,000 members, standalone and over Redis
    python -m benchmarks.bench_chat --members 100 --modes standalone --rounds 1

Starts the real chat server (``python -m gsocket chat``) pinned to CPU 0;
for ``redis`` mode, a redis-server and two chat nodes, all on CPU 0, with the
members split between the nodes. This process, pinned to CPU 1, connects the
members (gevent sockets), then in each round 100 of them send 20
messages each (inside the flood burst, so nothing is throttled) and it
waits until every member has counted every message sent by the others. A
delivery is one message line reaching one member; deliveries/s is their
total over the time from the first send to the last delivery. Medians over
rounds. Needs ``redis-server`` on PATH and redis-py for the redis mode.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket as stdlib_socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Sequence

import gevent
import gevent.socket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MESSAGES_PER_SENDER = 20
#: Members that send in each round.
SENDERS = 100
MARK = b"\n[lobby] "


def free_port() -> int:
    with stdlib_socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stdlib_socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Member:
    __slots__ = ("sock", "count", "tail", "greenlet")

    def __init__(self, port: int) -> None:
        self.sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=60)
        self.count = 0
        self.tail = b"\n"
        self.greenlet = gevent.spawn(self.read)

    def read(self) -> None:
        recv = self.sock.recv
        while True:
            try:
                chunk = recv(262144)
            except OSError:
                return
            if not chunk:
                return
            data = self.tail + chunk
            self.count += data.count(MARK)
            self.tail = data[-8:]


class Servers:
    def __init__(self, mode: str, server_cpu: int) -> None:
        self.processes: List[subprocess.Popen] = []
        self.tmp = tempfile.mkdtemp(prefix="bench-chat-")

        def preexec() -> None:
            pin(server_cpu)

        self.ports: List[int] = []
        extra: List[str] = []
        if mode == "redis":
            redis_port = free_port()
            self.processes.append(subprocess.Popen(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.tmp], stdout=subprocess.DEVNULL,
                preexec_fn=preexec))
            wait_port(redis_port)
            extra = ["--redis", f"redis://127.0.0.1:{redis_port}/0"]
        for _ in range(2 if mode == "redis" else 1):
            port = free_port()
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "gsocket", "chat", "--port", str(port), "--log-level", "WARNING",
                 *extra], cwd=ROOT, preexec_fn=preexec, stdin=subprocess.DEVNULL))
            self.ports.append(port)
        for port in self.ports:
            wait_port(port)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_case(mode: str, members: int, rounds: int, server_cpu: int) -> List[float]:
    servers = Servers(mode, server_cpu)
    clients: List[Member] = []
    try:
        for index in range(members):
            clients.append(Member(servers.ports[index % len(servers.ports)]))
        # Let the join notices settle: the last member's /who counts everyone.
        probe = clients[-1]
        deadline = time.monotonic() + 60
        while True:
            probe.sock.sendall(b"/who\n")
            gevent.sleep(0.5)
            if time.monotonic() > deadline:
                raise RuntimeError("members not all seen")
            # /who replies do not contain the mark; check through a fresh socket
            with gevent.socket.create_connection(("127.0.0.1", servers.ports[0]), timeout=10) as check:
                buffer = b""
                check.sendall(b"/who\n")
                while b"): " not in buffer:
                    buffer += check.recv(1 << 20)
                if f"* lobby ({members + 1})".encode() in buffer:
                    break
        senders = clients[: min(members, SENDERS)]
        results = []
        for _ in range(rounds):
            gevent.sleep(2.5)                # flood buckets drain between rounds
            before = [client.count for client in clients]
            sent_by = {id(sender): MESSAGES_PER_SENDER for sender in senders}
            total_sent = MESSAGES_PER_SENDER * len(senders)
            expected = [before[i] + total_sent - sent_by.get(id(client), 0)
                        for i, client in enumerate(clients)]
            payload = b"".join(b"m%d\n" % n for n in range(MESSAGES_PER_SENDER))
            started = time.perf_counter()
            for sender in senders:
                sender.sock.sendall(payload)
            deadline = time.monotonic() + 120
            while any(client.count < want for client, want in zip(clients, expected)):
                if time.monotonic() > deadline:
                    raise RuntimeError("deliveries missing")
                gevent.sleep(0.001)
            elapsed = time.perf_counter() - started
            deliveries = sum(want - had for want, had in zip(expected, before))
            results.append(deliveries / elapsed)
            print(f"  {mode:10s} {members:5d} members: {deliveries} deliveries in {elapsed:.3f} s "
                  f"= {deliveries / elapsed:,.0f}/s", flush=True)
        return results
    finally:
        for client in clients:
            client.sock.close()
        servers.stop()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="100,1000")
    parser.add_argument("--modes", default="standalone,redis")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    args = parser.parse_args(argv)
    pin(args.load_cpu)
    rows = []
    for mode in args.modes.split(","):
        for members in (int(m) for m in args.members.split(",")):
            results = run_case(mode, members, args.rounds, args.server_cpu)
            rows.append((mode, members, statistics.median(results)))
    print("\n| mode | members | deliveries/s (median) |\n|---|---:|---:|")
    for mode, members, rate in rows:
        print(f"| {mode} | {members} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
