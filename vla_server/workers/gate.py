"""`PolicyGate`: one policy, two threads that run it — the worker's main thread (requests from the
service) and its openpi host (connections handed over by the service, `vla_server.workers.openpi_host`).
One runs the policy at a time; when both wait, turns go in arrival order (FIFO), so neither side
can starve the other. Uncontended, entering is one lock round (no thread wake-up).

The main thread waits blocking (`enter`); the host's event loop waits without blocking the loop
(`enter_async`: a future resolved through ``call_soon_threadsafe``). Numpy-free.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable


class PolicyGate:
    """FIFO turns at one policy. Every successful enter is paired with one `leave`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._waiters: deque[Callable[[], None]] = deque()

    def try_enter(self) -> bool:
        """Takes the turn when nobody holds or waits for it; False otherwise (nothing booked)."""
        with self._lock:
            if self._busy or self._waiters:
                return False
            self._busy = True
            return True

    def enter(self) -> None:
        """Blocks until it is this thread's turn."""
        event = threading.Event()
        with self._lock:
            if not self._busy and not self._waiters:
                self._busy = True
                return
            self._waiters.append(event.set)
        event.wait()

    def enter_async(self) -> asyncio.Future[None]:
        """A future of the running loop, done when the turn is the caller's (at once when free).
        Cancelling it before it is done is not allowed: the turn would be lost."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def grant() -> None:
            loop.call_soon_threadsafe(fut.set_result, None)

        with self._lock:
            if not self._busy and not self._waiters:
                self._busy = True
                fut.set_result(None)
                return fut
            self._waiters.append(grant)
        return fut

    @property
    def waiting(self) -> int:
        """How many wait for a turn now."""
        with self._lock:
            return len(self._waiters)

    def leave(self) -> None:
        """Ends the holder's turn: the longest waiter gets it, or the gate is free."""
        with self._lock:
            grant = self._waiters.popleft() if self._waiters else None
            if grant is None:
                self._busy = False
        if grant is not None:
            grant()
