"""WebSocket echo: messages/s of gsocket.websocket against the ``websockets``
package's asyncio server, in the same run, as ratios.

    python -m benchmarks.bench_websocket                 # 3 rounds x 3 cases, 3 s each
    python -m benchmarks.bench_websocket --quick         # 1 round, 1 s per case
    python -m benchmarks.bench_websocket --servers websockets,gsocket --cases pp100

The servers (``benchmarks/servers/websocket_*.py``) run one at a time as
subprocesses pinned to CPU 0, started fresh for every round; rounds are
interleaved (round 1 of every server, then round 2 ...) so that a busy
machine hurts all alike. The load runs in this process, pinned to CPU 1:
one gevent greenlet per connection on raw sockets, which does the HTTP
upgrade itself, then sends ``depth`` masked frames at once (built once) and
reads back the exact bytes the server must frame in reply (one comparison
per batch: an echo that loses, reorders or changes a byte fails the case).
So the client does little per message and the server is what is measured.

A message is one echoed WebSocket message; msgs/s counts them over the
measured seconds (after a warm-up). Each figure is the median over rounds,
with its ratio to ``websockets`` (asyncio) measured in the same run, the
server's CPU (from /proc, 100 = one core) and the load's own CPU. "msgs per
server CPU s" (msgs/s over the server's CPU share) and its ratio are the
steadier comparison on a machine where other work takes CPU 0 too: then no
server gets its whole core, and msgs/s follows the neighbours' load.
No extension is negotiated on either side (gsocket offers none; the
reference runs with ``compression=None``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import os
import resource
import signal
import socket as stdlib_socket
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import gevent
import gevent.socket

ROOT = Path(__file__).resolve().parent.parent
#: The server every ratio is computed against.
REFERENCE = "websockets"
MASK = b"\x5a\x17\xc3\x81"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True)
class Case:
    """``connections`` each keep ``depth`` messages of ``size`` bytes in flight."""

    name: str
    connections: int
    depth: int
    size: int
    kind: str            # "text" or "binary"
    description: str


CASES = {case.name: case for case in (
    Case("pp100", 100, 1, 64, "text", "100 connections, one 64 B text message in flight each"),
    Case("burst10", 10, 32, 64, "text", "10 connections, 32 x 64 B text messages in flight each"),
    Case("big4", 4, 1, 64 * 1024, "binary", "4 connections, one 64 KiB binary message in flight each"),
)}


@dataclass(frozen=True)
class Server:
    name: str
    description: str
    argv: Tuple[str, ...]
    unavailable: Optional[str] = None


def servers() -> Dict[str, Server]:
    """Every server, reference first."""
    def module(name: str, *extra: str) -> Tuple[str, ...]:
        return (sys.executable, "-m", f"benchmarks.servers.{name}", "--host", "127.0.0.1", *extra)

    no_uvloop = None if importlib.util.find_spec("uvloop") else "uvloop is not installed"
    no_websockets = None if importlib.util.find_spec("websockets") else "websockets is not installed"
    listed = [
        Server(REFERENCE, "websockets asyncio server (reference)", module("websocket_websockets"),
               no_websockets),
        Server("websockets_uvloop", "websockets asyncio server on uvloop",
               module("websocket_websockets", "--uvloop"), no_websockets or no_uvloop),
        Server("gsocket", "gsocket.websocket, accept(id, handler)", module("websocket_gsocket")),
        Server("gsocket_read", "gsocket.websocket, read / write loop",
               module("websocket_gsocket", "--api", "read")),
    ]
    return {server.name: server for server in listed}


# ---------------------------------------------------------------------- frames and the upgrade

def client_frame(payload: bytes, kind: str) -> bytes:
    """One masked client frame (mask MASK) carrying ``payload``."""
    return _header(payload, kind, masked=True) + MASK + _xor(payload, MASK)


def server_frame(payload: bytes, kind: str) -> bytes:
    """The unmasked frame an echo server must send back for ``payload``."""
    return _header(payload, kind, masked=False) + payload


def _header(payload: bytes, kind: str, masked: bool) -> bytes:
    first = 0x81 if kind == "text" else 0x82
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        return bytes([first, bit | n])
    if n < 65536:
        return bytes([first, bit | 126]) + struct.pack("!H", n)
    return bytes([first, bit | 127]) + struct.pack("!Q", n)


def _xor(payload: bytes, mask: bytes) -> bytes:
    repeated = (mask * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def upgrade(sock: gevent.socket.socket, port: int) -> None:
    """The HTTP upgrade; raises unless the server answers 101 with the right
    Sec-WebSocket-Accept and nothing after the head."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed during the upgrade: {head!r}")
        head += chunk
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest())
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 101 ") or not head.endswith(b"\r\n\r\n"):
        raise ConnectionError(f"upgrade refused: {head!r}")
    if not any(line.lower() == b"sec-websocket-accept: " + accept.lower() for line in lines):
        raise ConnectionError(f"wrong Sec-WebSocket-Accept: {head!r}")


