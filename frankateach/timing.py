"""Fixed-rate loops on absolute monotonic deadlines, and the statistics every loop reports.

`Ticker` keeps deadlines on a grid ``t0 + k·period``. A tick that finishes late runs the next one
at once, but never more than one: when a loop falls more than a period behind, the missed grid
points are skipped and counted (no burst catch-up). Each wake-up is measured, so every loop can
report its achieved rate and period jitter (|actual period − target period|).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Clock(Protocol):
    """A monotonic clock that can sleep until a deadline or until `stop` is set."""

    def now(self) -> float: ...

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        """Sleeps until `deadline` (seconds); returns False if `stop` was set first."""
        ...


class MonotonicClock:
    """The real clock: `time.monotonic()`; sleeps on the stop event so a stop wakes it at once.

    The last `spin_s` before a deadline are spent in short sleeps, which trims the wake-up
    overshoot of a single long wait (typically 50–100 µs) without burning a core.
    """

    def __init__(self, spin_s: float = 0.0) -> None:
        self.spin_s = spin_s

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        remaining = deadline - time.monotonic()
        if remaining > self.spin_s and stop.wait(remaining - self.spin_s):
            return False
        while time.monotonic() < deadline:
            if stop.is_set():
                return False
            time.sleep(0)
        return not stop.is_set()


MONOTONIC = MonotonicClock()


@dataclass(frozen=True)
class RateSnapshot:
    """A copy of one loop's timing figures.

    Attributes:
        name: loop name.
        target_hz: the rate the loop aims at.
        achieved_hz: ticks per second over the recent window.
        ticks: ticks since start.
        missed: grid points skipped because the loop was more than a period late.
        late: ticks that started after their deadline.
        jitter_p50_ms, jitter_p99_ms, jitter_max_ms: |period − target| over the window, ms.
        work_p99_ms: time spent inside the tick body, p99 over the window, ms.
        run_hz: ticks per second over the whole run.
        run_jitter_p99_ms, run_jitter_max_ms: |period − target| over the whole run, ms
            (p99 from a 10 µs-bin histogram; max exact).
    """

    name: str
    target_hz: float
    achieved_hz: float
    ticks: int
    missed: int
    late: int
    jitter_p50_ms: float
    jitter_p99_ms: float
    jitter_max_ms: float
    work_p99_ms: float
    run_hz: float = float("nan")
    run_jitter_p99_ms: float = float("nan")
    run_jitter_max_ms: float = float("nan")


HIST_BIN_MS = 0.01  # whole-run jitter histogram resolution
EVENT_IDLE_S = 1.0  # an event-driven loop silent this long (and 3 periods) shows 0 Hz
HIST_BINS = 10_000  # up to 100 ms; longer periods land in the last bin (max stays exact)


class RateStats:
    """Rolling period/jitter statistics for a loop (thread-safe snapshot)."""

    def __init__(self, name: str, target_hz: float, window: int = 4000) -> None:
        self.name = name
        self.target_hz = float(target_hz)
        self._period = 1.0 / target_hz if target_hz > 0 else float("nan")
        self._periods: deque[float] = deque(maxlen=window)
        self._work: deque[float] = deque(maxlen=window)
        self._last: float | None = None
        self._first: float | None = None
        self._hist = np.zeros(HIST_BINS, dtype=np.int64)
        self._run_max = 0.0
        self._lock = threading.Lock()
        self.ticks = 0
        self.missed = 0
        self.late = 0

    def tick(self, t: float) -> None:
        """Records that a tick started at time `t`."""
        with self._lock:
            if self._last is not None:
                period = t - self._last
                self._periods.append(period)
                if math.isfinite(self._period):
                    j = abs(period - self._period) * 1e3
                    self._hist[min(int(j / HIST_BIN_MS), HIST_BINS - 1)] += 1
                    self._run_max = max(self._run_max, j)
            else:
                self._first = t
            self._last = t
            self.ticks += 1

    def work(self, seconds: float) -> None:
        """Records how long the tick body took."""
        with self._lock:
            self._work.append(seconds)

    def snapshot(self) -> RateSnapshot:
        """Returns a copy of the current figures."""
        with self._lock:
            periods = np.fromiter(self._periods, dtype=float)
            work = np.fromiter(self._work, dtype=float)
            ticks, missed, late = self.ticks, self.missed, self.late
            hist = self._hist.copy()
            run_max = self._run_max
            span = (self._last - self._first) if self._first is not None and self._last is not None else 0.0
        if periods.size:
            achieved = 1.0 / float(periods.mean())
            # An event-driven loop (target 0, e.g. camera frames, ticked with time.monotonic())
            # that stopped ticking shows 0 Hz, not its old rate, once the silence is clearly long.
            last = self._last if self._last is not None else 0.0
            if self.target_hz <= 0 and time.monotonic() - last > max(EVENT_IDLE_S, 3.0 / achieved):
                achieved = 0.0
            jitter = np.abs(periods - self._period) * 1e3 if math.isfinite(self._period) else periods * 0
            p50, p99, pmax = (float(np.percentile(jitter, 50)), float(np.percentile(jitter, 99)), float(jitter.max()))
        else:
            achieved = p50 = p99 = pmax = float("nan")
        return RateSnapshot(
            name=self.name,
            target_hz=self.target_hz,
            achieved_hz=achieved,
            ticks=ticks,
            missed=missed,
            late=late,
            jitter_p50_ms=p50,
            jitter_p99_ms=p99,
            jitter_max_ms=pmax,
            work_p99_ms=float(np.percentile(work, 99) * 1e3) if work.size else float("nan"),
            run_hz=(ticks - 1) / span if span > 0 else float("nan"),
            run_jitter_p99_ms=_hist_percentile(hist, 99.0),
            run_jitter_max_ms=run_max if hist.sum() else float("nan"),
        )


def _hist_percentile(hist: np.ndarray, q: float) -> float:
    """The q-th percentile (upper bin edge, ms) of a jitter histogram; NaN when empty."""
    total = int(hist.sum())
    if not total:
        return float("nan")
    idx = int(np.searchsorted(np.cumsum(hist), math.ceil(total * q / 100.0)))
    return (idx + 1) * HIST_BIN_MS


class Ticker:
    """Absolute-deadline rate keeper.

    Deadlines are computed as ``t0 + k·period`` from an integer grid index (never accumulated),
    so the grid cannot drift and a tick that ends exactly on a grid point is not miscounted.

    Usage::

        ticker = Ticker(40.0)
        while ticker.wait(stop):
            do_work()
    """

    # Fraction of a period under which "now" counts as exactly on a grid point (float rounding).
    _GRID_TOLERANCE = 1e-9

    def __init__(
        self, hz: float, clock: Clock = MONOTONIC, name: str = "loop", stats: RateStats | None = None
    ) -> None:
        if not hz > 0:
            raise ValueError(f"rate must be > 0 Hz, got {hz}")
        self.period = 1.0 / float(hz)
        self.clock = clock
        self.stats = stats or RateStats(name, hz)
        self._t0: float | None = None  # grid origin, clock seconds
        self._k = 0  # grid index of the last tick
        self._work_start: float | None = None
        self.last_tick = float("nan")  # clock time of the latest wake-up (what the tick measured)
        self.last_lag = 0.0  # how long after its deadline the latest tick started, seconds (≥ 0)
        self.last_skipped = 0  # grid points skipped before the latest tick (it was that many periods late)
        self.ticks = 0  # ticks started so far (changes whenever one starts: `oculus_server.threads.wakers`)

    def wait(self, stop: threading.Event) -> bool:
        """Sleeps until the next deadline; returns False once `stop` is set.

        The first call returns at once and anchors the grid. When the caller is late by more than
        a period, the grid points already passed are skipped (counted in ``stats.missed``) and one
        tick runs immediately; the one after it waits for the next grid point again.
        """
        now = self.clock.now()
        self._end_work(now)
        if stop.is_set():
            return False
        self.last_lag, self.last_skipped = 0.0, 0
        if self._t0 is None:
            self._t0 = now
            self._k = 0
        else:
            k = self._k + 1
            deadline = self._t0 + k * self.period
            position = (now - self._t0) / self.period  # in periods since t0
            if position > k + self._GRID_TOLERANCE:  # late: the next deadline already passed
                self._advance(k, max(k, math.floor(position + self._GRID_TOLERANCE)), late=True)
            else:
                self._k = k
                if position < k - self._GRID_TOLERANCE and not self.clock.sleep_until(deadline, stop):
                    return False
                now = self.clock.now()
            self.last_lag = max(0.0, now - deadline)  # a busy machine can wake a sleeper late, too
        self._start(now)
        return True

    def next_deadline(self) -> float:
        """When the next tick is due, clock seconds (now, before the first tick)."""
        if self._t0 is None:
            return self.clock.now()
        return self._t0 + (self._k + 1) * self.period

    def take(self) -> None:
        """Starts the tick that is due, without sleeping: for a caller that slept until
        `next_deadline()` itself (`oculus_server.threads.wakers`).

        A tick taken within a period of its deadline is on time (its lateness goes into
        `last_lag`, as after a late wake-up in `wait`); later than that, the grid points passed
        are skipped and counted as in `wait`. Call `finish` when the tick's work is done.
        """
        now = self.clock.now()
        self._end_work(now)
        self.last_lag, self.last_skipped = 0.0, 0
        if self._t0 is None:
            self._t0, self._k = now, 0
        else:
            k = self._k + 1
            deadline = self._t0 + k * self.period
            latest = max(k, math.floor((now - self._t0) / self.period + self._GRID_TOLERANCE))
            self._advance(k, latest, late=latest > k)
            self.last_lag = max(0.0, now - deadline)
        self._start(now)

    def finish(self) -> None:
        """Ends the current tick's work now (`wait` otherwise counts it up to its own call)."""
        self._end_work(self.clock.now())

    def _advance(self, k: int, latest: int, late: bool) -> None:
        """The tick due at grid point `k` starts at grid point `latest` (≥ k): the points between
        are skipped and counted; `late` counts the tick as late."""
        if late:
            self.stats.late += 1
        self.stats.missed += latest - k
        self.last_skipped = latest - k
        self._k = latest

    def _end_work(self, now: float) -> None:
        if self._work_start is not None:
            self.stats.work(now - self._work_start)
            self._work_start = None

    def _start(self, now: float) -> None:
        self.stats.tick(now)
        self._work_start = now
        self.last_tick = now
        self.ticks += 1
