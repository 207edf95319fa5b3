"""The PNG chart: per case, one bar per server, height = median / gevent's median."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks.cases import CASES
from benchmarks.catalog import REFERENCE_SERVER
from benchmarks.results import CaseSummary


class ChartUnavailable(RuntimeError):
    """matplotlib is not installed."""


def draw_ratio_chart(
    path: Path, summaries: Sequence[CaseSummary], servers: Sequence[str], cases: Sequence[str], title: str
) -> None:
    """Grouped bars of ratio to gevent per case; a dashed line marks 1.0."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ChartUnavailable("matplotlib is not installed (pip install -e '.[bench]')") from exc

    ratios = {(s.server, s.case): s.ratio_to_reference for s in summaries}
    shown_cases = [c for c in cases if any(ratios.get((srv, c)) is not None for srv in servers)]
    shown_servers = [srv for srv in servers if any(ratios.get((srv, c)) is not None for c in shown_cases)]
    if not shown_cases:
        raise ChartUnavailable(f"no ratios to draw ({REFERENCE_SERVER} was not measured)")

    width = 0.8 / len(shown_servers)
    figure, axes = plt.subplots(figsize=(max(7.0, 1.6 * len(shown_cases) + 3), 4.8))
    for index, server in enumerate(shown_servers):
        offsets = [case_index - 0.4 + width * (index + 0.5) for case_index in range(len(shown_cases))]
        values = [ratios.get((server, case)) for case in shown_cases]
        bars = axes.bar(offsets, [v or 0.0 for v in values], width, label=server)
        axes.bar_label(
            bars,
            labels=["" if v is None else f"{v:.2f}" for v in values],
            fontsize=6,
            rotation=90,
            padding=2,
        )
    axes.axhline(1.0, color="black", linestyle="--", linewidth=0.8)
    axes.set_xticks(range(len(shown_cases)))
    axes.set_xticklabels(
        [
            f"{c}\n({CASES[c].unit}{', lower better' if not CASES[c].higher_is_better else ''})"
            for c in shown_cases
        ],
        fontsize=8,
    )
    axes.set_ylabel(f"median / {REFERENCE_SERVER} (StreamServer) median")
    axes.set_title(title, fontsize=10)
    axes.margins(y=0.15)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
