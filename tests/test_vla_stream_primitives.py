"""Session building blocks with injected time: the target_fps gate, the newest-wins frame queue,
the EMA smoother."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_server.stream.ema import EmaSmoother
from vla_server.stream.frame_queue import FrameQueue
from vla_server.stream.rate import RateGate


def test_gate_admits_target_rate_and_drops_the_excess() -> None:
    gate = RateGate(10.0)
    admitted = sum(gate.admit(i / 30.0) for i in range(300))  # 30 fps for 10 s into a 10 Hz session
    assert 99 <= admitted <= 102


def test_gate_tolerates_jitter_at_exactly_the_target_rate() -> None:
    gate = RateGate(10.0)
    rng = np.random.default_rng(1)
    # a client on a 10 Hz grid of absolute deadlines, each send up to 40 ms early or late
    admitted = sum(gate.admit(0.1 * i + rng.uniform(-0.04, 0.04)) for i in range(200))
    assert admitted == 200


@settings(max_examples=100, deadline=None)
@given(st.floats(0.5, 60.0), st.lists(st.floats(0.0, 0.5), min_size=1, max_size=200))
def test_gate_never_exceeds_rate_plus_burst(rate: float, gaps: list[float]) -> None:
    gate = RateGate(rate, burst=2.0)
    t, admitted = 0.0, 0
    for g in gaps:
        t += g
        admitted += gate.admit(t)
    assert admitted <= rate * t + 2.0 + 1e-9


def test_gate_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        RateGate(0)
    with pytest.raises(ValueError, match="burst"):
        RateGate(10, burst=0.5)


def test_queue_newest_wins() -> None:
    q: FrameQueue[int] = FrameQueue(3)
    assert [q.put(i) for i in range(5)] == [0, 0, 0, 1, 1]  # 0 and 1 pushed out
    assert len(q) == 3
    assert q.take_newest() == (4, 2)  # 2 and 3 were stale
    assert q.take_newest() == (None, 0)
    q.put(7)
    assert q.clear() == 1 and len(q) == 0
    with pytest.raises(ValueError):
        FrameQueue(0)


def test_ema_matches_the_formula_and_leaves_the_gripper_alone() -> None:
    ema = EmaSmoother(0.25)
    a0 = np.array([1.0, 0, 0, 0, 0, 0, -1])
    a1 = np.array([0.0, 1, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(ema.apply(a0), a0)
    s1 = ema.apply(a1)
    np.testing.assert_allclose(s1[:6], 0.25 * a1[:6] + 0.75 * a0[:6])
    assert s1[6] == 1.0
    s2 = ema.apply(a1)
    np.testing.assert_allclose(s2[:6], 0.25 * a1[:6] + 0.75 * s1[:6])
    ema.reset()
    np.testing.assert_allclose(ema.apply(a1), a1)


def test_ema_alpha_one_is_identity_and_bad_alpha_is_refused() -> None:
    ema = EmaSmoother(1.0)
    for v in np.random.default_rng(0).uniform(-1, 1, (5, 7)):
        np.testing.assert_allclose(ema.apply(v), v)
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match="0 < alpha <= 1"):
            EmaSmoother(bad)


@settings(max_examples=100, deadline=None)
@given(st.floats(0.01, 1.0), st.lists(st.lists(st.floats(-1, 1), min_size=7, max_size=7), min_size=1, max_size=20))
def test_ema_stays_inside_the_range_of_its_inputs(alpha: float, rows: list[list[float]]) -> None:
    ema = EmaSmoother(alpha)
    arr = np.asarray(rows)
    for r in arr:
        out = ema.apply(r)
    assert np.all(out[:6] <= arr[:, :6].max(axis=0) + 1e-12) and np.all(out[:6] >= arr[:, :6].min(axis=0) - 1e-12)
