"""Several threads wait for each tick of one loop, each on its own CPU; the first awake takes it.

Without real-time scheduling, Linux shares each CPU between groups of tasks (sessions with
autogroup, cgroups under systemd) before it shares a group's time between its tasks. On a busy
machine the daemon's group can go unpicked on one CPU for tens of ms while it runs at once on
another: a loop thread that wakes on the wrong CPU waits, runnable, and its tick is late. The
waits on different CPUs are independent. A 40 Hz waker pinned to each of the two CPUs of the
development VM, beside the benchmark's mixed load for 90 s: 13 and 19 wake-ups more than 5 ms
late, the earlier of the two never more than 1.4 ms.

So a loop that does not run real-time can wait for its ticks in `Wakers`: one thread pinned to
each CPU of `cpus` (the loop's own thread is the first), all sleeping until the same deadline of
the loop's `Ticker`. The first to wake takes the tick (`Ticker.take`) and does the tick's work;
the others see that it was taken and sleep until the next one. The work runs under one lock, so
it never runs twice at once, and each grid point is taken at most once. A tick's work may thus run
on any of the wakers' threads: it must not depend on which thread it runs in (the control, VR and
recording loops only read and write shared state and queues). Real-time loops do not need it and
keep one thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence

from frankateach.timing import Ticker

log = logging.getLogger(__name__)

JOIN_S = 5.0  # how long the loop's thread waits for the other wakers to end after a stop, s


def pick_cpus(count: int, offset: int = 0, allowed: Sequence[int] | None = None) -> tuple[int, ...]:
    """`count` different CPUs among those this process may run on (`allowed`, default its
    affinity), starting at the `offset`-th (wrapping around); () if fewer than two would be left,
    i.e. one thread is all the loop gets."""
    cpus = sorted(os.sched_getaffinity(0) if allowed is None else allowed)
    n = min(count, len(cpus))
    if n < 2:
        return ()
    return tuple(cpus[(offset + i) % len(cpus)] for i in range(n))


def pin_thread(cpu: int) -> bool:
    """Keeps the calling thread on `cpu`; False (and the thread left where it was) if refused."""
    try:
        os.sched_setaffinity(0, {cpu})  # pid 0: the calling thread
        return True
    except OSError as exc:  # e.g. the CPU left this process's cpuset meanwhile
        log.warning("could not keep thread %s on CPU %d: %s", threading.current_thread().name, cpu, exc)
        return False


class Wakers:
    """The threads that wait for one loop's ticks.

    Args:
        name: the loop's name; the other wakers' threads are named ``name-2``, ``name-3`` ….
        ticker: the loop's ticker (its grid, statistics and lateness figures).
        stop: the daemon's stop event: every waker returns once it is set.
        tick: one tick's work (the loop's overrun check and step).
        cpus: one CPU per waker (at least two); the first is the calling thread's.
        fail: called with an exception raised in a waker other than the first (which raises it).
        on_thread_start: called first in each new waker thread (its kernel name, time slice).
    """

    def __init__(
        self,
        name: str,
        ticker: Ticker,
        stop: threading.Event,
        tick: Callable[[], None],
        cpus: Sequence[int],
        fail: Callable[[BaseException], None],
        on_thread_start: Callable[[], None] = lambda: None,
    ) -> None:
        if len(cpus) < 2:
            raise ValueError(f"wakers need at least two CPUs, got {list(cpus)}")
        self.name = name
        self.ticker = ticker
        self.stop = stop
        self.tick = tick
        self.cpus = tuple(cpus)
        self.fail = fail
        self.on_thread_start = on_thread_start
        self._lock = threading.Lock()  # held while a tick is taken and worked on
        self.taken: dict[str, int] = {}  # thread name → ticks it took (read by tests; not on the dashboard)

    def run(self) -> None:
        """Runs the first waker in the calling thread and the others in new threads; returns once
        the stop event is set (an exception from the first waker's tick propagates at once)."""
        others = [threading.Thread(target=self._other, args=(cpu,), name=f"{self.name}-{i}", daemon=True)
                  for i, cpu in enumerate(self.cpus[1:], start=2)]
        for t in others:
            t.start()
        self._wait_and_tick(self.cpus[0])
        for t in others:
            t.join(JOIN_S)

    def _other(self, cpu: int) -> None:
        try:
            self.on_thread_start()
            self._wait_and_tick(cpu)
        except BaseException as exc:  # noqa: BLE001 - a failure in any waker stops the daemon
            self.fail(exc)

    def _wait_and_tick(self, cpu: int) -> None:
        pin_thread(cpu)
        me = threading.current_thread().name
        clock = self.ticker.clock
        with self._lock:
            deadline, seen = self.ticker.next_deadline(), self.ticker.ticks
        while True:
            if self.stop.is_set() or not clock.sleep_until(deadline, self.stop):
                return
            with self._lock:
                if self.stop.is_set():
                    return
                if self.ticker.ticks == seen:  # else another waker was first
                    self.ticker.take()
                    self.taken[me] = self.taken.get(me, 0) + 1
                    try:
                        self.tick()
                    finally:
                        self.ticker.finish()
                deadline, seen = self.ticker.next_deadline(), self.ticker.ticks
