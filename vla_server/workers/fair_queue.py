"""`FairQueue`: the model worker's request queue, served round-robin across tenants.

Each tenant (an API key; a session when there is no key) has its own FIFO; `get` takes the
oldest request of the next tenant in turn that has one. One tenant sending large or many
frames thus waits for its own turn: with N busy tenants, each gets about 1/N of the worker's
time instead of the share its request rate would take from a single FIFO. Thread-safe (the
worker's reader thread puts, its main thread gets); numpy-free so it runs in any worker
environment.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Round-robin over tenants, FIFO within one."""

    def __init__(self) -> None:
        self._queues: OrderedDict[str, deque[T]] = OrderedDict()  # tenants with work, in turn order
        self._cond = threading.Condition()
        self._closed = False

    def put(self, tenant: str, item: T) -> None:
        with self._cond:
            q = self._queues.get(tenant)
            if q is None:
                q = self._queues[tenant] = deque()  # a newcomer goes to the end of the turn order
            q.append(item)
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
            if self._closed:
                return None
            tenant, q = next(iter(self._queues.items()))
            item = q.popleft()
            del self._queues[tenant]
            if q:
                self._queues[tenant] = q  # served: to the back of the turn order
            return item

    def close(self) -> None:
        """Wakes the getter; `get` returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())
