"""TLS echo: gsocket (event API and blocking socket API) against gevent's
``StreamServer`` with an ``ssl_context``, in the same run.

    python -m benchmarks.bench_tls                 # 3 rounds, 3 s per case
    python -m benchmarks.bench_tls --quick         # 1 round, 1 s per case

Each round starts every server fresh (``benchmarks/servers/tls_echo.py``,
pinned to CPU 0) and runs every case against it with a load generator in
another process pinned to CPU 1: this file again (``--loadgen``), asyncio
with stdlib ``ssl`` (the C load generator of the other benchmarks speaks no
TLS). Servers are interleaved round by round, so a busy machine hurts all
alike. The certificate (EC P-256, TLS 1.3 by default) is made with the
``openssl`` binary at start. Cases:

- ``pp10`` / ``pp100``: 10 / 100 connections, each a 128-byte
  request-reply loop; round trips per second.
- ``bulk``: one connection streaming 64 KiB writes with up to 1 MiB in
  flight; echoed MiB per second.
- ``handshake``: 8 clients in a loop of connect, handshake, one 16-byte echo,
  close; connections per second.

The load generator is Python too, and on two CPUs it, not the server, is
often the limit: then the rates of all servers come out alike. So the
report also gives each server's CPU time per operation (user + system, from
/proc, sampled once the connections are up), which does not depend on who
the bottleneck is. Medians over rounds and ratios to gevent, as Markdown
tables on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("gsocket-event", "gsocket-socket", "gevent")
CASES = ("pp10", "pp100", "bulk", "handshake")
UNITS = {"pp10": "round trips/s", "pp100": "round trips/s", "bulk": "MiB/s",
         "handshake": "connections/s"}
WARMUP = 0.3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pinned(cpu: int, argv: Sequence[str]) -> List[str]:
    """``argv`` run on one CPU (``taskset``), when the machine has 2+."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *argv]
    return list(argv)


