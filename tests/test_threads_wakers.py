"""Wakers: several threads wait for each tick of one loop; the first awake takes it, once.

The claim is tested on a clock whose sleeps the test releases one by one (so which waker is
first is chosen, not hoped for); the threads, their CPUs and names on the real clock."""

from __future__ import annotations

import os
import threading
import time

import pytest

from frankateach.timing import Ticker
from oculus_server.state import SharedState
from oculus_server.threads.base import RateThread, Supervisor
from oculus_server.threads.wakers import Wakers, pick_cpus
from tests.daemon_fakes import threads

HZ = 40.0
PERIOD = 1.0 / HZ


class GateClock:
    """A `Clock` whose `sleep_until` blocks until the test releases that thread's sleep.

    `now()` is the virtual time the test sets; a released sleep moves it to at least the
    deadline. `sleeping(name)` waits until thread `name` is blocked in a sleep."""

    def __init__(self, start: float = 100.0) -> None:
        self.t = start
        self._cv = threading.Condition()
        self._asleep: dict[str, float] = {}  # thread name → deadline it sleeps until
        self._released: set[str] = set()
        self.closed = False

    def now(self) -> float:
        with self._cv:
            return self.t

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        me = threading.current_thread().name
        with self._cv:
            self._asleep[me] = deadline
            self._cv.notify_all()
            self._cv.wait_for(lambda: me in self._released or self.closed)
            self._released.discard(me)
            del self._asleep[me]
            self.t = max(self.t, deadline)
            self._cv.notify_all()
        return not stop.is_set()

    def sleeping(self, name: str, timeout: float = 5.0) -> float:
        """Waits until `name` sleeps; returns its deadline."""
        with self._cv:
            assert self._cv.wait_for(lambda: name in self._asleep and name not in self._released, timeout), \
                f"{name} never went to sleep (asleep: {self._asleep})"
            return self._asleep[name]

    def release(self, name: str) -> None:
        """Lets `name`'s current sleep return, and waits until it has."""
        with self._cv:
            self._released.add(name)
            self._cv.notify_all()
            assert self._cv.wait_for(lambda: name not in self._released, 5.0), f"{name} did not wake"

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()


def any_cpu() -> int:
    return min(os.sched_getaffinity(0))


class Loop:
    """Wakers around a recording tick function: who took which tick, and whether two overlapped."""

    def __init__(self, clock: GateClock, fail_on: int = 0) -> None:
        self.ticker = Ticker(HZ, clock=clock)
        self.stop = threading.Event()
        self.steps: list[tuple[str, int]] = []
        self.failures: list[BaseException] = []
        self.inside = 0
        self.overlaps = 0
        self.fail_on = fail_on
        cpu = any_cpu()  # both on one CPU: the claim does not depend on where they run
        self.wakers = Wakers("loop", self.ticker, self.stop, self.tick, (cpu, cpu), fail=self.fail)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="loop", daemon=True)

    def _run(self) -> None:
        try:
            self.wakers.run()
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.error = exc
            self.stop.set()

    def tick(self) -> None:
        self.inside += 1
        self.overlaps += self.inside > 1
        self.steps.append((threading.current_thread().name, self.ticker.ticks))
        self.inside -= 1
        if len(self.steps) == self.fail_on:
            raise RuntimeError(f"boom on tick {self.fail_on}")

    def fail(self, exc: BaseException) -> None:
        self.failures.append(exc)
        self.stop.set()


@pytest.fixture
def gate():
    clock = GateClock()
    yield clock
    clock.close()


def test_the_first_waker_awake_takes_the_tick_and_the_other_skips_it(gate: GateClock):
    loop = Loop(gate)
    loop.thread.start()
    # Both wait for the first tick (due at once); loop-2 wakes first and takes it.
    gate.sleeping("loop"), gate.sleeping("loop-2")
    gate.release("loop-2")
    t0 = gate.sleeping("loop-2")  # back asleep, until the second tick
    assert loop.steps == [("loop-2", 1)]
    assert t0 == pytest.approx(100.0 + PERIOD)
    gate.release("loop")  # woke after the tick was taken: does nothing, sleeps until the next
    assert gate.sleeping("loop") == pytest.approx(t0)
    assert loop.steps == [("loop-2", 1)]
    # The second tick: this time the loop's own thread is first.
    gate.t = t0 + 0.0004
    gate.release("loop")
    gate.sleeping("loop")
    gate.release("loop-2")
    gate.sleeping("loop-2")
    assert loop.steps == [("loop-2", 1), ("loop", 2)]
    assert loop.ticker.last_lag == pytest.approx(0.0004)
    assert loop.wakers.taken == {"loop-2": 1, "loop": 1}
    assert loop.ticker.stats.late == 0 and loop.ticker.stats.missed == 0
    loop.stop.set()
    gate.close()
    loop.thread.join(5.0)
    assert not loop.thread.is_alive() and loop.error is None and loop.overlaps == 0


