"""Progress on stderr: one updating line on a terminal, plain lines otherwise.

The status says which step of how many, the round, server and case, the
elapsed time of the whole run and of the current step.  ``note`` prints a
permanent line (a finished measurement, a skipped server) above the status.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from types import TracebackType
from typing import TextIO

#: How often the terminal status line is redrawn to advance the clocks.
REFRESH_S = 0.5


def format_duration(seconds: float) -> str:
    """``83.2`` -> ``'1:23'``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Tracks the current step of a run and shows it."""

    def __init__(
        self, total_steps: int, stream: TextIO = sys.stderr, interactive: bool | None = None
    ) -> None:
        self.total_steps = total_steps
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self.started = time.monotonic()
        self._step = 0
        self._label = "starting"
        self._step_started = self.started
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if self.interactive:
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def step(self, label: str) -> None:
        """Start the next step, described by ``label``."""
        with self._lock:
            self._step += 1
            self._label = label
            self._step_started = time.monotonic()
            if self.interactive:
                self._redraw()
            else:
                self.stream.write(self._status() + "\n")
                self.stream.flush()

    def skip(self, steps: int) -> None:
        """Count ``steps`` planned steps as done without running them."""
        with self._lock:
            self._step += steps

    def update(self, label: str) -> None:
        """Change the current step's description without counting a new step."""
        with self._lock:
            self._label = label
            if self.interactive:
                self._redraw()
            else:
                self.stream.write(self._status() + "\n")
                self.stream.flush()

    def note(self, text: str) -> None:
        """Print a permanent line (keeping the status line below it on a terminal)."""
        with self._lock:
            if self.interactive:
                self.stream.write("\r\033[K" + text + "\n")
                self._redraw()
            else:
                self.stream.write(text + "\n")
                self.stream.flush()

    def close(self) -> None:
        """Stop refreshing and clear the status line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.interactive:
            with self._lock:
                self.stream.write("\r\033[K")
                self.stream.flush()

    def _status(self) -> str:
        now = time.monotonic()
        return (
            f"[{self._step}/{self.total_steps} {format_duration(now - self.started)}] "
            f"{self._label} ({format_duration(now - self._step_started)})"
        )

    def _redraw(self) -> None:
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r\033[K" + self._status()[:width])
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(REFRESH_S):
            with self._lock:
                self._redraw()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
