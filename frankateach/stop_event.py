"""StopEvent: the one stop signal that many threads sleep on, without a lock they share.

`threading.Event.wait` takes the event's internal lock on the way in and takes it again when its
timeout ends. Every loop of the daemon sleeps until its next deadline in `stop.wait`, so that one
lock is taken by every loop at every tick. A thread that gets it must then wait for Python's GIL
while holding it, and on a busy machine without real-time scheduling such a thread can sit
runnable on a starved CPU for tens of ms. Meanwhile every other loop blocks on the lock, on
whichever CPU it runs: `perf sched` on the development VM under the benchmark's mixed load showed
a 64–87 ms stall of every loop, the other CPU free for them all along, ended when the `recording`
thread, runnable on the starved CPU for 44 ms, ran for 0.2 ms.

So here each thread waits on an event of its own (made the first time it waits, kept in thread-
local storage), and `set` sets them all. The waits share no lock; a stop still wakes every
waiter at once; `is_set` and the flag are `threading.Event`'s own.
"""

from __future__ import annotations

import threading
import weakref


class StopEvent(threading.Event):
    """A `threading.Event` whose waiters do not share a lock: each thread waits on its own event."""

    def __init__(self) -> None:
        super().__init__()
        self._own = threading.local()  # .event: the calling thread's own event
        self._lock = threading.Lock()  # held only to add a waiter's event, and by set/clear
        self._events: weakref.WeakSet[threading.Event] = weakref.WeakSet()  # ends with its thread

    def _thread_event(self) -> threading.Event:
        event: threading.Event | None = getattr(self._own, "event", None)
        if event is None:
            event = threading.Event()
            with self._lock:
                self._events.add(event)
                if self.is_set():  # set before this thread's event was known to `set`
                    event.set()
            self._own.event = event
        return event

    def set(self) -> None:
        with self._lock:
            super().set()
            events = list(self._events)
        for event in events:
            event.set()

    def clear(self) -> None:
        with self._lock:
            super().clear()
            for event in self._events:
                event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits until the event is set or `timeout` (s) passes; returns whether it is set."""
        if self.is_set():
            return True
        return self._thread_event().wait(timeout) or self.is_set()
