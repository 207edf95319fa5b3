"""Facts about the machine and the checkout, recorded with every run.

Also a quick check that the pinned CPUs are idle before starting: another
benchmark or test run on the same CPUs halves every figure.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(repo_root: Path) -> str | None:
    """The checked-out commit (with '+dirty' if the tree has changes), or None."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=repo_root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _cpu_times(cpus: Iterable[int]) -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat."""
    wanted = {f"cpu{cpu}": cpu for cpu in cpus}
    times: dict[int, tuple[int, int]] = {}
    with open("/proc/stat") as stat:
        for line in stat:
            fields = line.split()
            if fields and fields[0] in wanted:
                values = [int(v) for v in fields[1:9]]
                idle = values[3] + values[4]  # idle + iowait
                times[wanted[fields[0]]] = (sum(values) - idle, sum(values))
    return times


def cpu_busy_percent(cpus: Iterable[int], seconds: float = 0.5) -> dict[int, float]:
    """How busy each CPU is over ``seconds`` (100 = fully used by something else)."""
    cpu_list = list(cpus)
    try:
        before = _cpu_times(cpu_list)
        time.sleep(seconds)
        after = _cpu_times(cpu_list)
    except OSError:
        return {}
    busy: dict[int, float] = {}
    for cpu, (busy_before, total_before) in before.items():
        busy_after, total_after = after.get(cpu, (busy_before, total_before))
        elapsed = total_after - total_before
        busy[cpu] = 100.0 * (busy_after - busy_before) / elapsed if elapsed else 0.0
    return busy
