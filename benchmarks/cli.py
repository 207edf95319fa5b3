"""``python -m benchmarks``: options, wiring, and the final report.

Run from the repository root.  Prints progress on stderr, the report on
stdout, and writes ``results.json``, ``results.tsv``, ``report.md``,
``ratios.png`` and the servers' logs into a timestamped folder under --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import machine, native
from benchmarks.cases import CASES, CaseSettings
from benchmarks.catalog import CEILING_SERVER, REFERENCE_SERVER, server_catalog
from benchmarks.chart import ChartUnavailable, draw_ratio_chart
from benchmarks.loadgen import Loadgen
from benchmarks.placement import Placement, hard_nofile_limit, nofile_for
from benchmarks.progress import Progress, format_duration
from benchmarks.report import render_report, target_rows
from benchmarks.results import summarize, write_json, write_tsv
from benchmarks.runner import BenchmarkRunner, RunPlan, server_environment

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"
#: fds the servers and load generator need beyond the held connections
FD_HEADROOM = 256
#: CPU use by others, before the run, from which the figures are not to be trusted as absolutes
BUSY_CPU_WARNING_PCT = 15.0


def build_parser(server_names: Sequence[str]) -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Echo servers side by side: gsocket vs gevent, asyncio, uvloop, C epoll. "
        "Server pinned to one CPU, the C load generator to another.",
    )
    parser.add_argument(
        "--servers",
        help=f"comma-separated subset of: {','.join(server_names)} "
        f"(default: all available; {CEILING_SERVER} and {REFERENCE_SERVER} are always added "
        "unless --no-references)",
    )
    parser.add_argument("--cases", help=f"comma-separated subset of: {','.join(CASES)} (default: all)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; the report shows medians (default 3)"
    )
    parser.add_argument("--seconds", type=float, help="measured seconds per case (default 5, --quick 1)")
    parser.add_argument(
        "--warmup", type=float, help="unmeasured seconds before each case (default 0.5, --quick 0.2)"
    )
    parser.add_argument(
        "--idle-conns", type=int, help="connections held in the idle case (default 10000, --quick 1000)"
    )
    parser.add_argument(
        "--connect-parallel",
        type=int,
        default=100,
        help="parallel connect loops in the connect case (default 100)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 s per case, 1000 idle connections"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="results folder (default benchmarks/results/)"
    )
    parser.add_argument(
        "--no-references",
        action="store_true",
        help=f"do not add {CEILING_SERVER} and {REFERENCE_SERVER} to --servers",
    )
    parser.add_argument(
        "--server-cpu", type=int, default=0, help="CPU the servers are pinned to (default 0)"
    )
    parser.add_argument(
        "--loadgen-cpu", type=int, default=1, help="CPU the load generator is pinned to (default 1)"
    )
    parser.add_argument(
        "--frames",
        action="store_true",
        help="every message is a netpack frame (2-byte big-endian length, then the payload): "
        "needed by gsocket_gate; the byte echo servers echo frames unchanged",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the servers and whether each can run, then exit"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="regression check: exit 1 when a ratio of gsocket or gsocket_events measured in "
        "this run is short of its target (the report's Targets table)",
    )
    parser.add_argument(
        "--cross-check",
        type=Path,
        metavar="LOADGEN_C",
        help="also run every timed case with another load generator built from this C source "
        "(same options and key=value output, e.g. an external yardstick's loadgen.c), and report "
        "both figures side by side",
    )
    return parser


def parse_list(
    text: str | None, known: Sequence[str], what: str, parser: argparse.ArgumentParser
) -> list[str]:
    """Split a comma list and check every name; None means all of ``known``."""
    if not text:
        return list(known)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def case_settings(args: argparse.Namespace) -> tuple[CaseSettings, float]:
    """Case settings and the per-start server warm-up, from options and --quick."""
    quick = args.quick
    settings = CaseSettings(
        seconds=args.seconds if args.seconds is not None else (1.0 if quick else 5.0),
        warmup=args.warmup if args.warmup is not None else (0.2 if quick else 0.5),
        idle_conns=args.idle_conns if args.idle_conns is not None else (1000 if quick else 10000),
        connect_parallel=args.connect_parallel,
        idle_settle=0.5 if quick else 1.0,
    )
    return settings, (0.3 if quick else 1.0)


def estimate_seconds(plan: RunPlan) -> float:
    """A rough duration of the plan, for the opening message."""
    settings = plan.settings
    per_round = 0.5 + plan.server_warmup
    for case in plan.cases:
        if case.mode == "idle":
            per_round += 2 * settings.idle_settle + settings.idle_hold + settings.idle_conns / 20000
        else:
            per_round += settings.warmup + settings.seconds + 0.1
    return per_round * len(plan.servers) * plan.rounds


def run_metadata(
    args: argparse.Namespace,
    plan: RunPlan,
    placement: Placement,
    loadgen_binary: Path,
    started: datetime.datetime,
) -> dict[str, Any]:
    """Facts about the machine and the run, saved in results.json and the report header."""
    return {
        "date": started.isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu": machine.cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "gevent": machine.package_version("gevent"),
        "uvloop": machine.package_version("uvloop"),
        "git_commit": machine.git_commit(REPO_ROOT),
        "placement": placement.describe(),
        "loadgen": str(loadgen_binary),
        "loadgen_source": str(native.loadgen_source(REPO_ROOT).relative_to(REPO_ROOT)),
        "cross_check_source": str(args.cross_check) if args.cross_check else None,
        "rounds": plan.rounds,
        "quick": args.quick,
        "frames": args.frames,
        "settings": {
            "seconds": plan.settings.seconds,
            "warmup": plan.settings.warmup,
            "idle_conns": plan.settings.idle_conns,
            "idle_hold": plan.settings.idle_hold,
            "connect_parallel": plan.settings.connect_parallel,
            "server_warmup": plan.server_warmup,
        },
        "servers": [spec.name for spec in plan.servers],
        "cases": [case.name for case in plan.cases],
        "argv": sys.argv[1:],
    }


def warn_if_cpus_busy(placement: Placement) -> dict[int, float]:
    """Sample the pinned CPUs for half a second; warn if something else is using them."""
    cpus = [cpu for cpu in (placement.server_cpu, placement.loadgen_cpu) if cpu is not None]
    busy = machine.cpu_busy_percent(cpus or range(os.cpu_count() or 1))
    hogged = {cpu: pct for cpu, pct in busy.items() if pct >= BUSY_CPU_WARNING_PCT}
    if hogged:
        listing = ", ".join(f"CPU {cpu} {pct:.0f}% busy" for cpu, pct in sorted(hogged.items()))
        print(
            f"warning: {listing} before the run: other work shares these CPUs, absolute figures will be "
            "low and noisy, ratios rough",
            file=sys.stderr,
        )
    return {cpu: round(pct, 1) for cpu, pct in busy.items()}


def interrupt_on_termination() -> None:
    """Make SIGTERM and SIGHUP behave like Ctrl-C, so running servers are stopped and partial results kept.

    (Servers run in their own sessions: without this, killing the runner would orphan them.)
    """

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, raise_interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; returns the process exit code."""
    probe_catalog = server_catalog(sys.executable, REPO_ROOT, None, None)
    parser = build_parser(list(probe_catalog))
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.frames and args.cross_check:
        parser.error("--frames and --cross-check do not go together (the other load generator "
                     "has no framing)")

    try:
        loadgen_binary = native.build_loadgen(REPO_ROOT)
        cross_binary = (
            native.build(args.cross_check, "cross-check-loadgen", native.build_dir(REPO_ROOT))
            if args.cross_check
            else None
        )
    except native.BuildError as exc:
        print(f"error: cannot build the load generator: {exc}", file=sys.stderr)
        return 2
    try:
        epoll_binary: Path | None = native.build_echo_epoll(REPO_ROOT)
        epoll_problem = None
    except native.BuildError as exc:
        epoll_binary, epoll_problem = None, str(exc)
    catalog = server_catalog(sys.executable, REPO_ROOT, epoll_binary, epoll_problem,
                             frames=args.frames)

    if args.list:
        for spec in catalog.values():
            print(f"{spec.name:<16} {spec.description:<42} {spec.unavailable or 'ok'}")
        return 0

    requested = parse_list(args.servers, list(catalog), "server", parser)
    if args.servers and not args.no_references:
        requested = list({CEILING_SERVER: None, REFERENCE_SERVER: None, **dict.fromkeys(requested)})
    selected = [spec for name, spec in catalog.items() if name in requested]
    unavailable = {spec.name: spec.unavailable for spec in selected if spec.unavailable}
    runnable = [spec for spec in selected if not spec.unavailable]
    case_names = parse_list(args.cases, list(CASES), "case", parser)
    cases = [case for name, case in CASES.items() if name in case_names]

    settings, server_warmup = case_settings(args)
    if "idle" in case_names:
        fd_budget = hard_nofile_limit() - FD_HEADROOM
        if settings.idle_conns > fd_budget:
            print(
                f"warning: hard RLIMIT_NOFILE allows only {fd_budget} idle connections, "
                f"not {settings.idle_conns}",
                file=sys.stderr,
            )
            settings = dataclasses.replace(settings, idle_conns=fd_budget)
    placement, warning = Placement.choose(
        args.server_cpu, args.loadgen_cpu, nofile_for(settings.idle_conns)
    )
    if warning:
        print("warning: " + warning, file=sys.stderr)

    for name, why in unavailable.items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    if not runnable:
        print("error: no runnable server selected", file=sys.stderr)
        return 2

    plan = RunPlan(runnable, cases, args.rounds, settings, server_warmup)
    started = datetime.datetime.now().astimezone()
    run_dir = args.out / started.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = run_metadata(args, plan, placement, loadgen_binary, started)
    meta["cpu_busy_before_run_pct"] = warn_if_cpus_busy(placement)
    print(
        f"{len(runnable)} servers x {len(cases)} cases x {args.rounds} rounds, about "
        f"{format_duration(estimate_seconds(plan))}; {placement.describe()}; output in {run_dir}",
        file=sys.stderr,
    )

    interrupt_on_termination()
    runner = BenchmarkRunner(
        plan,
        Loadgen(loadgen_binary, placement, frames=args.frames),
        placement,
        REPO_ROOT,
        run_dir / "logs",
        server_environment(REPO_ROOT),
        Loadgen(cross_binary, placement) if cross_binary else None,
    )
    with Progress(plan.total_steps) as progress:
        outcome = runner.run(progress)
        meta["elapsed_s"] = round(progress.elapsed, 1)

    server_order = [spec.name for spec in runnable]
    case_order = [case.name for case in cases]
    summaries = summarize(outcome.measurements, REFERENCE_SERVER)
    cross_summaries = summarize(outcome.cross_measurements, REFERENCE_SERVER)
    report = render_report(
        meta, summaries, server_order, case_order, unavailable, outcome.interrupted, cross_summaries
    )
    write_json(
        run_dir / "results.json",
        meta,
        outcome.measurements,
        summaries,
        unavailable,
        outcome.cross_measurements,
    )
    write_tsv(run_dir / "results.tsv", outcome.measurements)
    (run_dir / "report.md").write_text(report + "\n")
    saved = ["results.json", "results.tsv", "report.md"]
    try:
        draw_ratio_chart(
            run_dir / "ratios.png",
            summaries,
            server_order,
            case_order,
            f"Ratio to gevent StreamServer (median of {args.rounds} rounds), {meta['date']}"
            f"{' [quick smoke run]' if args.quick else ''}",
        )
        saved.append("ratios.png")
    except ChartUnavailable as exc:
        print(f"no chart: {exc}", file=sys.stderr)
    print(f"saved {', '.join(saved)} and logs/ in {run_dir}\n", file=sys.stderr)
    print(report, flush=True)
    if outcome.interrupted:
        return 130
    if args.check and not all(met for *_, met in target_rows(summaries)):
        return 1
    return 0 if any(m.value is not None for m in outcome.measurements) else 1
