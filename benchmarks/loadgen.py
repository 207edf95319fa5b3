"""Run the C load generator (``loadgen.c``) and read its result line.

Every run prints one ``key=value ...`` line, for example::

    mode=pingpong conns=100 size=64 srv_cpu=99 secs=5.00 msgs=373000
    msgs_s=74600 MB_s=4.77 p50_us=1300.5 p90_us=... p99_us=2100.5 ...
    lg_cpu=41 setup_s=0.01 conn_err=0 err=0 last_err=""

``lg_cpu`` is the load generator's own CPU in the measured window (100 = one
core) and ``srv_cpu`` the server's (from ``/proc/PID/stat``, via ``-P``).
The idle mode first prints ``READY conns=N confirmed=N setup_s=... errors=...``
once every connection has done one round trip, then holds them.
"""

from __future__ import annotations

import selectors
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.placement import Placement

#: Seconds allowed on top of warm-up + measurement: the load generator gives
#: connection setup up to 120 s itself before it starts measuring anyway.
SETUP_ALLOWANCE_S = 150.0


class LoadgenError(RuntimeError):
    """The load generator failed, hung, or printed no result line."""


def parse_key_values(line: str) -> dict[str, str]:
    """``'a=1 b="x y"'`` -> ``{'a': '1', 'b': 'x y'}``; words without ``=`` are skipped."""
    fields: dict[str, str] = {}
    for word in shlex.split(line):
        key, sep, value = word.partition("=")
        if sep:
            fields[key] = value
    return fields


@dataclass(frozen=True)
class LoadgenReport:
    """One parsed result line."""

    line: str
    fields: dict[str, str]

    def number(self, key: str) -> float | None:
        """The field as a float, or None when absent or not numeric."""
        try:
            return float(self.fields[key])
        except (KeyError, ValueError):
            return None

    @property
    def errors(self) -> int:
        """Connect errors plus errors on established connections."""
        return int((self.number("conn_err") or 0) + (self.number("err") or 0))

    @property
    def last_error(self) -> str:
        """The load generator's last error message ('' when none)."""
        return self.fields.get("last_err", "")


class Loadgen:
    """The compiled load generator, pinned to the load-generator CPU."""

    def __init__(self, binary: Path, placement: Placement, host: str = "127.0.0.1",
                 frames: bool = False) -> None:
        self.binary = binary
        self.placement = placement
        self.host = host
        #: Every message a netpack frame (the load generator's ``-f``).
        self.frames = frames

    def _command(
        self,
        port: int,
        mode: str,
        conns: int,
        size: int,
        seconds: float,
        warmup: float | None = None,
        server_pid: int | None = None,
    ) -> list[str]:
        argv = [
            str(self.binary),
            "-H",
            self.host,
            "-p",
            str(port),
            "-m",
            mode,
            "-c",
            str(conns),
            "-s",
            str(size),
            "-t",
            f"{seconds:g}",
        ]
        if warmup is not None:
            argv += ["-w", f"{warmup:g}"]
        if server_pid is not None:
            argv += ["-P", str(server_pid)]
        if self.frames:
            argv.append("-f")
        return self.placement.command(argv, self.placement.loadgen_cpu)

    def run(
        self,
        port: int,
        mode: str,
        conns: int,
        size: int,
        seconds: float,
        warmup: float,
        server_pid: int | None = None,
    ) -> LoadgenReport:
        """Run a timed mode (pingpong, bulk, connect) to completion."""
        command = self._command(port, mode, conns, size, seconds, warmup, server_pid)
        try:
            completed = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=seconds + warmup + SETUP_ALLOWANCE_S,
                preexec_fn=self.placement.preexec(self.placement.loadgen_cpu),
            )
        except subprocess.TimeoutExpired as exc:
            raise LoadgenError(f"load generator did not finish: {' '.join(command)}") from exc
        return self._report(completed.stdout, completed.stderr, completed.returncode, "mode=")

    def hold_idle(self, port: int, conns: int, hold_seconds: float) -> IdleHold:
        """Start the idle mode; the caller waits for READY, samples, then finishes."""
        command = self._command(port, "idle", conns, 8, hold_seconds)
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=self.placement.preexec(self.placement.loadgen_cpu),
        )
        return IdleHold(process, hold_seconds)

    @staticmethod
    def _report(stdout: str, stderr: str, returncode: int | None, prefix: str) -> LoadgenReport:
        lines = [line for line in stdout.splitlines() if line.startswith(prefix)]
        if returncode != 0 or not lines:
            detail = (stderr.strip() or stdout.strip() or "no output")[-500:]
            raise LoadgenError(f"load generator exited with {returncode}: {detail}")
        return LoadgenReport(lines[-1], parse_key_values(lines[-1]))


class IdleHold:
    """A running idle-mode load generator holding connections open."""

    def __init__(self, process: subprocess.Popen[str], hold_seconds: float) -> None:
        self.process = process
        self.hold_seconds = hold_seconds
        self._stdout_seen: list[str] = []

    def wait_ready(self, timeout: float = SETUP_ALLOWANCE_S) -> LoadgenReport:
        """Block until the READY line (all connections opened and confirmed)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=0.5):
                    if self.process.poll() is not None:
                        break
                    continue
                line = self.process.stdout.readline()
                if not line:
                    break
                self._stdout_seen.append(line)
                if line.startswith("READY"):
                    return LoadgenReport(line.strip(), parse_key_values(line))
        self.kill()
        raise LoadgenError("idle load generator never became READY: " + "".join(self._stdout_seen)[-300:])

    def finish(self) -> LoadgenReport:
        """Wait for the hold and the final ping; return the ``mode=idle`` line."""
        try:
            stdout, stderr = self.process.communicate(timeout=self.hold_seconds + 60)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise LoadgenError("idle load generator did not finish") from exc
        return Loadgen._report(
            "".join(self._stdout_seen) + stdout, stderr, self.process.returncode, "mode=idle"
        )

    def kill(self) -> None:
        """Stop the load generator (used on errors and interrupts)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()
