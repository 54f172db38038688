"""Per-session counters: what `{"type":"stats"}` and `GET /v1/sessions` report."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from vla_server.constants import FPS_WINDOW_S
from vla_server.registry.stats import Window


@dataclass
class SessionStats:
    """Counters of one session; times in monotonic s, latencies in ms.

    `total_frames` counts valid frames; each is eventually one of: answered (`actions`), dropped
    (`dropped_rate`: beyond target_fps, `dropped_queue`: pushed out of a full queue,
    `dropped_stale`: older than the newest when the model became free), `failed` (the model
    failed on it), `bad_frames` (its JPEG did not decode), or still queued / in flight.
    """

    started: float
    total_frames: int = 0
    actions: int = 0
    dropped_rate: int = 0
    dropped_queue: int = 0
    dropped_stale: int = 0
    failed: int = 0
    bad_frames: int = 0
    bad_messages: int = 0
    dropped_outbox: int = 0  # actions discarded because the client did not read them
    latency_sum_ms: float = 0.0
    latency: Window = field(default_factory=Window)
    model_ms: Window = field(default_factory=Window)
    last_safety: float | None = None
    _action_times: deque[float] = field(default_factory=deque)

    @property
    def dropped(self) -> int:
        return self.dropped_rate + self.dropped_queue + self.dropped_stale

    def record_action(self, now: float, latency_ms: float, model_ms: float, safety: float) -> None:
        self.actions += 1
        self.latency_sum_ms += latency_ms
        self.latency.add(latency_ms)
        self.model_ms.add(model_ms)
        self.last_safety = safety
        self._action_times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._action_times and self._action_times[0] < now - FPS_WINDOW_S:
            self._action_times.popleft()

    def actual_fps(self, now: float) -> float:
        """Actions per second over the trailing window (shorter at the session's start)."""
        self._trim(now)
        span = min(FPS_WINDOW_S, now - self.started)
        return len(self._action_times) / span if span > 0 else 0.0

    def drop_rate_percent(self) -> float:
        return 100.0 * self.dropped / self.total_frames if self.total_frames else 0.0

    def avg_latency_ms(self) -> float:
        return self.latency_sum_ms / self.actions if self.actions else 0.0
