"""Leak check for tests: fds, listening TCP sockets and live greenlets
left behind since a snapshot (Linux /proc based)."""

from __future__ import annotations

import dataclasses
import os
import time
import weakref
from typing import TYPE_CHECKING, Any, Dict, List, Set, Tuple

import pytest

from ._greenlet_report import describe_greenlet, live_greenlets

if TYPE_CHECKING:  # pragma: no cover
    from greenlet import greenlet as RawGreenlet

__all__ = ["LEAK_GRACE", "LeakCheck", "LeakReport"]

#: Seconds the leak check waits for leftovers to go away before it reports
#: them (a killed greenlet or a closed socket may need a few hub turns).
LEAK_GRACE = 1.0


def _open_fds() -> Dict[int, str]:
    """fd -> what it points to, from /proc/self/fd (the listing's own fd,
    closed by the time we look at it, drops out by itself)."""
    fds: Dict[int, str] = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:  # no /proc (not Linux): nothing to compare
        return fds
    for name in names:
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except (OSError, ValueError):
            continue
    return fds


#: /proc/net/tcp state codes (include/net/tcp_states.h).
_TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
    "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}


def _proc_address(text: str) -> str:
    import socket

    host_hex, port_hex = text.split(":")
    raw = bytes.fromhex(host_hex)
    # The kernel prints each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw)}:{int(port_hex, 16)}"
    return f"[{socket.inet_ntop(socket.AF_INET6, raw)}]:{int(port_hex, 16)}"


def _tcp_sockets() -> Dict[str, Tuple[str, str, str]]:
    """Socket inode -> (state, local address, remote address) for TCP sockets
    of this network namespace."""
    table: Dict[str, Tuple[str, str, str]] = {}
    for path in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(path) as proc:
                lines = proc.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            try:
                table[fields[9]] = (_TCP_STATES.get(fields[3], fields[3]),
                                    _proc_address(fields[1]), _proc_address(fields[2]))
            except (ValueError, OSError):
                continue
    return table


@dataclasses.dataclass
class LeakReport:
    """What a test left behind: ``fds`` maps fd -> description, ``listeners``
    maps fd -> listening address, ``greenlets`` are the live greenlets."""

    fds: Dict[int, str] = dataclasses.field(default_factory=dict)
    listeners: Dict[int, str] = dataclasses.field(default_factory=dict)
    greenlets: List["RawGreenlet"] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fds or self.listeners or self.greenlets)

    def format(self) -> str:
        """A human-readable listing of every leftover."""
        parts = []
        if self.listeners:
            parts.append("listening TCP sockets left open:\n" + "".join(
                f"  fd {fd}: listening on {address}\n"
                for fd, address in sorted(self.listeners.items())))
        if self.fds:
            parts.append("file descriptors left open:\n" + "".join(
                f"  fd {fd}: {what}\n" for fd, what in sorted(self.fds.items())))
        if self.greenlets:
            parts.append("greenlets still alive:\n" + "".join(
                describe_greenlet(g) for g in self.greenlets))
        return "\n".join(parts)


class LeakCheck:
    """Leftover detector behind the ``gsocket_leak_check`` fixture.

    :meth:`start` snapshots open fds and live greenlets; :meth:`leaks` lists
    what is new since; :meth:`check` waits up to :attr:`grace` seconds for the
    leftovers to go and fails the test if some stay. :meth:`ignore` exempts
    fds (ints or objects with ``fileno()``) and greenlets the test keeps on
    purpose.
    """

    def __init__(self, grace: float = LEAK_GRACE) -> None:
        self.grace = grace
        self._fds: Set[Tuple[int, str]] = set()
        self._greenlets: "weakref.WeakSet[RawGreenlet]" = weakref.WeakSet()
        self._ignored_fds: Set[Tuple[int, str]] = set()
        self._ignored_greenlets: "weakref.WeakSet[RawGreenlet]" = weakref.WeakSet()
        self._default_driver: Any = None

    def start(self) -> None:
        """Take the "before" snapshot."""
        import gevent

        # The hub opens its loop fds (epoll, eventfd) on first use; make sure
        # that happens before the snapshot, not in the first test that uses it.
        from .driver import installed

        gevent.get_hub()
        self._default_driver = installed()
        self._fds = set(_open_fds().items())
        self._greenlets = weakref.WeakSet(live_greenlets())

    def ignore(self, *things: Any) -> None:
        """Do not report these fds, socket-like objects or greenlets."""
        import greenlet

        current = _open_fds()
        for thing in things:
            if isinstance(thing, greenlet.greenlet):
                self._ignored_greenlets.add(thing)
                continue
            fd = thing if isinstance(thing, int) else thing.fileno()
            if fd in current:
                self._ignored_fds.add((fd, current[fd]))

    def leaks(self) -> LeakReport:
        """What is open or alive now that was not at :meth:`start`."""
        report = LeakReport()
        new = set(_open_fds().items()) - self._fds - self._ignored_fds
        tcp = _tcp_sockets() if any(t.startswith("socket:[") for _, t in new) else {}
        for fd, target in sorted(new):
            inode = target[len("socket:["):-1] if target.startswith("socket:[") else ""
            state = tcp.get(inode)
            if state is not None and state[0] == "LISTEN":
                report.listeners[fd] = state[1]
            elif state is not None:
                report.fds[fd] = f"{target} TCP {state[1]} -> {state[2]} {state[0]}"
            else:
                report.fds[fd] = target
        report.greenlets = [g for g in live_greenlets()
                            if g not in self._greenlets and g not in self._ignored_greenlets]
        return report

    def check(self) -> None:
        """Fail the test if leftovers remain after the grace period."""
        import gevent

        from .driver import installed

        deadline = time.monotonic() + self.grace
        report = self.leaks()
        while report and time.monotonic() < deadline:
            gevent.sleep(0.02)  # let the hub close sockets and unwind greenlets
            report = self.leaks()
        if report:
            text = report.format()
            del report
            driver = installed()
            if driver is not None and driver is not self._default_driver \
                    and not getattr(driver, "freed", True):
                text += ("\nhint: gsocket's default driver was created during this "
                         "test (by gsocket.socket/skynet calls) and keeps running; "
                         "use the gsocket_driver fixture to give the test its own, "
                         "freed afterwards.\n")
            pytest.fail("gsocket leak check: the test left these behind "
                        f"(after a {self.grace:g} s grace period):\n\n{text}",
                        pytrace=False)
