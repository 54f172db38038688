"""Exponential reconnect backoff with full jitter (delays in seconds)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Delay before reconnect attempt ``n``: uniform in [initial·2ⁿ/2, initial·2ⁿ], capped at `max_s`.

    Attributes:
        initial_s: the first delay's upper bound, s.
        max_s: the largest delay, s.
        rng: random source (inject a seeded one in tests).
    """

    initial_s: float = 0.25
    max_s: float = 5.0
    rng: random.Random | None = None
    attempt: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(f"backoff: expected 0 < initial_s <= max_s, got {self.initial_s}, {self.max_s}")

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the bound (up to `max_s`)."""
        top = min(self.max_s, self.initial_s * (2.0 ** min(self.attempt, 30)))
        self.attempt += 1
        r = (self.rng or random).random()
        return top * (0.5 + 0.5 * r)

    def reset(self) -> None:
        """Back to the first delay (after a connection that worked)."""
        self.attempt = 0
