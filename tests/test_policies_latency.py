"""The latency wrapper: adds wall-clock delay on top of the inner policy, interruptible."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.fakes import FakeClock
from vla_server.policies.base import Observation
from vla_server.policies.latency import LatencyPolicy
from vla_server.policies.scripted import ScriptedPolicy


def _recorder(waits: list[float]):
    """A `wait` that records the seconds asked for and never reports an interruption."""

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    return wait


def _obs() -> Observation:
    return Observation(image=np.zeros((4, 4, 3), np.uint8), instruction="x")


class SlowInner(ScriptedPolicy):
    """A scripted policy whose inference advances a fake clock by `cost_s`."""

    def __init__(self, clock: FakeClock, cost_s: float) -> None:
        super().__init__("slow")
        self.clock, self.cost_s = clock, cost_s

    def infer(self, obs: Observation) -> np.ndarray:
        self.clock.advance(self.cost_s)
        return super().infer(obs)


def test_waits_latency_on_top_of_the_inner_time() -> None:
    clock = FakeClock()
    waits: list[float] = []
    inner = SlowInner(clock, cost_s=0.02)
    p = LatencyPolicy(inner, 283.0, clock=clock.now, wait=_recorder(waits))
    out = p.infer(_obs())
    np.testing.assert_array_equal(out, inner.infer(_obs()))
    assert waits == [pytest.approx(0.283)]
    assert p.last_wait_s == pytest.approx(0.283)


def test_zero_latency_never_waits() -> None:
    waits: list[float] = []
    p = LatencyPolicy(ScriptedPolicy(), 0.0, wait=_recorder(waits))
    p.infer(_obs())
    assert waits == []


def test_info_and_sessions_pass_through() -> None:
    inner = ScriptedPolicy("inner", {"horizon": 3})
    p = LatencyPolicy(inner, 50.0)
    info = p.info()
    assert info.action_horizon == 3 and info.backend == "scripted"
    assert info.extra["emulated_latency_ms"] == 50.0 and "+50 ms" in info.description


def test_real_wait_and_close_interrupts_it() -> None:
    p = LatencyPolicy(ScriptedPolicy(), 30.0)
    t0 = time.monotonic()
    p.infer(_obs())
    assert time.monotonic() - t0 >= 0.03  # a lower bound only: the wait really happens
    slow = LatencyPolicy(ScriptedPolicy(), 30_000.0)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            slow.infer(_obs())
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    th = threading.Thread(target=run)
    th.start()
    time.sleep(0.05)
    slow.close()
    th.join(timeout=5.0)
    assert not th.is_alive() and len(errors) == 1 and isinstance(errors[0], InterruptedError)


@pytest.mark.parametrize("bad", [-1.0, 60_001.0])
def test_bad_latency(bad: float) -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        LatencyPolicy(ScriptedPolicy(), bad)
