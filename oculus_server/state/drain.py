"""`DrainLog`: a bounded, lock-guarded log one thread appends to and another drains.

Each item is taken once (`take` returns and forgets what arrived since the previous call); when the
consumer stalls, the oldest items are pushed out and counted under `overflow_counter`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

from oculus_server.state.counters import Counters

T = TypeVar("T")


class DrainLog(Generic[T]):
    """Append on one side, drain on the other; bounded to `slots` items.

    Args:
        slots: items kept at most (older ones are pushed out).
        counters: where pushed-out items are counted (under `overflow_counter`), or None.
        overflow_counter: the counter's name.
    """

    def __init__(self, slots: int, counters: Counters | None = None, overflow_counter: str = "") -> None:
        self._lock = threading.Lock()
        self._items: deque[T] = deque(maxlen=slots)
        self._slots = slots
        self._counters = counters
        self._overflow_counter = overflow_counter

    def append(self, item: T) -> None:
        with self._lock:
            full = len(self._items) == self._slots
            self._items.append(item)
        if full and self._counters is not None and self._overflow_counter:
            self._counters.count(self._overflow_counter)

    def extend(self, items: Iterable[T]) -> None:
        with self._lock:
            self._items.extend(items)

    def take(self) -> tuple[T, ...]:
        """Returns and forgets the items appended since the previous call, oldest first."""
        with self._lock:
            out = tuple(self._items)
            self._items.clear()
        return out
