"""A virtual clock for testing fixed-rate loops without sleeping."""

from __future__ import annotations

import threading
from collections.abc import Callable


class FakeClock:
    """Implements `frankateach.timing.Clock` on virtual time (seconds).

    `sleep_until` jumps straight to the deadline (plus an optional wake-up overshoot), so
    10 000 ticks run in milliseconds. `advance` stands for work done inside a tick body.

    Args:
        start: initial virtual time, seconds.
        overshoot: seconds added to every wake-up (models a late OS wake-up).
        on_sleep: called with the deadline before each sleep (e.g. to set the stop event).
    """

    def __init__(
        self,
        start: float = 1000.0,
        overshoot: float = 0.0,
        on_sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.t = float(start)
        self.overshoot = float(overshoot)
        self.on_sleep = on_sleep
        self.sleeps: list[float] = []  # every deadline slept until, in order

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        """Moves virtual time forward by `seconds` (the duration of some work)."""
        if seconds < 0:
            raise ValueError(f"time only moves forward, got {seconds}")
        self.t += seconds

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        self.sleeps.append(deadline)
        if self.on_sleep is not None:
            self.on_sleep(deadline)
        if stop.is_set():
            return False
        self.t = max(self.t, deadline + self.overshoot)
        return True
