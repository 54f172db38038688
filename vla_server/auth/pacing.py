"""`RequestPacer`: a key's request rate on request/reply endpoints (openpi), shared by all of the
key's connections. A request beyond the tier's rate is not refused but *delayed* until it is
within it (GCRA: the theoretical arrival time advances 1/rate per request; up to `burst`
requests may come early), so a client that asks too fast is slowed to its tier's rate.

Time is injected (monotonic s): `delay` returns how long the caller must wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vla_server.constants import RATE_BURST_FRAMES


class RequestPacer:
    """Per-key pacing; used from one event loop."""

    def __init__(self, burst: float = RATE_BURST_FRAMES, clock: Callable[[], float] = time.monotonic) -> None:
        if burst < 1.0:
            raise ValueError(f"burst: expected >= 1 request, got {burst}")
        self.burst = float(burst)
        self._clock = clock
        self._tat: dict[str, float] = {}

    def delay(self, key_id: str, rate_hz: float) -> float:
        """Books one request of `key_id` at ≤ `rate_hz`; returns the seconds to wait before serving it."""
        if not rate_hz > 0:
            raise ValueError(f"rate_hz: expected > 0, got {rate_hz}")
        now = self._clock()
        interval = 1.0 / rate_hz
        tat = max(self._tat.get(key_id, now), now)
        wait = max(0.0, tat - (self.burst - 1.0) * interval - now)
        self._tat[key_id] = tat + interval
        return wait

    def forget(self, key_id: str) -> None:
        """Drops a key's state (its last connection closed)."""
        self._tat.pop(key_id, None)
