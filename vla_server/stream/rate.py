"""The `target_fps` gate: a token bucket that admits at most `rate_hz` frames per second on
average, with a small burst so a client's send jitter is not punished. Time is injected (s,
monotonic) so the logic is tested without sleeping."""

from __future__ import annotations

from vla_server.constants import RATE_BURST_FRAMES


class RateGate:
    """Admits frames at ≤ `rate_hz` on average; a frame that finds < 1 token is dropped."""

    def __init__(self, rate_hz: float, burst: float = RATE_BURST_FRAMES) -> None:
        if rate_hz <= 0:
            raise ValueError(f"rate_hz: expected > 0, got {rate_hz}")
        if burst < 1.0:
            raise ValueError(f"burst: expected >= 1 frame, got {burst}")
        self.rate_hz = float(rate_hz)
        self.burst = float(burst)
        self._tokens = self.burst  # full: a client on the rate's grid may send a little early
        self._last: float | None = None

    def admit(self, now_s: float) -> bool:
        """True when a frame arriving at `now_s` (monotonic s) is within the rate."""
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + max(0.0, now_s - self._last) * self.rate_hz)
        self._last = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