# ---------------------------------------------------------------------- the load

class Load:
    """The connections of one case against one server."""

    def __init__(self, port: int, case: Case) -> None:
        payload = bytes((i * 7 + 11) % 94 + 33 for i in range(case.size))    # printable ASCII
        self.batch = client_frame(payload, case.kind) * case.depth
        self.expected = server_frame(payload, case.kind) * case.depth
        self.depth = case.depth
        self.counting = False
        self.stopping = False
        self.count = 0
        self.errors: List[str] = []
        self.sockets = []
        for _ in range(case.connections):
            sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
            self.sockets.append(sock)
        gevent.joinall([gevent.spawn(upgrade, sock, port) for sock in self.sockets], raise_error=True)
        self.greenlets = [gevent.spawn(self._run, sock) for sock in self.sockets]

    def _run(self, sock: gevent.socket.socket) -> None:
        batch, expected = self.batch, self.expected
        size = len(expected)
        buffer = bytearray(size)
        view = memoryview(buffer)
        try:
            while not self.stopping:
                sock.sendall(batch)
                got = 0
                while got < size:
                    n = sock.recv_into(view[got:])
                    if not n:
                        raise ConnectionError("the server closed the connection")
                    got += n
                if buffer != expected:
                    raise AssertionError("the echo differs from what was sent")
                if self.counting:
                    self.count += self.depth
        except Exception as exc:   # noqa: BLE001 - reported with the case
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def measure(self, warmup: float, seconds: float, server_pid: int) -> Tuple[float, float, float]:
        """(msgs/s, server CPU %, load CPU %) over ``seconds`` after ``warmup``."""
        gevent.sleep(warmup)
        srv_before, own_before = _cpu_of(server_pid), _own_cpu()
        self.count, self.counting = 0, True
        started = time.perf_counter()
        gevent.sleep(seconds)
        self.counting = False
        elapsed = time.perf_counter() - started
        count = self.count
        srv_cpu = (_cpu_of(server_pid) - srv_before) / elapsed * 100
        own_cpu = (_own_cpu() - own_before) / elapsed * 100
        return count / elapsed, srv_cpu, own_cpu

    def close(self) -> None:
        self.stopping = True
        gevent.joinall(self.greenlets, timeout=10)
        gevent.killall(self.greenlets)
        for sock in self.sockets:
            sock.close()


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid``, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------- servers

def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    with stdlib_socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(server: Server, cpu: int, log: Path) -> Tuple[subprocess.Popen, int]:
    """Start ``server`` pinned to ``cpu``; returns it once its port accepts."""
    port = free_port()
    out = open(log, "ab")
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    process = subprocess.Popen([*server.argv, "--port", str(port)], cwd=ROOT, env=env,
                               stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                               preexec_fn=lambda: pin(cpu))
    out.close()
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {process.returncode} (log: {log})")
        try:
            stdlib_socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                stop(process)
                raise RuntimeError(f"{server.name} does not listen after 20 s (log: {log})")
            time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------- the run and the report

Key = Tuple[str, str]          # (server, case)


