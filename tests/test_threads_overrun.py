"""Loop overruns: a tick that starts more than a period late is counted and becomes a
``loop_overrun`` event naming the loop and the lag (virtual time, no sleeping), shown on the
dashboard and status line; a summary at most once per loop per report period."""

from __future__ import annotations

import threading

import pytest

from frankateach.timing import Ticker
from oculus_server import dashboard
from oculus_server.state import SharedState
from oculus_server.threads.base import RateThread, Supervisor
from oculus_server.threads.overrun import KIND, OverrunReporter
from tests.fakes.clock import FakeClock

HZ = 40.0
PERIOD = 1.0 / HZ


class Probe(RateThread):
    """A rate loop whose tick `i` takes `work[i]` periods of virtual time; stops after the last."""

    def __init__(self, st: SharedState, clock: FakeClock, work: list[float], reporter: OverrunReporter) -> None:
        super().__init__("probe", HZ, Supervisor(), st.rates, clock=clock, overruns=reporter)
        self.clock, self.work, self.i = clock, work, 0

    def step(self) -> None:
        if self.i >= len(self.work):
            self.stop_event.set()
            return
        self.clock.advance(self.work[self.i] * PERIOD)
        self.i += 1


def _run(work: list[float], period_s: float = 1.0) -> tuple[SharedState, FakeClock]:
    st, clock = SharedState(), FakeClock(start=100.0)
    Probe(st, clock, work, OverrunReporter(st.events, st.counters, clock=clock, period_s=period_s)).body()
    return st, clock


def test_a_tick_more_than_a_period_late_is_an_event_naming_the_loop_and_the_lag():
    st, _ = _run([0.1, 0.1, 2.5, 0.1, 0.1])  # the third tick's work runs 2.5 periods
    (ev,) = [e for e in st.events.take() if e.kind == KIND]
    # the next deadline was 1 period after the long tick started: it began 1.5 periods late
    assert ev.data["loop"] == "probe" and ev.data["late_ms"] == pytest.approx(1.5 * PERIOD * 1e3)
    assert ev.data["period_ms"] == pytest.approx(25.0) and ev.data["skipped"] == 1 and ev.data["ticks"] == 1
    assert "probe loop overran" in ev.message and "37.5 ms late" in ev.message
    assert st.counters.snapshot()["loop_overruns"] == 1
    assert "probe loop overran" in dashboard.status_line(st, 1.0)
    assert st.events.last(KIND) is ev


def test_a_tick_late_by_less_than_a_period_is_no_overrun():
    st, _ = _run([0.1, 1.9, 0.1, 1.5, 0.1])
    assert not [e for e in st.events.take() if e.kind == KIND]
    assert st.counters.snapshot()["loop_overruns"] == 0
    assert "overran" not in dashboard.status_line(st, 1.0)


def test_a_starved_loop_reports_once_then_one_summary_per_period():
    # 10 overruns within 0.5 s of virtual time, then normal ticks past the report period
    st, _ = _run([3.0] * 10 + [0.1] * 60, period_s=1.0)
    evs = [e for e in st.events.take() if e.kind == KIND]
    assert [e.data["ticks"] for e in evs] == [1, 9]  # the first at once, the rest summarised
    assert evs[1].data["late_ms"] == pytest.approx(2.0 * PERIOD * 1e3)
    assert st.counters.snapshot()["loop_overruns"] == 10


def test_a_sleeper_woken_late_by_a_busy_machine_is_an_overrun_too():
    st = SharedState()
    clock = FakeClock(start=100.0, overshoot=1.2 * PERIOD)  # every wake-up 1.2 periods late
    stop = threading.Event()
    ticker = Ticker(HZ, clock=clock)
    reporter = OverrunReporter(st.events, st.counters, clock=clock)
    assert ticker.wait(stop)  # anchors the grid
    assert ticker.wait(stop)  # sleeps until the deadline, wakes 1.2 periods after it
    assert ticker.last_lag == pytest.approx(1.2 * PERIOD) and ticker.last_skipped == 0
    reporter.check("vr", ticker)
    (ev,) = st.events.take()
    assert ev.kind == KIND and ev.data["loop"] == "vr"
