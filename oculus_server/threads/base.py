"""The base every daemon thread derives from: one stop event, failures reported to the main thread.

A thread's body runs inside `run()`; any exception it raises is recorded as a `Failure` on the
shared `Supervisor` and sets the stop event, so one thread's failure stops them all and the main
thread can exit non-zero naming the thread and the error.
"""

from __future__ import annotations

import logging
import threading
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from frankateach.stop_event import StopEvent
from frankateach.thread_name import set_os_thread_name
from frankateach.timing import MONOTONIC, Clock, RateStats, Ticker
from oculus_server.state import RateBoard
from oculus_server.threads.overrun import OverrunReporter
from oculus_server.threads.realtime import set_slice, try_realtime
from oculus_server.threads.wakers import Wakers

log = logging.getLogger(__name__)

# Real-time priority of the daemon's threads that keep no time but take the GIL (the helpers'
# forwarders and receivers, the sim-state subscriber) when the loops run real-time: lowest, but
# above every ordinary process, which could otherwise preempt one while it holds the GIL and so
# stall every loop until it runs again.
GIL_HOLDER_PRIORITY = 1


@dataclass(frozen=True)
class Failure:
    """A thread that died: its name and the exception text."""

    thread: str
    error: str
    traceback: str = field(default="", repr=False)


class Supervisor:
    """Holds the shared stop event and the failures of the threads."""

    def __init__(self) -> None:
        self.stop = StopEvent()  # every thread sleeps on it, each on an event of its own (no shared lock)
        self._lock = threading.Lock()
        self._failures: list[Failure] = []

    def fail(self, thread: str, exc: BaseException) -> None:
        """Records a thread's failure and stops everything."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        with self._lock:
            self._failures.append(Failure(thread, f"{exc.__class__.__name__}: {exc}", tb))
        log.error("thread %s failed: %s: %s", thread, exc.__class__.__name__, exc)
        self.stop.set()

    def failures(self) -> list[Failure]:
        with self._lock:
            return list(self._failures)


class DaemonThread(threading.Thread, ABC):
    """A named thread whose exceptions stop the daemon instead of vanishing."""

    def __init__(self, name: str, supervisor: Supervisor, realtime_priority: int = 0) -> None:
        super().__init__(name=name, daemon=True)
        self.supervisor = supervisor
        self.stop_event = supervisor.stop
        self.realtime_priority = realtime_priority
        self.realtime = False
        # How the thread asks for real-time scheduling (the daemon's `RealtimeGrant`: SCHED_FIFO, else rtkit).
        self.grant: Callable[[int], bool] = try_realtime
        self.scheduled = threading.Event()  # set once the thread has asked (`realtime` says what it got)
        # A time-keeping thread without SCHED_FIFO asks for short time slices, so it preempts a
        # CPU-bound process when it wakes at its deadline (no privilege needed; see `set_slice`).
        self.slice_s = 0.0
        self.short_slice = False

    def run(self) -> None:
        set_os_thread_name(self.name)  # `top -H`, py-spy and `perf sched` show which loop it is
        try:
            try:
                self.realtime = self.grant(self.realtime_priority)
                self._ask_short_slice()
            finally:
                self.scheduled.set()
            self.body()
        except BaseException as exc:  # noqa: BLE001 - everything must reach the main thread
            self.supervisor.fail(self.name, exc)
        finally:
            try:
                self.cleanup()
            except Exception as exc:  # noqa: BLE001
                log.warning("thread %s cleanup failed: %s", self.name, exc)

    def _ask_short_slice(self) -> None:
        if not self.realtime and self.slice_s > 0:
            self.short_slice = set_slice(self.slice_s)

    @abstractmethod
    def body(self) -> None:
        """The thread's work; returns when the stop event is set."""

    def cleanup(self) -> None:
        """Releases what the thread owns (runs in the thread, after `body`)."""


class RateThread(DaemonThread):
    """A `DaemonThread` that calls `step()` on absolute deadlines at `hz` (its `RateStats` on `rates`;
    ticks that start more than a period late go to `overruns`).

    With `waker_cpus` (two CPUs or more) and no real-time scheduling, the ticks are waited for on
    each of those CPUs, one thread each, and `step()` runs in whichever wakes first
    (`oculus_server.threads.wakers`); `step()` must then not depend on the thread it runs in.
    """

    def __init__(
        self,
        name: str,
        hz: float,
        supervisor: Supervisor,
        rates: RateBoard,
        clock: Clock = MONOTONIC,
        realtime_priority: int = 0,
        overruns: OverrunReporter | None = None,
    ) -> None:
        super().__init__(name, supervisor, realtime_priority)
        self.overruns = overruns
        self.stats = RateStats(name, hz)
        self.ticker = Ticker(hz, clock=clock, name=name, stats=self.stats)
        rates.register(self.stats)
        self.waker_cpus: tuple[int, ...] = ()  # without real-time scheduling: wait on these CPUs
        self.wakers: Wakers | None = None  # set when the ticks are waited for on several CPUs

    def body(self) -> None:
        self.setup()
        if len(self.waker_cpus) >= 2 and not self.realtime:
            self.wakers = Wakers(self.name, self.ticker, self.stop_event, self._tick, self.waker_cpus,
                                 fail=lambda exc: self.supervisor.fail(self.name, exc),
                                 on_thread_start=self._start_waker)
            self.wakers.run()
            return
        while self.ticker.wait(self.stop_event):
            self._tick()

    def _tick(self) -> None:
        if self.overruns is not None:
            self.overruns.check(self.name, self.ticker)
        self.step()

    def _start_waker(self) -> None:
        """First thing in another waker's thread: its kernel name and the loop's time slice."""
        set_os_thread_name(threading.current_thread().name)
        if self.slice_s > 0:
            set_slice(self.slice_s)

    def setup(self) -> None:
        """Runs once in the thread before the first tick."""

    @abstractmethod
    def step(self) -> None:
        """One tick of work; must not block longer than a period."""
