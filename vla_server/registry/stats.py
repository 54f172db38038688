"""Per-model counters and latency windows (what `GET /v1/models/{id}/stats` shows)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from robot_formats.stats import percentile
from vla_server.constants import LATENCY_WINDOW


class Window:
    """The last `n` samples of a quantity (ms) with percentiles."""

    def __init__(self, n: int = LATENCY_WINDOW) -> None:
        self._values: deque[float] = deque(maxlen=n)

    def add(self, value: float) -> None:
        self._values.append(float(value))

    def __len__(self) -> int:
        return len(self._values)

    def percentile(self, q: float) -> float | None:
        """q-th percentile (0..100) of the window, None when empty."""
        return percentile(self._values, q)

    def mean(self) -> float | None:
        return math.fsum(self._values) / len(self._values) if self._values else None

    @property
    def last(self) -> float | None:
        return self._values[-1] if self._values else None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


@dataclass
class ModelStats:
    """Counters since the service started (they survive unloads)."""

    requests: int = 0
    failures: int = 0
    bad_inputs: int = 0  # requests whose observation was unusable (not counted as failures)
    timeouts: int = 0
    loads: int = 0
    load_failures: int = 0
    unloads: int = 0
    evictions: int = 0
    idle_unloads: int = 0
    crashes: int = 0
    restarts: int = 0
    health_failures: int = 0
    latency: Window = field(default_factory=Window)  # registry round trip, ms
    model: Window = field(default_factory=Window)  # inside Policy.infer, ms
    cold_start: Window = field(default_factory=lambda: Window(100))  # spawn → ready, ms
    eviction: Window = field(default_factory=lambda: Window(100))  # stop request → worker gone, ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "bad_inputs": self.bad_inputs,
            "timeouts": self.timeouts,
            "latency_p50_ms": _r(self.latency.percentile(50)),
            "latency_p95_ms": _r(self.latency.percentile(95)),
            "model_p50_ms": _r(self.model.percentile(50)),
            "model_p95_ms": _r(self.model.percentile(95)),
            "loads": self.loads,
            "load_failures": self.load_failures,
            "unloads": self.unloads,
            "evictions": self.evictions,
            "idle_unloads": self.idle_unloads,
            "crashes": self.crashes,
            "restarts": self.restarts,
            "health_failures": self.health_failures,
            "cold_start_ms": _r(self.cold_start.last),
            "cold_start_mean_ms": _r(self.cold_start.mean()),
            "eviction_ms": _r(self.eviction.last),
        }
