"""Exponential reconnect backoff with full jitter (delays in seconds), and the first-connect
retry loop both clients use."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from vla_client.errors import ConnectionLost, Timeout

T = TypeVar("T")


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


async def open_with_retry(
    open_once: Callable[[], Awaitable[T]], backoff: Backoff, clock: Callable[[], float], wait_s: float
) -> T:
    """A client's first connection: retries `open_once` with `backoff` while the service is not up.

    Args:
        open_once: one connection attempt.
        backoff: the delays between attempts (reset before the first and after success).
        clock: monotonic clock, s.
        wait_s: keep retrying while the next attempt would start within this many seconds of the
            call; 0 = one attempt.

    Raises:
        ConnectionLost, Timeout: the last attempt's error, once `wait_s` is spent.
        VLAClientError: any other refusal, at once (not retried).
    """
    deadline = clock() + max(0.0, wait_s)
    backoff.reset()
    while True:
        try:
            opened = await open_once()
            break
        except (ConnectionLost, Timeout):
            delay = backoff.next_delay()
            if clock() + delay > deadline:
                raise
            await asyncio.sleep(delay)
    backoff.reset()
    return opened
