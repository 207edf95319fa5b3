"""Shared pieces of the stress tests: server processes with a raised (or
lowered) RLIMIT_NOFILE, their fd count and RSS from /proc, the project's C
load generator, and a log scan for tracebacks.

Transport variants are named by ``TRANSPORTS`` (tcp, unix, and tls over
TCP with a certificate made at test time)."""

from __future__ import annotations

import os
import resource
import socket as stdlib_socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the benchmarks package is only in the checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import native  # noqa: E402
from benchmarks.loadgen import parse_key_values  # noqa: E402

#: The transports the byte-for-byte tests run over.
TRANSPORTS = ("tcp", "unix", "tls")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with stdlib_socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fd_count(pid: int) -> int:
    """Open file descriptors of process ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def accepts(host: str, port: int) -> bool:
    """True when a TCP connect to host:port succeeds now."""
    try:
        with stdlib_socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _nofile(limit: int):  # type: ignore[no-untyped-def]
    def set_limit() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < limit:
            hard = limit          # needs root (CI); fails loudly elsewhere
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    return set_limit


class ServerProcess:
    """A Python server run as a child with RLIMIT_NOFILE = ``nofile``, its
    stdout+stderr collected (``lines``) by a thread."""

    def __init__(self, argv: Sequence[str], port: int, nofile: int = 4096,
                 env: Optional[Dict[str, str]] = None, host: str = "127.0.0.1") -> None:
        self.port = port
        full_env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **(env or {}))
        self.process = subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_nofile(nofile))
        self.lines: List[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 20
        while not accepts(host, port):
            if self.process.poll() is not None:
                raise AssertionError(f"{argv} exited at start: {self.lines}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{argv} never listened: {self.lines}")
            time.sleep(0.02)

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.process.pid

    def tracebacks(self) -> List[str]:
        """Log lines that show an exception escaped somewhere."""
        return [line for line in self.lines if "Traceback" in line]

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, return the exit code (kill after ``timeout``)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return int(self.process.returncode)


def loadgen_binary(build_dir: Path) -> Path:
    """The project's load generator (benchmarks/csrc/loadgen.c), compiled into ``build_dir``."""
    return native.build(native.loadgen_source(ROOT), "loadgen", build_dir)


def run_loadgen(binary: Path, port: int, *args: str, timeout: float = 150) -> Dict[str, str]:
    """Run the load generator against 127.0.0.1:port; its result fields
    (plus ``stderr``). Fails when it exits non-zero."""
    completed = subprocess.run([str(binary), "-H", "127.0.0.1", "-p", str(port), *args],
                               capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stderr
    result = [line for line in completed.stdout.splitlines() if line.startswith("mode=")]
    assert len(result) == 1, completed.stdout
    fields = parse_key_values(result[0])
    fields["stderr"] = completed.stderr
    return fields


class PeakSampler:
    """Samples a process's fd count and RSS every ``step`` seconds in a thread."""

    def __init__(self, pid: int, step: float = 0.05) -> None:
        self.pid, self.step = pid, step
        self.max_fds = 0
        self.max_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.max_fds = max(self.max_fds, fd_count(self.pid))
                self.max_rss = max(self.max_rss, rss(self.pid))
            except (OSError, RuntimeError):
                return
            self._stop.wait(self.step)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
