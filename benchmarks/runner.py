"""The interleaved benchmark loop: round 1 of every server, then round 2, ...

Interleaving spreads the machine's slow drifts (other tenants, thermal state)
over all servers instead of penalising whichever ran last.  Each server is
started fresh for each round, warmed up with a short one-connection pingpong,
and then runs every selected case in order (idle first).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.cases import Case, CaseSettings, run_case
from benchmarks.catalog import ServerSpec
from benchmarks.loadgen import Loadgen, LoadgenError
from benchmarks.placement import Placement
from benchmarks.progress import Progress
from benchmarks.results import Measurement
from benchmarks.server_process import ServerProcess, ServerStartError, pick_free_port


@dataclass(frozen=True)
class RunPlan:
    """What to run: servers (all available), cases, rounds and durations.

    ``server_warmup`` is the one-connection pingpong after each start that
    pays for lazy imports and first allocations; it is not reported.
    """

    servers: list[ServerSpec]
    cases: list[Case]
    rounds: int
    settings: CaseSettings
    server_warmup: float

    @property
    def total_steps(self) -> int:
        """Number of (round, server, case) measurements planned."""
        return self.rounds * len(self.servers) * len(self.cases)


@dataclass
class RunOutcome:
    """All measurements taken, and whether the user interrupted the run."""

    measurements: list[Measurement] = field(default_factory=list)
    #: the same timed cases measured with the --cross-check load generator
    cross_measurements: list[Measurement] = field(default_factory=list)
    interrupted: bool = False


def server_environment(repo_root: Path) -> dict[str, str]:
    """The environment servers run in: gsocket importable from the checkout, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo_root), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def describe_measurement(m: Measurement) -> str:
    """One human line for a finished measurement."""
    head = f"  round {m.round} {m.server:<15} {m.case:<9}"
    if m.value is None:
        return f"{head} FAILED: {(m.failure or '').splitlines()[0] if m.failure else ''}"
    parts = [
        f"{m.value:>12,.2f} {m.unit}" if m.unit in ("MB/s", "KiB/conn") else f"{m.value:>12,.0f} {m.unit}"
    ]
    if m.p50_us is not None:
        parts.append(f"p50 {m.p50_us:,.0f}us p99 {m.p99_us or 0:,.0f}us")
    if m.srv_cpu is not None or m.lg_cpu is not None:
        parts.append(f"srv_cpu {m.srv_cpu or 0:.0f}% lg_cpu {m.lg_cpu or 0:.0f}%")
    if m.errors:
        parts.append(f"errors {m.errors}")
    if m.failure:
        parts.append("WARNING: " + m.failure.splitlines()[0])
    return head + "  " + "  ".join(parts)


class BenchmarkRunner:
    """Runs a RunPlan and collects Measurements."""

    def __init__(
        self,
        plan: RunPlan,
        loadgen: Loadgen,
        placement: Placement,
        repo_root: Path,
        log_dir: Path,
        env: Mapping[str, str],
        cross_loadgen: Loadgen | None = None,
    ) -> None:
        self.plan = plan
        self.loadgen = loadgen
        self.placement = placement
        self.repo_root = repo_root
        self.log_dir = log_dir
        self.env = env
        self.cross_loadgen = cross_loadgen

    def run(self, progress: Progress) -> RunOutcome:
        """All rounds, interleaved; Ctrl-C stops early and keeps what was measured."""
        outcome = RunOutcome()
        try:
            for round_number in range(1, self.plan.rounds + 1):
                for spec in self.plan.servers:
                    self._run_server_round(spec, round_number, progress, outcome)
        except KeyboardInterrupt:
            outcome.interrupted = True
            progress.note("interrupted: reporting what was measured so far")
        return outcome

    def _run_server_round(
        self, spec: ServerSpec, round_number: int, progress: Progress, outcome: RunOutcome
    ) -> None:
        """Start ``spec`` fresh, run every case on it, append to ``outcome`` as they finish."""
        measurements = outcome.measurements
        where = f"round {round_number}/{self.plan.rounds} {spec.name}"
        progress.step(f"{where}: starting")
        port = pick_free_port()
        server = ServerProcess(
            spec.name,
            spec.command(port),
            port,
            self.log_dir / f"{spec.name}-round{round_number}.log",
            self.placement,
            self.repo_root,
            self.env,
        )
        with server:
            try:
                server.start()
                self.loadgen.run(
                    port, "pingpong", 1, 64, self.plan.server_warmup, 0.0, server_pid=server.pid
                )
            except (ServerStartError, LoadgenError) as exc:
                progress.note(f"  round {round_number} {spec.name}: could not start/warm up: {exc}")
                progress.skip(len(self.plan.cases) - 1)
                measurements += [
                    Measurement(spec.name, round_number, case.name, case.unit, failure=f"start: {exc}")
                    for case in self.plan.cases
                ]
                return
            for index, case in enumerate(self.plan.cases):
                if index:
                    progress.step(f"{where} {case.name}")
                else:
                    progress.update(f"{where} {case.name}")
                measurement = run_case(case, server, self.loadgen, self.plan.settings, round_number)
                measurements.append(measurement)
                progress.note(describe_measurement(measurement))
                if self.cross_loadgen is not None and case.mode != "idle" and server.is_running():
                    cross = run_case(case, server, self.cross_loadgen, self.plan.settings, round_number)
                    outcome.cross_measurements.append(cross)
                    progress.note(describe_measurement(cross).replace("  round", "  cross-check round", 1))
                if not server.is_running():
                    progress.skip(len(self.plan.cases) - index - 1)
                    for rest in self.plan.cases[index + 1 :]:
                        measurements.append(
                            Measurement(
                                spec.name,
                                round_number,
                                rest.name,
                                rest.unit,
                                failure="server died in an earlier case",
                            )
                        )
                    break
