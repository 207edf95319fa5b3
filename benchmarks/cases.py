"""The benchmark cases: what each measures and how it drives the load generator.

==========  ===========================================================  ========
case        what the load generator does                                 figure
==========  ===========================================================  ========
idle        hold N connections (one round trip each), server RSS delta   KiB/conn
pp100       100 connections, 64-byte pingpong                            msgs/s
pp1000      1000 connections, 64-byte pingpong                           msgs/s
pp100_4k    100 connections, 4 KiB pingpong                              msgs/s
bulk1       1 connection streaming 64 KiB chunks, echoed back            MB/s
connect     100 parallel loops of connect / 8-byte ping / close          conns/s
==========  ===========================================================  ========

``idle`` runs first on a freshly started server, so its baseline RSS is not
inflated by buffers the other cases leave behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from benchmarks.loadgen import Loadgen, LoadgenError, LoadgenReport
from benchmarks.results import Measurement
from benchmarks.server_process import ServerProcess


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    ``connections`` of None means "from the settings" (idle: ``idle_conns``,
    connect: ``connect_parallel``).  ``metric`` is the load generator's key
    holding the figure (unused for idle, which measures RSS itself).
    """

    name: str
    description: str
    mode: str
    size: int
    unit: str
    metric: str
    connections: int | None
    higher_is_better: bool = True


CASES: dict[str, Case] = {
    case.name: case
    for case in [
        Case(
            "idle",
            "server RSS growth per held idle connection",
            "idle",
            8,
            "KiB/conn",
            "",
            None,
            higher_is_better=False,
        ),
        Case("pp100", "pingpong 64 B, 100 connections", "pingpong", 64, "msgs/s", "msgs_s", 100),
        Case("pp1000", "pingpong 64 B, 1000 connections", "pingpong", 64, "msgs/s", "msgs_s", 1000),
        Case("pp100_4k", "pingpong 4 KiB, 100 connections", "pingpong", 4096, "msgs/s", "msgs_s", 100),
        Case("bulk1", "bulk 64 KiB chunks, 1 connection", "bulk", 65536, "MB/s", "MB_s", 1),
        Case("connect", "connect + ping + close, 100 in parallel", "connect", 8, "conns/s", "msgs_s", None),
    ]
}


@dataclass(frozen=True)
class CaseSettings:
    """Durations and connection counts shared by all cases of a run."""

    seconds: float
    warmup: float
    idle_conns: int
    connect_parallel: int = 100
    #: pause before each RSS sample, so allocations settle
    idle_settle: float = 1.0

    @property
    def idle_hold(self) -> float:
        """How long the idle load generator holds its connections."""
        return max(self.seconds, 2 * self.idle_settle + 0.5)

    def connections(self, case: Case) -> int:
        """The connection count ``case`` uses under these settings."""
        if case.connections is not None:
            return case.connections
        return self.idle_conns if case.mode == "idle" else self.connect_parallel


def run_case(
    case: Case, server: ServerProcess, loadgen: Loadgen, settings: CaseSettings, round_number: int
) -> Measurement:
    """Run ``case`` once against a running server; failures become a Measurement too."""
    measurement = Measurement(server=server.name, round=round_number, case=case.name, unit=case.unit)
    try:
        if case.mode == "idle":
            _measure_idle(measurement, server, loadgen, settings)
        else:
            report = loadgen.run(
                server.port,
                case.mode,
                settings.connections(case),
                case.size,
                settings.seconds,
                settings.warmup,
                server_pid=server.pid,
            )
            _fill_from_report(measurement, case, report)
    except (LoadgenError, OSError, RuntimeError) as exc:
        measurement.failure = str(exc)
    if not server.is_running():
        measurement.value = None
        earlier = f"; {measurement.failure}" if measurement.failure else ""
        measurement.failure = f"{server.death_notice()}{earlier}\n{server.log_tail()}"
    return measurement


def _fill_from_report(measurement: Measurement, case: Case, report: LoadgenReport) -> None:
    measurement.loadgen_line = report.line
    measurement.value = report.number(case.metric)
    if case.mode != "bulk":
        measurement.p50_us = report.number("p50_us")
        measurement.p99_us = report.number("p99_us")
    measurement.lg_cpu = report.number("lg_cpu")
    measurement.srv_cpu = report.number("srv_cpu")
    measurement.errors = report.errors
    if report.last_error:
        measurement.detail["last_err"] = report.last_error


def _measure_idle(
    measurement: Measurement, server: ServerProcess, loadgen: Loadgen, settings: CaseSettings
) -> None:
    """RSS before, RSS while N connections are held; KiB per confirmed connection."""
    time.sleep(settings.idle_settle)
    rss_before = server.rss_kib()
    hold = loadgen.hold_idle(server.port, settings.idle_conns, settings.idle_hold)
    try:
        ready = hold.wait_ready()
        time.sleep(settings.idle_settle)
        rss_held = server.rss_kib()
    except BaseException:
        hold.kill()
        raise
    final = hold.finish()
    confirmed = int(ready.number("confirmed") or 0)
    measurement.loadgen_line = final.line
    measurement.errors = final.errors
    measurement.value = (rss_held - rss_before) / confirmed if confirmed else None
    measurement.detail.update(
        rss_before_kib=rss_before,
        rss_held_kib=rss_held,
        confirmed=confirmed,
        alive=f"{final.fields.get('alive', '?')}/{settings.idle_conns}",
        setup_s=final.fields.get("setup_s", "?"),
        final_ping_s=final.fields.get("final_ping_s", "?"),
    )
    if confirmed < settings.idle_conns:
        measurement.failure = f"only {confirmed} of {settings.idle_conns} connections were accepted"
