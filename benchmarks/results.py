"""Measurements, their medians over rounds, and the raw-result files.

The TSV has one row per measurement with the columns ``label run case value
unit p50_us p99_us lg_cpu srv_cpu errors extra``, a layout other echo-server
yardsticks' summary scripts read as well.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TSV_COLUMNS = [
    "label",
    "run",
    "case",
    "value",
    "unit",
    "p50_us",
    "p99_us",
    "lg_cpu",
    "srv_cpu",
    "errors",
    "extra",
]


@dataclass
class Measurement:
    """One case against one server in one round.

    ``value`` is None when the case failed; ``failure`` then says why.
    ``detail`` holds case-specific facts (idle: RSS before/held, alive count).
    """

    server: str
    round: int
    case: str
    unit: str
    value: float | None = None
    p50_us: float | None = None
    p99_us: float | None = None
    lg_cpu: float | None = None
    srv_cpu: float | None = None
    errors: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    loadgen_line: str = ""
    failure: str | None = None


@dataclass
class CaseSummary:
    """The median over rounds of one server x case, and its ratio to the reference."""

    server: str
    case: str
    unit: str
    rounds: int
    median: float | None
    spread: float | None
    p50_us: float | None
    p99_us: float | None
    lg_cpu: float | None
    srv_cpu: float | None
    errors: int
    #: the load generator's highest CPU in any round (a median can hide one saturated round)
    lg_cpu_max: float | None = None
    ratio_to_reference: float | None = None
    failures: list[str] = field(default_factory=list)


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(measurements: Sequence[Measurement], reference: str) -> list[CaseSummary]:
    """Median per (server, case) in first-seen order, with ratios to ``reference``.

    ``spread`` is (max - min) / median over the successful rounds, a quick
    read of how noisy the figure is.
    """
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for measurement in measurements:
        groups.setdefault((measurement.server, measurement.case), []).append(measurement)
    summaries: list[CaseSummary] = []
    for (server, case), runs in groups.items():
        good = [m for m in runs if m.value is not None]
        values = [m.value for m in good if m.value is not None]
        median = _median(values)
        spread = (max(values) - min(values)) / median if values and median else None
        summaries.append(
            CaseSummary(
                server=server,
                case=case,
                unit=runs[0].unit,
                rounds=len(good),
                median=median,
                spread=spread,
                p50_us=_median(m.p50_us for m in good),
                p99_us=_median(m.p99_us for m in good),
                lg_cpu=_median(m.lg_cpu for m in good),
                srv_cpu=_median(m.srv_cpu for m in good),
                errors=sum(m.errors for m in runs),
                lg_cpu_max=max((m.lg_cpu for m in good if m.lg_cpu is not None), default=None),
                failures=[f"round {m.round}: {m.failure}" for m in runs if m.failure],
            )
        )
    reference_medians = {s.case: s.median for s in summaries if s.server == reference}
    for summary in summaries:
        base = reference_medians.get(summary.case)
        if summary.median is not None and base:
            summary.ratio_to_reference = summary.median / base
    return summaries


def write_json(
    path: Path,
    meta: dict[str, Any],
    measurements: Sequence[Measurement],
    summaries: Sequence[CaseSummary],
    unavailable: dict[str, str],
    cross_measurements: Sequence[Measurement] = (),
) -> None:
    """Everything about the run in one JSON document, written to ``path``."""
    document = {
        "meta": meta,
        "unavailable_servers": unavailable,
        "summary": [asdict(s) for s in summaries],
        "measurements": [asdict(m) for m in measurements],
        "cross_check_measurements": [asdict(m) for m in cross_measurements],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_tsv(path: Path, measurements: Sequence[Measurement]) -> None:
    """Write one row per measurement to ``path``, in the TSV layout described above."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(TSV_COLUMNS)
        for m in measurements:
            extra = " ".join(f"{k}={v}" for k, v in m.detail.items())
            if m.failure:
                extra = (extra + " failure=" + m.failure.replace("\t", " ").replace("\n", " ")).strip()
            writer.writerow(
                [
                    m.server,
                    m.round,
                    m.case,
                    _cell(m.value, 2),
                    m.unit,
                    _cell(m.p50_us),
                    _cell(m.p99_us),
                    _cell(m.lg_cpu, 0),
                    _cell(m.srv_cpu, 0),
                    m.errors,
                    extra,
                ]
            )