def make_certificate(directory: Path) -> Tuple[Path, Path]:
    """A self-signed EC certificate for localhost / 127.0.0.1: (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def start_server(kind: str, cert: Path, key: Path) -> Tuple[subprocess.Popen, int]:
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.servers.tls_echo", "--kind", kind, "--cert",
            str(cert), "--key", str(key), "--port", str(port)]
    process = subprocess.Popen(pinned(0, argv), cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{kind} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind}: nothing listens on {port}") from None
            time.sleep(0.05)


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(case: str, server: subprocess.Popen, port: int, cert: Path,
             seconds: float) -> Tuple[float, float]:
    """(the case's figure, server CPU microseconds per operation). The CPU
    is sampled when the load generator's connections are set up and when
    it is done, against the operations it counted in between."""
    argv = pinned(1, [sys.executable, "-m", "benchmarks.bench_tls", "--loadgen", case,
                      "--port", str(port), "--cert", str(cert), "--seconds", str(seconds)])
    with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as loadgen_process:
        assert loadgen_process.stdout is not None and loadgen_process.stderr is not None
        ready = loadgen_process.stdout.readline()
        before = cpu_seconds(server.pid)
        try:
            out, err = loadgen_process.communicate(timeout=60 + 3 * seconds)
        except subprocess.TimeoutExpired:
            loadgen_process.kill()
            raise
        after = cpu_seconds(server.pid)
    if loadgen_process.returncode != 0 or ready.strip() != "ready":
        raise RuntimeError(f"load generator failed ({case}): {err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    operations = result["operations"]
    return float(result["value"]), (after - before) * 1e6 / operations if operations else 0.0


def _ready() -> None:
    """Tell the runner that the connections are set up (CPU sampling starts)."""
    print("ready", flush=True)


# ---------------------------------------------------------------------- the load generator

async def _connect(port: int, context: ssl.SSLContext):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname="localhost")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def _pingpong(port: int, context: ssl.SSLContext, connections: int, seconds: float) -> float:
    pairs = [await _connect(port, context) for _ in range(connections)]
    _ready()
    loop = asyncio.get_running_loop()
    message = b"p" * 128
    counts = [0, 0]          # in the window, in all
    window = {"start": loop.time() + WARMUP}
    window["stop"] = window["start"] + seconds

    async def one(reader, writer) -> None:
        while True:
            writer.write(message)
            await reader.readexactly(len(message))
            counts[1] += 1
            now = loop.time()
            if now >= window["stop"]:
                break
            if now >= window["start"]:
                counts[0] += 1

    await asyncio.gather(*(one(r, w) for r, w in pairs))
    for _, writer in pairs:
        writer.close()
    return counts[0] / seconds, counts[1]


async def _bulk(port: int, context: ssl.SSLContext, seconds: float) -> float:
    reader, writer = await _connect(port, context)
    _ready()
    loop = asyncio.get_running_loop()
    chunk = os.urandom(64 * 1024)
    in_flight = [0]
    start = loop.time() + WARMUP
    stop = start + seconds
    counted = [0, 0]

    async def write() -> None:
        while loop.time() < stop:
            if in_flight[0] < 1024 * 1024:
                writer.write(chunk)
                in_flight[0] += len(chunk)
                await writer.drain()
            else:
                await asyncio.sleep(0)

    async def read() -> None:
        while loop.time() < stop:
            data = await reader.read(1 << 20)
            if not data:
                raise RuntimeError("server closed")
            in_flight[0] -= len(data)
            counted[1] += len(data)
            if loop.time() >= start:
                counted[0] += len(data)

    await asyncio.gather(write(), read())
    writer.close()
    return counted[0] / seconds / (1024 * 1024), counted[1] / (1024 * 1024)


async def _handshakes(port: int, context: ssl.SSLContext, seconds: float) -> float:
    _ready()
    loop = asyncio.get_running_loop()
    start = loop.time() + WARMUP
    stop = start + seconds
    counted = [0, 0]

    async def one() -> None:
        while loop.time() < stop:
            reader, writer = await _connect(port, context)
            writer.write(b"0123456789abcdef")
            await reader.readexactly(16)
            writer.close()
            counted[1] += 1
            if loop.time() >= start:
                counted[0] += 1

    await asyncio.gather(*(one() for _ in range(8)))
    return counted[0] / seconds, counted[1]


def loadgen(case: str, port: int, cert: str, seconds: float) -> Tuple[float, float]:
    """Run one case against 127.0.0.1:port: its figure (see UNITS), and the
    operations (round trips, MiB, connections) done after "ready"."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cert)
    if case == "pp10":
        work = _pingpong(port, context, 10, seconds)
    elif case == "pp100":
        work = _pingpong(port, context, 100, seconds)
    elif case == "bulk":
        work = _bulk(port, context, seconds)
    else:
        work = _handshakes(port, context, seconds)
    return asyncio.run(work)


# ---------------------------------------------------------------------- main

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="1 round, 1 s per case")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--loadgen", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        value, operations = loadgen(args.loadgen, args.port, args.cert, args.seconds)
        print(json.dumps({"value": value, "operations": operations}))
        return 0
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    if shutil.which("openssl") is None:
        print("the openssl binary is needed (Debian: openssl)", file=sys.stderr)
        return 2
    servers = [s for s in args.servers.split(",") if s]
    if "gevent" not in servers:
        servers.append("gevent")
    cases = [c for c in args.cases.split(",") if c]
    measured: Dict[Tuple[str, str], List[float]] = {}
    cpu: Dict[Tuple[str, str], List[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        cert, key = make_certificate(Path(directory))
        for round_number in range(1, args.rounds + 1):
            for server in servers:
                process, port = start_server(server, cert, key)
                try:
                    for case in cases:
                        value, cost = run_case(case, process, port, cert, args.seconds)
                        measured.setdefault((server, case), []).append(value)
                        cpu.setdefault((server, case), []).append(cost)
                        print(f"round {round_number}/{args.rounds}: {server} {case}: "
                              f"{value:,.1f} {UNITS[case]}, server CPU {cost:,.1f} us/op",
                              file=sys.stderr)
                finally:
                    stop_server(process)
    print(f"TLS echo, medians of {args.rounds} round(s) of {args.seconds:g} s; servers on CPU 0, "
          f"the asyncio load generator on CPU 1; ratio = server / gevent StreamServer(ssl_context)\n")
    print("| case | unit | " + " | ".join(servers) + " | " +
          " | ".join(f"{s} ratio" for s in servers if s != "gevent") + " |")
    print("|---|---|" + "---|" * (2 * len(servers) - 1))
    for case in cases:
        medians = {s: statistics.median(measured.get((s, case), [0.0])) for s in servers}
        base = medians["gevent"]
        ratios = [f"{medians[s] / base:.2f}" if base else "nan" for s in servers if s != "gevent"]
        print(f"| {case} | {UNITS[case]} | " + " | ".join(f"{medians[s]:,.1f}" for s in servers)
              + " | " + " | ".join(ratios) + " |")
    print("\nServer CPU per operation (microseconds per round trip / MiB / connection; "
          "lower is better; ratio = gevent's / the server's, so above 1 is cheaper than gevent)\n")
    print("| case | " + " | ".join(servers) + " | " +
          " | ".join(f"{s} ratio" for s in servers if s != "gevent") + " |")
    print("|---|" + "---|" * (2 * len(servers) - 1))
    for case in cases:
        costs = {s: statistics.median(cpu.get((s, case), [0.0])) for s in servers}
        base = costs["gevent"]
        ratios = [f"{base / costs[s]:.2f}" if costs[s] else "nan" for s in servers if s != "gevent"]
        print(f"| {case} | " + " | ".join(f"{costs[s]:,.1f}" for s in servers)
              + " | " + " | ".join(ratios) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
