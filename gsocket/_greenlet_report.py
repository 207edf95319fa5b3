"""Live greenlets of this thread and their stacks, for test reports.

Used by :mod:`gsocket.pytest_plugin` (timeout failures, leak reports) and
by the project's own test suite.
"""

from __future__ import annotations

import gc
import os
import traceback
from typing import TYPE_CHECKING, Any, Iterable, List, Optional

if TYPE_CHECKING:  # pragma: no cover
    from greenlet import greenlet as RawGreenlet

__all__ = ["STACK_LIMIT", "live_greenlets", "describe_greenlet", "blocked_greenlets_report"]

#: Frames shown per greenlet in timeout and leak reports (innermost kept).
STACK_LIMIT = 25
_PLUGIN_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytest_plugin.py")


def _root(glet: "RawGreenlet") -> "RawGreenlet":
    while glet.parent is not None:
        glet = glet.parent
    return glet


def live_greenlets() -> List["RawGreenlet"]:
    """Greenlets of this thread that are running or scheduled, except the hub
    and the main greenlet (a walk over ``gc.get_objects()``)."""
    import greenlet
    from gevent import Greenlet
    from gevent.hub import Hub

    current = greenlet.getcurrent()
    root = _root(current)
    found = []
    for obj in gc.get_objects():
        # type(), not isinstance(): a dead weakref.proxy raises on __class__.
        if not issubclass(type(obj), greenlet.greenlet) or obj is current:
            continue
        if obj.parent is None or obj.dead or isinstance(obj, Hub):
            continue
        if obj.gr_frame is None and not (isinstance(obj, Greenlet) and obj.started):
            continue  # created but never started: runs nothing, holds nothing
        if _root(obj) is root:
            found.append(obj)
    return found


_HARNESS_DIRS = (f"{os.sep}_pytest{os.sep}", f"{os.sep}pluggy{os.sep}")


def _noise(entry: traceback.FrameSummary) -> bool:
    """Frames of pytest, pluggy and our test runner: the harness, not the test."""
    if entry.filename == _PLUGIN_FILE:
        return entry.name in ("body", "run_in_greenlet", "_run_in_greenlet")
    return any(part in entry.filename for part in _HARNESS_DIRS)


def _format_frames(frame: Any, limit: int = STACK_LIMIT) -> str:
    entries = [entry for entry in traceback.extract_stack(frame)
               if not _noise(entry)][-limit:]
    lines: List[str] = []
    for entry in traceback.StackSummary.from_list(entries).format():
        lines.extend("  " + line for line in entry.rstrip("\n").split("\n"))
    return "\n".join(lines) + "\n" if lines else ""


def describe_greenlet(glet: "RawGreenlet", note: str = "") -> str:
    """``repr(glet)`` and its stack (innermost last), plus where it was spawned."""
    from gevent import Greenlet

    text = repr(glet) + (f"  [{note}]" if note else "") + "\n"
    if glet.gr_frame is not None:
        text += _format_frames(glet.gr_frame) or "    (no frames outside the harness)\n"
    elif isinstance(glet, Greenlet) and not glet:
        text += "    (scheduled, not started yet)\n"
    else:
        # On Python 3.11+ greenlet reports no frame for a greenlet suspended
        # before Python materialized its frame objects.
        text += "    (suspended; its stack is not available)\n"
    spawned = getattr(glet, "spawning_stack", None)
    if spawned is not None and note != "the test body":
        where = _format_frames(spawned, limit=8)
        if where:
            text += "  spawned at:\n" + where
    return text


def blocked_greenlets_report(first: Optional["RawGreenlet"] = None,
                             before: Iterable["RawGreenlet"] = ()) -> str:
    """Format every live greenlet of this thread with its stack.

    ``first`` is listed first and tagged as the test body; greenlets in
    ``before`` are tagged as already running before the test.
    """
    earlier = {id(g) for g in before}

    def rank(glet: "RawGreenlet") -> int:
        return 0 if glet is first else 2 if id(glet) in earlier else 1

    notes = ("the test body", "spawned during the test", "already running before the test")
    parts = [describe_greenlet(glet, notes[rank(glet)])
             for glet in sorted(live_greenlets(), key=rank)]
    return "\n".join(parts) if parts else "(no live greenlets)\n"
