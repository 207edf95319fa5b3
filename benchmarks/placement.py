"""Where child processes run: CPU pinning and the open-file limit.

The server goes on one CPU and the load generator on another, so that they
never compete for a core.  ``taskset`` is used when it is installed (it
execs the target, so the child's pid is the server's pid); otherwise the
affinity is set with ``os.sched_setaffinity`` in the child before exec.
Both get RLIMIT_NOFILE raised in a ``preexec_fn`` (the equivalent of
``ulimit -n`` in a shell wrapper), so they can hold the idle case's
thousands of connections.
"""

from __future__ import annotations

import os
import resource
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: The soft RLIMIT_NOFILE children get at least (as the shared run.sh does),
#: capped by the hard limit.
DEFAULT_NOFILE = 65536


def hard_nofile_limit() -> int:
    """This process's hard RLIMIT_NOFILE (a large number if unlimited)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if hard == resource.RLIM_INFINITY else int(hard)


def nofile_for(connections: int) -> int:
    """The soft fd limit to give children that must hold ``connections``."""
    return min(hard_nofile_limit(), max(DEFAULT_NOFILE, connections + 1024))


@dataclass(frozen=True)
class Placement:
    """CPUs for the server and the load generator, and the children's fd limit.

    A CPU of ``None`` means "not pinned" (a machine with a single usable CPU).
    """

    server_cpu: int | None
    loadgen_cpu: int | None
    nofile: int
    use_taskset: bool

    @classmethod
    def choose(cls, server_cpu: int, loadgen_cpu: int, nofile: int) -> tuple[Placement, str | None]:
        """Pin to the requested CPUs if this process may use both.

        Returns the placement and a warning when pinning had to be dropped.
        """
        usable = os.sched_getaffinity(0)
        use_taskset = shutil.which("taskset") is not None
        if server_cpu == loadgen_cpu:
            return cls(
                None, None, nofile, use_taskset
            ), "server and load generator CPUs are the same: not pinning"
        missing = {server_cpu, loadgen_cpu} - usable
        if missing:
            warning = (
                f"CPU(s) {sorted(missing)} not usable (allowed: {sorted(usable)}): "
                "not pinning; figures will be noisier"
            )
            return cls(None, None, nofile, use_taskset), warning
        return cls(server_cpu, loadgen_cpu, nofile, use_taskset), None

    def command(self, argv: Sequence[str], cpu: int | None) -> list[str]:
        """``argv`` prefixed with ``taskset -c CPU`` when that is how we pin."""
        if cpu is not None and self.use_taskset:
            return ["taskset", "-c", str(cpu), *argv]
        return list(argv)

    def preexec(self, cpu: int | None) -> Callable[[], None]:
        """A ``preexec_fn`` raising RLIMIT_NOFILE (and pinning without taskset).

        It only makes system calls, so it is safe to run in the forked child
        even though the parent has a progress thread.
        """
        nofile = self.nofile
        pin_here = cpu if (cpu is not None and not self.use_taskset) else None

        def raise_limits_and_pin() -> None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            soft = nofile if hard == resource.RLIM_INFINITY else min(nofile, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            if pin_here is not None:
                os.sched_setaffinity(0, {pin_here})

        return raise_limits_and_pin

    def describe(self) -> str:
        """One line for the report header."""
        if self.server_cpu is None:
            pinning = "not pinned"
        else:
            how = "taskset" if self.use_taskset else "sched_setaffinity"
            pinning = f"server on CPU {self.server_cpu}, load generator on CPU {self.loadgen_cpu} ({how})"
        return f"{pinning}; RLIMIT_NOFILE {self.nofile}"
