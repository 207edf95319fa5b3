"""redis-benchmark against examples/resp_server.py and a real redis-server in
the same run: requests/s of each, and the ratio, pipelined and not.

    python benchmarks/bench_resp.py                  # 3 rounds, -n 100000, -c 50
    python benchmarks/bench_resp.py --quick          # 1 round, -n 20000

Each round starts both servers fresh (pinned to CPU 0 with ``taskset`` when
it exists, redis-benchmark to CPU 1), runs every case against one, then the
other (interleaved, so that a busy machine hurts both alike), and stops
them. The report gives medians over rounds, as a Markdown table on stdout.
Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
TESTS = "ping,set,get,incr,mset"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pinned(cpu: int, argv: Sequence[str]) -> List[str]:
    """``argv`` run on one CPU (``taskset``), when the machine has 2+."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *argv]
    return list(argv)


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port} after {timeout} s")
            time.sleep(0.05)


def start_server(kind: str, cpu: int) -> Tuple[subprocess.Popen, int]:
    port = free_port()
    if kind == "redis-server":
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--loglevel", "warning"]
    else:
        argv = [sys.executable, str(ROOT / "examples" / "resp_server.py"), "--port", str(port),
                "--log-level", "WARNING"]
    process = subprocess.Popen(pinned(cpu, argv), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    return process, port


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_benchmark(port: int, cpu: int, requests: int, clients: int, pipeline: int) -> Dict[str, float]:
    """requests/s per redis-benchmark test, for one server."""
    argv = pinned(cpu, ["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", str(clients),
                        "-P", str(pipeline), "-t", TESTS, "--csv"])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {result.stderr}")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    return {row[0]: float(row[1]) for row in rows[1:] if len(row) > 1}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", "-n", type=int, default=100_000)
    parser.add_argument("--clients", "-c", type=int, default=50)
    parser.add_argument("--pipelines", default="1,16", help="comma-separated -P values (default 1,16)")
    parser.add_argument("--quick", action="store_true", help="1 round of 20000 requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests = 1, 20_000
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (Debian: redis-server, redis-tools)", file=sys.stderr)
            return 2
    pipelines = [int(value) for value in args.pipelines.split(",")]
    servers = ("resp_server.py", "redis-server")
    measured: Dict[Tuple[str, int, str], List[float]] = {}
    for round_number in range(1, args.rounds + 1):
        for pipeline in pipelines:
            for server in servers:
                print(f"round {round_number}/{args.rounds}: {server}, -P {pipeline}", file=sys.stderr)
                process, port = start_server(server, cpu=0)
                try:
                    for test, rps in run_benchmark(port, 1, args.requests, args.clients, pipeline).items():
                        measured.setdefault((server, pipeline, test), []).append(rps)
                finally:
                    stop_server(process)
    tests = list(dict.fromkeys(test for _, _, test in measured))        # in the order they ran
    print(f"redis-benchmark -n {args.requests} -c {args.clients}, medians of {args.rounds} round(s); "
          f"servers on CPU 0, redis-benchmark on CPU 1\n")
    print("| test | -P | resp_server.py req/s | redis-server req/s | ratio |")
    print("|---|---|---|---|---|")
    for pipeline in pipelines:
        for test in tests:
            ours = statistics.median(measured.get((servers[0], pipeline, test), [0.0]))
            theirs = statistics.median(measured.get((servers[1], pipeline, test), [0.0]))
            ratio = ours / theirs if theirs else float("nan")
            print(f"| {test} | {pipeline} | {ours:,.0f} | {theirs:,.0f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
