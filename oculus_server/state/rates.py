"""`RateBoard`: every loop's `RateStats`, registered once, snapshotted for the dashboard and ``/timing``."""

from __future__ import annotations

import threading

from frankateach.timing import RateSnapshot, RateStats


class RateBoard:
    """The loops' rate statistics by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rates: dict[str, RateStats] = {}

    def register(self, stats: RateStats) -> None:
        with self._lock:
            self._rates[stats.name] = stats

    def snapshot(self) -> dict[str, RateSnapshot]:
        with self._lock:
            stats = list(self._rates.values())
        return {s.name: s.snapshot() for s in stats}
