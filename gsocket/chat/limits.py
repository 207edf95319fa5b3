"""Flood policy, sans-I/O: how fast one client may send lines.

A leaky bucket per client: each line adds one, the bucket drains at
``rate`` lines per second and holds ``burst``. A line that finds the bucket
full is *throttled*: the caller waits :attr:`Verdict.delay` seconds before
handling it (the client's further lines queue in the kernel, so TCP slows
it down), and the client is told once. A client that keeps the bucket full
for ``patience`` seconds is *flooding* and is disconnected. The clock is
handed in, so the policy is tested without waiting.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

__all__ = ["FloodPolicy", "Verdict", "LINE_RATE", "LINE_BURST", "FLOOD_PATIENCE"]

#: Sustained lines per second a client may send (docs/chat.md: "more than 20 lines/s sustained").
LINE_RATE = 20.0
#: Lines a client may send at once before throttling starts (a paste).
LINE_BURST = 40
#: Seconds of sustained throttling before the client is disconnected.
FLOOD_PATIENCE = 5.0


class Verdict(NamedTuple):
    """What to do with one line: handle it after ``delay`` seconds (0: at
    once); ``warn``: tell the client it is throttled (first time in a row);
    ``disconnect``: it has been flooding for too long."""

    delay: float
    warn: bool = False
    disconnect: bool = False


_OK = Verdict(0.0)


class FloodPolicy:
    """The bucket of one client."""

    __slots__ = ("rate", "burst", "patience", "_level", "_last", "_throttled_since")

    def __init__(self, rate: float = LINE_RATE, burst: int = LINE_BURST,
                 patience: float = FLOOD_PATIENCE) -> None:
        if rate <= 0 or burst < 1 or patience < 0:
            raise ValueError("rate and burst must be positive, patience >= 0")
        self.rate = float(rate)
        self.burst = burst
        self.patience = patience
        self._level = 0.0
        self._last: Optional[float] = None
        self._throttled_since: Optional[float] = None

    def line(self, now: float) -> Verdict:
        """Account one line received at ``now`` (seconds, any monotonic
        clock) and say what to do with it."""
        last = self._last
        level = self._level
        if last is not None and now > last:
            level = max(0.0, level - (now - last) * self.rate)
        self._last = now
        level += 1.0
        self._level = level
        excess = level - self.burst
        if excess <= 0:
            if self._throttled_since is not None and level <= self.burst / 2:
                self._throttled_since = None    # calmed down
            return _OK
        delay = excess / self.rate
        since = self._throttled_since
        if since is None:
            self._throttled_since = now
            return Verdict(delay, warn=True)
        if now - since >= self.patience:
            return Verdict(0.0, disconnect=True)
        return Verdict(delay)

    @property
    def throttled(self) -> bool:
        """True while the client is being throttled."""
        return self._throttled_since is not None
