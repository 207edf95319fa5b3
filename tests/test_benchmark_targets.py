"""The benchmark runner's regression check: issue 15's targets against the
ratios of one run (no servers are started here)."""

from __future__ import annotations

from typing import Optional

from benchmarks.cases import CASES
from benchmarks.report import TARGETS, target_rows, targets_table
from benchmarks.results import CaseSummary


def summary(server: str, case: str, ratio: Optional[float]) -> CaseSummary:
    return CaseSummary(server=server, case=case, unit="msgs/s", rounds=3, median=1.0, spread=0.0,
                       p50_us=None, p99_us=None, lg_cpu=None, srv_cpu=None, errors=0,
                       ratio_to_reference=ratio)


def test_each_target_is_met_or_short_by_its_direction() -> None:
    rows = target_rows([
        summary("gsocket", "pp100", 1.45),          # >= 1.4: met
        summary("gsocket", "connect", 0.9),         # >= 1.2: short
        summary("gsocket", "idle", 0.95),           # idle is lower-is-better: met
        summary("gsocket", "bulk1", None),          # no ratio (failed): short
        summary("gsocket_events", "pp1000", 2.0),   # exactly the target: met
        summary("uvloop", "pp100", 0.5),            # no target for other servers
        summary("gsocket", "pp1", 0.5),             # no target for that case
    ])
    assert [(server, case, met) for server, case, _, _, met in rows] == [
        ("gsocket", "pp100", True), ("gsocket", "connect", False), ("gsocket", "idle", True),
        ("gsocket", "bulk1", False), ("gsocket_events", "pp1000", True)]
    table = targets_table([summary("gsocket", "idle", 1.2), summary("gsocket", "pp100", 1.5)])
    assert "| gsocket | idle | <= 1.00 | 1.20 | SHORT |" in table
    assert "| gsocket | pp100 | >= 1.40 | 1.50 | met |" in table


def test_targets_name_only_cases_the_runner_has() -> None:
    for cases in TARGETS.values():
        assert set(cases) <= set(CASES)
