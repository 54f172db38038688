"""Bounded-queue helpers: freshest-wins hand-off and newest-item take."""

from __future__ import annotations

import queue
from typing import TypeVar

T = TypeVar("T")


def put_freshest(q: queue.Queue, item: object) -> int:
    """Puts `item` without blocking, evicting the oldest entries if full; returns how many."""
    evicted = 0
    while True:
        try:
            q.put_nowait(item)
            return evicted
        except queue.Full:
            try:
                q.get_nowait()
                evicted += 1
            except queue.Empty:
                pass


def take_newest(q: queue.Queue, timeout_s: float) -> tuple[object | None, int]:
    """Waits up to `timeout_s` for an item, then drains the queue.

    Returns:
        (newest item or None, how many older items were discarded).
    """
    try:
        item = q.get(timeout=timeout_s)
    except queue.Empty:
        return None, 0
    skipped = 0
    while True:
        try:
            item = q.get_nowait()
            skipped += 1
        except queue.Empty:
            return item, skipped
