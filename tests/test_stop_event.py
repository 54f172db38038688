"""StopEvent: every thread waits on an event of its own; a stop wakes them all at once."""

from __future__ import annotations

import threading
import time

import pytest

from frankateach.stop_event import StopEvent


def waiters(stop: threading.Event, n: int, timeout: float) -> tuple[list[threading.Thread], list[bool]]:
    results: list[bool] = []
    started = threading.Barrier(n + 1)

    def body() -> None:
        started.wait(5.0)
        results.append(stop.wait(timeout))

    threads = [threading.Thread(target=body, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    started.wait(5.0)
    return threads, results


def test_set_wakes_every_waiter_and_later_waits_return_at_once():
    stop = StopEvent()
    threads, results = waiters(stop, 8, timeout=30.0)
    time.sleep(0.05)  # most are asleep in their wait by now; the others see the flag
    stop.set()
    for t in threads:
        t.join(5.0)
    assert results == [True] * 8 and not any(t.is_alive() for t in threads)
    assert stop.is_set() and stop.wait(30.0) is True and stop.wait(0) is True


def test_a_wait_that_times_out_returns_false():
    stop = StopEvent()
    t0 = time.monotonic()
    assert stop.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.05
    assert stop.wait(0) is False and not stop.is_set()


def test_a_thread_that_first_waits_after_the_stop_sees_it():
    stop = StopEvent()
    stop.set()
    threads, results = waiters(stop, 3, timeout=30.0)
    for t in threads:
        t.join(5.0)
    assert results == [True] * 3


def test_clear_rearms_every_threads_event():
    stop = StopEvent()
    assert stop.wait(0.001) is False  # this thread's own event now exists
    stop.set()
    stop.clear()
    assert not stop.is_set() and stop.wait(0.01) is False
    stop.set()
    assert stop.wait(0.01) is True


@pytest.mark.parametrize("kind", [StopEvent, threading.Event])
def test_a_waiter_is_not_held_up_by_a_thread_holding_the_events_own_lock(kind: type[threading.Event]):
    """The stall it prevents: a thread that took `threading.Event`'s lock (on the way into or
    out of a wait) and then sits runnable on a starved CPU, waiting for the GIL, holds up every
    other thread's wait. Here the test itself holds that lock, as such a thread would."""
    stop = kind()
    held = stop._cond  # the lock `threading.Event.wait` takes on the way in and out
    assert held.acquire(timeout=1.0)
    try:
        threads, results = waiters(stop, 2, timeout=0.02)
        deadline = time.monotonic() + 1.0  # the waits time out after 0.02 s: plenty under load
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        finished = not any(t.is_alive() for t in threads)
    finally:
        held.release()
    for t in threads:
        t.join(5.0)
    if kind is StopEvent:
        assert finished and results == [False, False]
    else:  # the plain event: its waiters were stuck until the lock was released
        assert not finished and results == [False, False]
