"""Ticker and RateStats on a virtual clock, plus one loose real-clock sanity check."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from frankateach.timing import MONOTONIC, MonotonicClock, RateStats, Ticker
from tests.fakes import FakeClock


def run(ticker: Ticker, clock: FakeClock, works: list[float], stop: threading.Event | None = None):
    """Runs the loop with the given tick-body durations; returns the tick start times."""
    stop = stop or threading.Event()
    starts = []
    for w in works:
        if not ticker.wait(stop):
            break
        starts.append(clock.now())
        clock.advance(w)
    return starts


def test_first_wait_returns_at_once_and_anchors_the_grid():
    clock = FakeClock(start=5.0)
    ticker = Ticker(10.0, clock=clock)
    assert ticker.wait(threading.Event())
    assert clock.now() == 5.0 and clock.sleeps == []


@pytest.mark.parametrize("hz", [40.0, 100.0, 30.0, 7.0])
def test_deadlines_stay_on_the_absolute_grid_over_10000_ticks(hz):
    rng = np.random.default_rng(0)
    clock = FakeClock(start=123.456, overshoot=0.0003)  # every wake-up 0.3 ms late
    ticker = Ticker(hz, clock=clock)
    period = 1.0 / hz
    works = list(rng.uniform(0.0, 0.9 * period - 0.0003, size=10_000))
    starts = run(ticker, clock, works)
    assert len(starts) == 10_000
    # Deadlines are exactly t0 + k·period: the 0.3 ms wake-up lateness never accumulates.
    deadlines = np.array(clock.sleeps)
    k = np.arange(1, len(deadlines) + 1)
    np.testing.assert_allclose(deadlines, 123.456 + k * period, rtol=0, atol=1e-9)
    assert starts[-1] == pytest.approx(123.456 + 9_999 * period + 0.0003, abs=1e-9)
    assert ticker.stats.missed == 0 and ticker.stats.late == 0 and ticker.stats.ticks == 10_000


def test_an_overrun_of_two_and_a_half_periods_skips_missed_points_without_a_burst():
    period = 0.025
    clock = FakeClock(start=0.0)
    ticker = Ticker(1 / period, clock=clock)
    works = [0.001, 0.001, 2.5 * period, 0.001, 0.001, 0.001]
    starts = run(ticker, clock, works)
    # Ticks 0, 1 on the grid; tick 2 starts at 2·P and overruns to 4.5·P. Grid point 3·P is
    # skipped, 4·P is taken by one immediate late tick at 4.5·P, then back on the grid at 5·P.
    np.testing.assert_allclose(
        starts, [0.0, period, 2 * period, 4.5 * period, 5 * period, 6 * period], atol=1e-12
    )
    assert ticker.stats.missed == 1
    assert ticker.stats.late == 1
    gaps = np.diff(starts)
    assert np.all(gaps > 0.25 * period)  # no catch-up burst of back-to-back ticks


@pytest.mark.parametrize("overrun_periods,missed", [(1.2, 0), (2.0, 1), (3.0, 2), (10.7, 9)])
def test_missed_count_is_exact_even_on_grid_points(overrun_periods, missed):
    cycles = 300
    for hz in (3.0, 7.0, 30.0, 100.0):  # periods that are not exact binary fractions
        period = 1.0 / hz
        clock = FakeClock(start=0.1)
        ticker = Ticker(hz, clock=clock)
        # Repeated overruns; an exact multiple of the period ends exactly on a grid point.
        works = [overrun_periods * period, 0.1 * period, 0.1 * period] * cycles
        starts = np.array(run(ticker, clock, works))
        assert ticker.stats.missed == missed * cycles, hz
        assert ticker.stats.late == cycles, hz  # exactly one late tick per overrun, no more
        # Every tick after a late one waits for a grid point again.
        after_late = starts[2::3] - 0.1
        np.testing.assert_allclose(after_late / period, np.round(after_late / period), atol=1e-9)


def test_stop_event_ends_the_loop_and_interrupts_a_sleep():
    stop = threading.Event()
    clock = FakeClock(start=0.0)
    ticker = Ticker(50.0, clock=clock)
    assert ticker.wait(stop)
    clock.on_sleep = lambda deadline: stop.set()  # stop arrives while the loop sleeps
    assert not ticker.wait(stop)
    assert not ticker.wait(stop)  # stays stopped


def test_stop_before_wait_returns_false_without_sleeping():
    stop = threading.Event()
    stop.set()
    clock = FakeClock()
    assert not Ticker(10.0, clock=clock).wait(stop)
    assert clock.sleeps == []


def test_invalid_rate_is_rejected():
    for hz in (0.0, -5.0, float("nan")):
        with pytest.raises(ValueError, match="rate must be > 0 Hz"):
            Ticker(hz)


def test_work_durations_are_recorded():
    clock = FakeClock(start=0.0)
    ticker = Ticker(10.0, clock=clock)
    run(ticker, clock, [0.01, 0.02, 0.03, 0.04, 0.0])
    snap = ticker.stats.snapshot()
    assert snap.work_p99_ms == pytest.approx(np.percentile([10, 20, 30, 40], 99), rel=1e-9)


# --------------------------------------------------------------------------------------------
# RateStats
# --------------------------------------------------------------------------------------------


def test_rate_stats_from_known_periods():
    stats = RateStats("loop", target_hz=100.0)
    periods = [0.010] * 50 + [0.012] * 30 + [0.008] * 20  # mean 0.0100 s -> 100 Hz
    t = 0.0
    stats.tick(t)
    for p in periods:
        t += p
        stats.tick(t)
    snap = stats.snapshot()
    assert snap.ticks == 101
    assert snap.achieved_hz == pytest.approx(1.0 / np.mean(periods), rel=1e-9)
    jitter_ms = np.abs(np.array(periods) - 0.010) * 1e3
    assert snap.jitter_p50_ms == pytest.approx(np.percentile(jitter_ms, 50), abs=1e-9)
    assert snap.jitter_p99_ms == pytest.approx(np.percentile(jitter_ms, 99), abs=1e-9)
    assert snap.jitter_max_ms == pytest.approx(2.0, abs=1e-9)
    assert snap.name == "loop" and snap.target_hz == 100.0


def test_rate_stats_slow_loop_and_window():
    stats = RateStats("slow", target_hz=50.0, window=10)
    t = 0.0
    for _ in range(100):
        stats.tick(t)
        t += 0.025  # 40 Hz against a 50 Hz target
    snap = stats.snapshot()
    assert snap.achieved_hz == pytest.approx(40.0, rel=1e-9)
    assert snap.jitter_p50_ms == pytest.approx(5.0, abs=1e-9)
    assert snap.ticks == 100


def test_rate_stats_empty_snapshot_is_nan():
    snap = RateStats("idle", 10.0).snapshot()
    assert np.isnan([snap.achieved_hz, snap.jitter_p99_ms, snap.work_p99_ms]).all()
    assert snap.ticks == 0 and snap.missed == 0


# --------------------------------------------------------------------------------------------
# Real clock (loose bounds: the test machine is shared and slow)
# --------------------------------------------------------------------------------------------


def test_real_clock_sanity():
    stop = threading.Event()
    ticker = Ticker(100.0, name="real")
    t0 = time.monotonic()
    n = 0
    while ticker.wait(stop):
        n += 1
        if time.monotonic() - t0 >= 0.3:
            stop.set()
    elapsed = time.monotonic() - t0
    assert 0.3 <= elapsed < 2.0
    snap = ticker.stats.snapshot()
    assert 5 <= n <= 40  # ~30 expected at 100 Hz over 0.3 s
    assert 20.0 < snap.achieved_hz < 150.0


def test_monotonic_clock_sleep_is_interrupted_by_stop():
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    t0 = time.monotonic()
    assert MONOTONIC.sleep_until(time.monotonic() + 5.0, stop) is False
    assert time.monotonic() - t0 < 2.0
    spin = MonotonicClock(spin_s=0.002)
    target = spin.now() + 0.01
    assert spin.sleep_until(target, threading.Event()) is True
    assert spin.now() >= target


def test_whole_run_figures_outlive_the_window():
    stats = RateStats("run", 40.0, window=10)
    t = 0.0
    periods = [0.025] * 500 + [0.032] + [0.025] * 500  # one 7 ms late period early on
    stats.tick(t)
    for p in periods:
        t += p
        stats.tick(t)
    snap = stats.snapshot()
    assert snap.jitter_max_ms < 0.5  # the window (last 10 periods) no longer sees it
    assert snap.run_jitter_max_ms == pytest.approx(7.0, abs=1e-6)
    assert snap.run_jitter_p99_ms <= 0.02  # 1 period in 1001: below the 99th percentile
    assert snap.run_hz == pytest.approx(1001 / t)


def test_take_starts_the_due_tick_for_a_caller_that_slept_itself_and_finish_ends_its_work():
    clock = FakeClock(start=10.0)
    ticker = Ticker(40.0, clock=clock)
    assert ticker.next_deadline() == 10.0  # before the first tick: due at once
    ticker.take()
    clock.advance(0.004)
    ticker.finish()  # the work ends here, not when the next tick is taken
    assert ticker.next_deadline() == pytest.approx(10.025)
    clock.t = 10.025 + 0.003  # woke 3 ms late: on time, the lateness in last_lag
    ticker.take()
    assert ticker.ticks == 2 and ticker.last_lag == pytest.approx(0.003) and ticker.last_skipped == 0
    assert ticker.stats.late == 0 and ticker.stats.missed == 0
    clock.advance(0.004)
    ticker.finish()
    clock.t = 10.0 + 4.2 * 0.025  # more than a period late: points 3 and 4 skipped (ticks 2 to 4)
    ticker.take()
    assert ticker.last_skipped == 2 and ticker.stats.missed == 2 and ticker.stats.late == 1
    assert ticker.next_deadline() == pytest.approx(10.125)
    works = ticker.stats.snapshot().work_p99_ms
    assert works == pytest.approx(4.0, abs=0.01)  # only the two measured 4 ms, never the sleeps
