"""The per-session frame queue (`INFERENCE_QUEUE_MAX_SIZE`): bounded, newest frame wins.

A frame that arrives while the queue is full pushes the oldest one out; when the model becomes
free the session takes the *newest* waiting frame and the older ones are dropped as stale (a
robot wants an action for what it sees now, not for a backlog). Both kinds of drop are counted
by the caller from the return values.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameQueue(Generic[T]):
    """Bounded queue of pending frames. Not thread-safe (one event loop owns it)."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"frame queue maxsize: expected >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[T] = deque()

    def put(self, item: T) -> int:
        """Adds `item`; returns how many older frames were pushed out (0 or 1)."""
        evicted = 0
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            evicted = 1
        self._items.append(item)
        return evicted

    def take_newest(self) -> tuple[T | None, int]:
        """Returns (newest frame or None when empty, number of older frames dropped as stale)."""
        if not self._items:
            return None, 0
        newest = self._items.pop()
        stale = len(self._items)
        self._items.clear()
        return newest, stale

    def clear(self) -> int:
        """Empties the queue; returns how many frames were discarded."""
        n = len(self._items)
        self._items.clear()
        return n

    def __len__(self) -> int:
        return len(self._items)
