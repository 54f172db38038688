"""`FairQueue`: the model worker's request queue, served fairly across tenants.

Each tenant (an API key; a session when there is no key) has its own FIFO; `get` takes the
oldest request of the tenant served *least recently* among those waiting (ties: first come).
So a tenant that comes back after each reply (one request in flight per session) is served
next, not behind another tenant's backlog: with N busy tenants each gets about 1/N of the
worker's time, whatever its number of sessions or frame rate. Thread-safe (the worker's main
thread and its watcher thread put, the main thread gets); numpy-free so it runs in any worker environment.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

_MAX_REMEMBERED = 4096  # tenants whose last service time is kept while they have nothing queued


class FairQueue(Generic[T]):
    """Least-recently-served tenant first, FIFO within one."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[T]] = {}  # tenants with work, in order of arrival
        self._last_served: dict[str, int] = {}
        self._turn = itertools.count(1)
        self._cond = threading.Condition()
        self._closed = False

    def put(self, tenant: str, item: T) -> None:
        with self._cond:
            self._queues.setdefault(tenant, deque()).append(item)
            self._cond.notify()

    def get(self, timeout_s: float) -> T | None:
        """The next request, or None after `timeout_s` without one or once closed."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._queues and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._take()

    def get_nowait(self) -> T | None:
        """The next request, or None when none waits or once closed."""
        with self._cond:
            return self._take()

    def _take(self) -> T | None:
        if self._closed or not self._queues:
            return None
        tenant = min(self._queues, key=lambda t: self._last_served.get(t, 0))  # min keeps arrival order on ties
        q = self._queues[tenant]
        item = q.popleft()
        if not q:
            del self._queues[tenant]
        self._last_served[tenant] = next(self._turn)
        if len(self._last_served) > _MAX_REMEMBERED:
            for t in [t for t in self._last_served if t not in self._queues][: _MAX_REMEMBERED // 2]:
                del self._last_served[t]
        return item

    def close(self) -> None:
        """Wakes the getter; `get` returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())