def run(names: Sequence[str], cases: Sequence[Case], rounds: int, warmup: float, seconds: float,
        server_cpu: int, logs: Path) -> Tuple[Dict[Key, List[Tuple[float, float, float]]], Dict[Key, str]]:
    """Every (server, case) measured once per round; the measurements and the failures."""
    known = servers()
    measured: Dict[Key, List[Tuple[float, float, float]]] = {}
    failed: Dict[Key, str] = {}
    for round_number in range(1, rounds + 1):
        for name in names:
            log = logs / f"{name}-round{round_number}.log"
            try:
                process, port = start(known[name], server_cpu, log)
            except RuntimeError as exc:
                for case in cases:
                    failed[(name, case.name)] = str(exc)
                continue
            try:
                for case in cases:
                    print(f"round {round_number}/{rounds}: {name} {case.name}", file=sys.stderr, flush=True)
                    load = Load(port, case)
                    try:
                        figures = load.measure(warmup, seconds, process.pid)
                    finally:
                        load.close()
                    if load.errors:
                        failed[(name, case.name)] = load.errors[0]
                    else:
                        measured.setdefault((name, case.name), []).append(figures)
            finally:
                stop(process)
    return measured, failed


def report(names: Sequence[str], cases: Sequence[Case], rounds: int,
           measured: Dict[Key, List[Tuple[float, float, float]]], failed: Dict[Key, str]) -> str:
    """The Markdown table: medians over rounds, ratios to the reference."""
    out = [f"WebSocket echo, medians of {rounds} round(s); servers on CPU 0, the load on CPU 1\n",
           f"| case | server | msgs/s | x {REFERENCE} | msgs per server CPU s | x {REFERENCE} "
           "| srv CPU % | load CPU % |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]

    def per_cpu(figures: Tuple[float, float, float]) -> float:
        return figures[0] / (figures[1] / 100) if figures[1] > 0 else 0.0

    for case in cases:
        reference = measured.get((REFERENCE, case.name))
        base = statistics.median(m[0] for m in reference) if reference else None
        base_cpu = statistics.median(per_cpu(m) for m in reference) if reference else None
        for name in names:
            key = (name, case.name)
            if key in failed:
                out.append(f"| {case.name} | {name} | failed: {failed[key]} | | | | | |")
                continue
            if key not in measured:
                continue
            rate = statistics.median(m[0] for m in measured[key])
            ratio = f"{rate / base:.2f}" if base else "n/a"
            efficiency = statistics.median(per_cpu(m) for m in measured[key])
            cpu_ratio = f"{efficiency / base_cpu:.2f}" if base_cpu else "n/a"
            srv = statistics.median(m[1] for m in measured[key])
            load = statistics.median(m[2] for m in measured[key])
            out.append(f"| {case.name} | {name} | {rate:,.0f} | {ratio} | {efficiency:,.0f} | {cpu_ratio} "
                       f"| {srv:.0f} | {load:.0f} |")
    out.append("")
    out.extend(f"- `{case.name}`: {case.description}" for case in cases)
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--servers", default=",".join(servers()),
                        help=f"comma-separated; {REFERENCE} is always added (the ratios need it)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of "
                        + ",".join(CASES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per case")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds per case")
    parser.add_argument("--connections", type=int, default=None,
                        help="override every case's connection count (a smoke run)")
    parser.add_argument("--quick", action="store_true", help="1 round, 1 s per case, 0.2 s warm-up")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument("--logs", type=Path, default=None, help="folder for the servers' logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 1.0, 0.2
    known = servers()
    names = list(dict.fromkeys([REFERENCE, *args.servers.split(",")]))
    unknown = [name for name in names if name not in known]
    unknown += [case for case in args.cases.split(",") if case not in CASES]
    if unknown:
        print(f"unknown: {', '.join(unknown)} (servers: {', '.join(known)}; cases: {', '.join(CASES)})",
              file=sys.stderr)
        return 2
    skipped = [(name, known[name].unavailable) for name in names if known[name].unavailable]
    names = [name for name in names if not known[name].unavailable]
    cases = [CASES[name] for name in args.cases.split(",")]
    if args.connections is not None:
        cases = [Case(c.name, args.connections, c.depth, c.size, c.kind, c.description) for c in cases]
    logs = args.logs or ROOT / "benchmarks" / "results" / time.strftime("websocket-%Y%m%d-%H%M%S")
    logs.mkdir(parents=True, exist_ok=True)
    pin(args.load_cpu)
    measured, failed = run(names, cases, args.rounds, args.warmup, args.seconds, args.server_cpu, logs)
    print(report(names, cases, args.rounds, measured, failed))
    for name, why in skipped:
        print(f"- skipped `{name}`: {why}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
