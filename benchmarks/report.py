"""The text report: the per-case table, the ratio matrix, and the load-generator check.

Tables are GitHub markdown so they can be pasted into ``benchmarks/README.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.cases import CASES
from benchmarks.catalog import CEILING_SERVER, REFERENCE_SERVER
from benchmarks.results import CaseSummary

#: Load-generator CPU (percent of one core) from which it may be the limit.
LOADGEN_BUSY_PCT = 90.0
#: Below this server CPU, with the load generator not busy either, the server
#: was waiting for a CPU it did not get: other work on the machine.
SERVER_STARVED_PCT = 80.0


def format_value(value: float | None, unit: str) -> str:
    """A figure with as many decimals as its unit deserves."""
    if value is None:
        return "-"
    if unit == "KiB/conn":
        return f"{value:.2f}"
    if unit == "MB/s":
        return f"{value:,.1f}"
    return f"{value:,.0f}"


def _num(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def case_table(summaries: Sequence[CaseSummary], servers: Sequence[str], cases: Sequence[str]) -> str:
    """One row per case x server: median, ratio to gevent, latency, CPU, spread."""
    by_key = {(s.server, s.case): s for s in summaries}
    lines = [
        f"| case | server | median | unit | x {REFERENCE_SERVER} | p50 us | p99 us "
        "| srv CPU % | lg CPU % | spread | rounds |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        for server in servers:
            s = by_key.get((server, case))
            if s is None:
                continue
            lines.append(
                f"| {case} | {server} | {format_value(s.median, s.unit)} | {s.unit} | {_ratio(s.ratio_to_reference)} "
                f"| {_num(s.p50_us)} | {_num(s.p99_us)} | {_num(s.srv_cpu)} | {_num(s.lg_cpu)} "
                f"| {_num(None if s.spread is None else s.spread * 100, 0, '%')} | {s.rounds} |")
    return "\n".join(lines)


def ratio_matrix(summaries: Sequence[CaseSummary], servers: Sequence[str], cases: Sequence[str]) -> str:
    """Servers x cases, each cell the ratio of medians to gevent (StreamServer)."""
    by_key = {(s.server, s.case): s for s in summaries}
    header = [f"{c} ({CASES[c].unit}{', lower is better' if not CASES[c].higher_is_better else ''})"
              for c in cases]
    lines = ["| server | " + " | ".join(header) + " |", "|---|" + "---:|" * len(cases)]
    for server in servers:
        cells = []
        for case in cases:
            s = by_key.get((server, case))
            cells.append("-" if s is None else
                         f"{format_value(s.median, s.unit)} ({_ratio(s.ratio_to_reference)}x)")
        lines.append(f"| {server} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def loadgen_headroom_notes(summaries: Sequence[CaseSummary], cases: Sequence[str]) -> list[str]:
    """Evidence that the load generator is not what limits the Python servers.

    Per case: how far beyond the fastest Python server the same load
    generator drives the C epoll server, and the load generator's own CPU;
    plus a NOTE wherever that CPU is near one full core.
    """
    by_case: dict[str, list[CaseSummary]] = {}
    for s in summaries:
        by_case.setdefault(s.case, []).append(s)
    notes: list[str] = []
    for case in cases:
        if not CASES[case].higher_is_better:
            continue
        rows = [s for s in by_case.get(case, []) if s.median is not None]
        ceiling = next((s for s in rows if s.server == CEILING_SERVER), None)
        others = [s for s in rows if s.server != CEILING_SERVER]
        if not rows:
            continue
        busiest_other = max((s.lg_cpu for s in others if s.lg_cpu is not None), default=None)
        if ceiling is not None and others:
            fastest = max(others, key=lambda s: s.median or 0.0)
            headroom = (ceiling.median or 0.0) / fastest.median if fastest.median else None
            notes.append(
                f"{case}: the load generator drives C epoll at {format_value(ceiling.median, ceiling.unit)} "
                f"{ceiling.unit} = {_ratio(headroom)}x the fastest Python server ({fastest.server}), "
                f"using {_num(ceiling.lg_cpu)}% of a core there and at most {_num(busiest_other)}% "
                "against the Python servers.")
        elif ceiling is None:
            notes.append(f"{case}: {CEILING_SERVER} not measured; load generator CPU at most "
                         f"{_num(busiest_other)}% of a core.")
        for s in rows:
            if s.lg_cpu is not None and s.lg_cpu >= LOADGEN_BUSY_PCT:
                where = ("the C ceiling is then the load generator's limit, not the server's"
                         if s.server == CEILING_SERVER else
                         "this figure may be limited by the load generator, not the server")
                notes.append(f"NOTE: {case} vs {s.server}: load generator used {s.lg_cpu:.0f}% of a core; {where}.")
    starved = [f"{s.server}/{s.case} {s.srv_cpu:.0f}%" for s in summaries
               if s.server != CEILING_SERVER and s.srv_cpu is not None and s.srv_cpu < SERVER_STARVED_PCT
               and (s.lg_cpu or 0.0) < LOADGEN_BUSY_PCT]
    if starved:
        notes.append("NOTE: neither side saturated in " + ", ".join(starved) + " (server CPU; load generator "
                     "not busy either): the server's CPU was probably shared with other work on the machine, "
                     "so trust the ratios more than the absolute figures.")
    return notes
