"""Bounded-queue helpers: freshest-wins hand-off and newest-item take."""

from __future__ import annotations

import queue
from typing import TypeVar

T = TypeVar("T")


def put_freshest(q: queue.Queue, item: object, max_tries: int = 16) -> int:
    """Puts `item` without blocking, evicting the oldest entries if full; never raises `queue.Full`.

    Returns:
        How many items were dropped: the evicted ones, plus `item` itself if other producers kept
        the queue full for `max_tries` attempts (then it is not queued).
    """
    evicted = 0
    for _ in range(max_tries):
        try:
            q.put_nowait(item)
            return evicted
        except queue.Full:
            try:
                q.get_nowait()
                evicted += 1
            except queue.Empty:
                pass
    return evicted + 1


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
