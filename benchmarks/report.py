"""The text report: the per-case table, the ratio matrix, and the load-generator check.

Tables are GitHub markdown so they can be pasted into ``benchmarks/README.md``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

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


def _cpu_with_max(summary: CaseSummary) -> str:
    if summary.lg_cpu is None:
        return "-"
    return f"{summary.lg_cpu:.0f} ({summary.lg_cpu_max or 0:.0f})"


def case_table(summaries: Sequence[CaseSummary], servers: Sequence[str], cases: Sequence[str]) -> str:
    """One row per case x server: median, ratio to gevent, latency, CPU, spread."""
    by_key = {(s.server, s.case): s for s in summaries}
    lines = [
        f"| case | server | median | unit | x {REFERENCE_SERVER} | p50 us | p99 us "
        "| srv CPU % | lg CPU % (max) | spread | rounds |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        for server in servers:
            s = by_key.get((server, case))
            if s is None:
                continue
            spread_pct = None if s.spread is None else s.spread * 100
            lines.append(
                f"| {case} | {server} | {format_value(s.median, s.unit)} | {s.unit} "
                f"| {_ratio(s.ratio_to_reference)} | {_num(s.p50_us)} | {_num(s.p99_us)} "
                f"| {_num(s.srv_cpu)} | {_cpu_with_max(s)} | {_num(spread_pct, 0, '%')} | {s.rounds} |"
            )
    return "\n".join(lines)


def ratio_matrix(summaries: Sequence[CaseSummary], servers: Sequence[str], cases: Sequence[str]) -> str:
    """Servers x cases, each cell the ratio of medians to gevent (StreamServer)."""
    by_key = {(s.server, s.case): s for s in summaries}
    header = [
        f"{c} ({CASES[c].unit}{', lower is better' if not CASES[c].higher_is_better else ''})"
        for c in cases
    ]
    lines = ["| server | " + " | ".join(header) + " |", "|---|" + "---:|" * len(cases)]
    for server in servers:
        cells = []
        for case in cases:
            s = by_key.get((server, case))
            if s is None or s.median is None:
                cells.append("-")
            elif s.ratio_to_reference is None:
                cells.append(format_value(s.median, s.unit))
            else:
                cells.append(f"{format_value(s.median, s.unit)} ({s.ratio_to_reference:.2f}x)")
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
        busiest_other = max((s.lg_cpu_max for s in others if s.lg_cpu_max is not None), default=None)
        if ceiling is not None and others:
            fastest = max(others, key=lambda s: s.median or 0.0)
            headroom = (ceiling.median or 0.0) / fastest.median if fastest.median else None
            ceiling_figure = f"{format_value(ceiling.median, ceiling.unit)} {ceiling.unit}"
            notes.append(
                f"{case}: the load generator drives C epoll at {ceiling_figure} = {_ratio(headroom)}x "
                f"the fastest Python server ({fastest.server}), using {_num(ceiling.lg_cpu)}% of a core "
                f"there (median) and at most {_num(busiest_other)}% in any round against the Python servers."
            )
        elif ceiling is None:
            notes.append(
                f"{case}: {CEILING_SERVER} not measured; load generator CPU at most "
                f"{_num(busiest_other)}% of a core."
            )
        for s in rows:
            if s.lg_cpu_max is not None and s.lg_cpu_max >= LOADGEN_BUSY_PCT:
                where = (
                    "there the C ceiling is the load generator's limit, not the server's"
                    if s.server == CEILING_SERVER
                    else "that round may be limited by the load generator, not the server"
                )
                notes.append(
                    f"NOTE: {case} vs {s.server}: the load generator used up to {s.lg_cpu_max:.0f}% "
                    f"of a core (median {s.lg_cpu or 0:.0f}%); {where}."
                )
    python_rows = [s for s in summaries if s.server != CEILING_SERVER and s.srv_cpu is not None]
    starved = [
        s
        for s in python_rows
        if s.srv_cpu is not None and s.srv_cpu < SERVER_STARVED_PCT and (s.lg_cpu or 0.0) < LOADGEN_BUSY_PCT
    ]
    if starved:
        typical = statistics.median(s.srv_cpu for s in starved if s.srv_cpu is not None)
        notes.append(
            f"NOTE: in {len(starved)} of {len(python_rows)} Python server x case figures neither side was "
            f"saturated (server CPU median {typical:.0f}%, load generator below {LOADGEN_BUSY_PCT:.0f}%): "
            "the server waited for a CPU that other work on the machine was using, so those absolute "
            "figures are low and the ratios rough; quote figures from a run on a quiet machine."
        )
    return notes


def cross_check_table(
    own: Sequence[CaseSummary], cross: Sequence[CaseSummary], servers: Sequence[str], cases: Sequence[str]
) -> str:
    """Case x server: the median with our load generator, with the cross-check one, and their ratio."""
    own_by_key = {(s.server, s.case): s for s in own}
    cross_by_key = {(s.server, s.case): s for s in cross}
    lines = [
        "| case | server | this load generator | cross-check | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for case in cases:
        for server in servers:
            theirs = cross_by_key.get((server, case))
            if theirs is None:
                continue
            ours = own_by_key.get((server, case))
            ours_median = ours.median if ours else None
            ratio = ours_median / theirs.median if ours_median and theirs.median else None
            lines.append(
                f"| {case} | {server} | {format_value(ours_median, theirs.unit)} "
                f"| {format_value(theirs.median, theirs.unit)} | {_ratio(ratio)} |"
            )
    return "\n".join(lines)


def _busy_line(meta: dict[str, Any]) -> str:
    busy = meta.get("cpu_busy_before_run_pct") or {}
    if not busy:
        return "CPU use by other work before the run: unknown."
    listing = ", ".join(f"CPU {cpu} {pct:.0f}%" for cpu, pct in sorted(busy.items()))
    return f"CPU use by other work just before the run: {listing}."


#: Issue 15's targets, as ratios to gevent StreamServer's median in the same
#: run: at least this much (idle: at most, KiB per connection).
TARGETS: dict[str, dict[str, float]] = {
    "gsocket": {"idle": 1.0, "pp100": 1.4, "pp1000": 1.4, "pp100_4k": 1.4, "bulk1": 1.0,
                "connect": 1.2},
    "gsocket_events": {"pp100": 2.0, "pp1000": 2.0},
}


def target_rows(summaries: Sequence[CaseSummary]) -> list[tuple[str, str, float, float | None, bool]]:
    """(server, case, target, ratio, met) for each target whose case was run."""
    rows = []
    for summary in summaries:
        target = TARGETS.get(summary.server, {}).get(summary.case)
        if target is None:
            continue
        ratio = summary.ratio_to_reference
        if ratio is None:
            met = False
        elif summary.case == "idle":
            met = ratio <= target
        else:
            met = ratio >= target
        rows.append((summary.server, summary.case, target, ratio, met))
    return rows


def targets_table(summaries: Sequence[CaseSummary]) -> str:
    """The regression check: each target, the ratio measured, met or short."""
    lines = ["| server | case | target (x gevent) | measured | |", "|---|---|---:|---:|---|"]
    for server, case, target, ratio, met in target_rows(summaries):
        bound = "<=" if case == "idle" else ">="
        lines.append(f"| {server} | {case} | {bound} {target:.2f} | {_ratio(ratio)} "
                     f"| {'met' if met else 'SHORT'} |")
    return "\n".join(lines)


def render_report(
    meta: dict[str, Any],
    summaries: Sequence[CaseSummary],
    servers: Sequence[str],
    cases: Sequence[str],
    unavailable: dict[str, str],
    interrupted: bool,
    cross_summaries: Sequence[CaseSummary] = (),
) -> str:
    """The whole text report (markdown); ``cross_summaries`` adds the --cross-check table."""
    settings = meta["settings"]
    lines = [
        f"Benchmark run {meta['date']} on {meta['host']} ({meta['cpu']}, {meta['cpus']} CPUs), "
        f"Python {meta['python']}, gevent {meta['gevent']}, uvloop {meta['uvloop']}, "
        f"commit {meta['git_commit']}",
        f"{meta['placement']}; {meta['rounds']} interleaved round(s), {settings['seconds']:g} s per case"
        f"{' (--quick smoke run)' if meta['quick'] else ''}, "
        f"idle case {settings['idle_conns']} connections.",
        _busy_line(meta),
        "Figures are medians over rounds; 'x gevent' is median / gevent StreamServer's median in this run "
        "(idle: lower is better).",
        "",
        case_table(summaries, servers, cases),
        "",
        "Median and ratio to gevent:",
        "",
        ratio_matrix(summaries, servers, cases),
    ]
    if target_rows(summaries):
        lines += ["", "Targets (issue 15; `--check` exits 1 when one is short):", "",
                  targets_table(summaries)]
    notes = loadgen_headroom_notes(summaries, cases)
    if notes:
        lines += ["", "Load generator check:", ""] + [f"- {note}" for note in notes]
    if cross_summaries:
        lines += [
            "",
            f"Cross-check with the load generator built from {meta.get('cross_check_source')}:",
            "",
            cross_check_table(summaries, cross_summaries, servers, cases),
        ]
    if unavailable:
        lines += ["", "Skipped servers:", ""] + [f"- {name}: {why}" for name, why in unavailable.items()]
    failures = [(s, failure) for s in summaries for failure in s.failures]
    if failures:
        lines += ["", "Failures:", ""] + [
            f"- {s.server} {s.case} {failure.splitlines()[0]}" for s, failure in failures
        ]
    if interrupted:
        lines += ["", "(interrupted: partial results)"]
    return "\n".join(lines)