def test_a_waker_that_wakes_more_than_a_period_late_skips_the_points_passed(gate: GateClock):
    loop = Loop(gate)
    loop.thread.start()
    gate.sleeping("loop"), gate.sleeping("loop-2")
    gate.release("loop")  # tick 1 anchors the grid at 100.0
    gate.sleeping("loop")
    gate.release("loop-2")
    gate.sleeping("loop-2")
    gate.t = 100.0 + 3.5 * PERIOD  # both stalled: the first awake is 2.5 periods late
    gate.release("loop-2")
    gate.sleeping("loop-2")
    assert loop.steps[-1] == ("loop-2", 2)
    assert loop.ticker.last_skipped == 2 and loop.ticker.stats.missed == 2 and loop.ticker.stats.late == 1
    assert gate.sleeping("loop-2") == pytest.approx(100.0 + 4 * PERIOD)  # back on the grid
    loop.stop.set()
    gate.close()
    loop.thread.join(5.0)


def test_a_failure_in_the_other_waker_is_reported_and_stops_the_loop(gate: GateClock):
    loop = Loop(gate, fail_on=1)
    loop.thread.start()
    gate.sleeping("loop"), gate.sleeping("loop-2")
    gate.release("loop-2")
    assert loop.stop.wait(5.0)
    assert [str(e) for e in loop.failures] == ["boom on tick 1"] and loop.stop.is_set()
    gate.close()
    loop.thread.join(5.0)
    assert not loop.thread.is_alive() and loop.error is None


def test_a_failure_in_the_loops_own_thread_propagates(gate: GateClock):
    loop = Loop(gate, fail_on=1)
    loop.thread.start()
    gate.sleeping("loop"), gate.sleeping("loop-2")
    gate.release("loop")
    loop.thread.join(5.0)
    assert isinstance(loop.error, RuntimeError) and str(loop.error) == "boom on tick 1"
    assert loop.failures == []


@pytest.mark.parametrize(
    "count,offset,allowed,expected",
    [
        (2, 0, [0, 1], (0, 1)),
        (2, 2, [0, 1], (0, 1)),  # wraps around
        (2, 1, [0, 1, 2, 3], (1, 2)),
        (2, 3, [0, 1, 2, 3], (3, 0)),
        (4, 0, [5, 3], (3, 5)),  # no more wakers than CPUs
        (2, 0, [7], ()),  # one CPU: one thread
        (1, 0, [0, 1, 2], ()),  # one waker asked for: one thread
    ],
)
def test_pick_cpus(count: int, offset: int, allowed: list[int], expected: tuple[int, ...]):
    assert pick_cpus(count, offset, allowed) == expected


def test_wakers_need_two_cpus():
    with pytest.raises(ValueError, match=r"at least two CPUs, got \[0\]"):
        Wakers("x", Ticker(HZ), threading.Event(), lambda: None, (0,), fail=lambda exc: None)


# -- real threads on the real clock ---------------------------------------------------------------
class Counting(RateThread):
    def __init__(self, sv: Supervisor, st: SharedState, hz: float = 200.0) -> None:
        super().__init__("counting", hz, sv, st.rates)
        self.steps = 0
        self.inside = 0
        self.overlaps = 0

    def step(self) -> None:
        self.inside += 1
        self.overlaps += self.inside > 1
        self.steps += 1
        time.sleep(0.0005)  # releases the GIL: another waker could step now if the claim let it
        self.inside -= 1


def tids_named(name: str) -> list[int]:
    return [tid for comm, tid in threads() if comm == name]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_a_rate_thread_without_realtime_waits_on_each_cpu_and_steps_each_tick_once():
    sv, st = Supervisor(), SharedState()
    t = Counting(sv, st)
    t.grant = lambda priority: False  # no real-time scheduling
    t.waker_cpus = pick_cpus(2)
    t.start()
    try:
        deadline = time.monotonic() + 5.0
        while (t.wakers is None or not tids_named("counting-2")) and time.monotonic() < deadline:
            time.sleep(0.01)
        (other,) = tids_named("counting-2")
        assert ("counting", t.native_id) in threads()
        assert os.sched_getaffinity(t.native_id) == {t.waker_cpus[0]}
        assert os.sched_getaffinity(other) == {t.waker_cpus[1]}
        until = time.monotonic() + 10.0
        while t.steps < 50 and time.monotonic() < until:
            time.sleep(0.01)
    finally:
        sv.stop.set()
        t.join(5.0)
    assert not t.is_alive() and not tids_named("counting-2") and sv.failures() == []
    assert t.wakers is not None and t.overlaps == 0
    assert t.steps == t.ticker.ticks == sum(t.wakers.taken.values()) >= 50
    assert set(t.wakers.taken) <= {"counting", "counting-2"}


def test_a_real_time_rate_thread_keeps_one_thread():
    sv, st = Supervisor(), SharedState()
    t = Counting(sv, st)
    t.realtime_priority = 5
    t.grant = lambda priority: True  # as if SCHED_FIFO had been granted
    t.waker_cpus = (any_cpu(), any_cpu())
    t.start()
    try:
        until = time.monotonic() + 10.0
        while t.steps < 5 and time.monotonic() < until:
            time.sleep(0.01)
        assert t.wakers is None and not tids_named("counting-2") and t.steps >= 5
    finally:
        sv.stop.set()
        t.join(5.0)
    assert not t.is_alive()
