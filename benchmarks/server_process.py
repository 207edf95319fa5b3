"""One echo server under test: start it pinned, wait until it accepts, measure, stop.

The server runs in its own session (so the whole process group can be
stopped), with stdout/stderr going to a log file.  Readiness is decided by
polling ``connect()`` on its port, never by sleeping; the server's own
"listening" line only ends up in the log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from benchmarks.placement import Placement

#: How long a server may take from exec to accepting connections.
START_TIMEOUT_S = 20.0
#: Interval between connect() probes while waiting for the port.
PROBE_INTERVAL_S = 0.02


class ServerStartError(RuntimeError):
    """The server exited or never accepted a connection."""


def pick_free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def accepts_connections(host: str, port: int, timeout: float = 0.2) -> bool:
    """True if a TCP connect to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (``VmRSS`` in ``/proc/PID/status``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class ServerProcess:
    """A running echo server; use as a context manager so it is always stopped."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        log_path: Path,
        placement: Placement,
        cwd: Path,
        env: Mapping[str, str],
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.host = host
        self.log_path = log_path
        self.placement = placement
        self.cwd = cwd
        self.env = dict(env)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """Pid of the server (taskset execs it, so this is the Python/C process)."""
        assert self._process is not None, "server not started"
        return self._process.pid

    def start(self, timeout: float = START_TIMEOUT_S) -> float:
        """Spawn the server and wait until its port accepts; returns seconds taken."""
        command = self.placement.command(self.argv, self.placement.server_cpu)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            log.write(("$ " + " ".join(command) + "\n").encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self.placement.preexec(self.placement.server_cpu),
            )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerStartError(
                    f"{self.name} exited with code {self._process.returncode} "
                    f"before listening:\n{self.log_tail()}"
                )
            if accepts_connections(self.host, self.port):
                return time.monotonic() - started
            time.sleep(PROBE_INTERVAL_S)
        raise ServerStartError(
            f"{self.name} did not accept on port {self.port} within {timeout:g}s:\n{self.log_tail()}"
        )

    def is_running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def death_notice(self) -> str:
        """Why the server is gone: exit code (or signal) and where its log is."""
        code = None if self._process is None else self._process.poll()
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"server died ({how}); log {self.log_path}"

    def rss_kib(self) -> int:
        """The server's current resident set size in KiB."""
        return read_rss_kib(self.pid)

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the server's log, indented, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "    (no log)"
        tail = text.splitlines()[-lines:]
        return "\n".join("    " + line for line in tail) or "    (empty log)"

    def stop(self, grace_s: float = 3.0) -> None:
        """SIGTERM the server's process group, SIGKILL it if it lingers."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=grace_s)
                break
            except subprocess.TimeoutExpired:
                continue
        process.poll()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
