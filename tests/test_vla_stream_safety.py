"""The safety score: 1.0 exactly when every check holds, the documented factors, and properties
over arbitrary actions and states."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from frankateach.constants import ROBOT_WORKSPACE_MAX, ROBOT_WORKSPACE_MIN
from robot_formats.action_space import MAX_LIN_STEP_M, action_to_target
from robot_formats.robot_state import RobotStateIn
from vla_server.stream.safety import (
    SafetyLimits,
    assess,
    next_position,
    ratio_factor,
    sanitize_action,
)

CENTRE = RobotStateIn(pose=(0.5, 0.0, 0.35, np.pi, 0.0, 0.0), velocity=(0.0,) * 6)
HOLD = np.array([0, 0, 0, 0, 0, 0, -1.0])


def _score(raw, prev=None, state=CENTRE, fps=10.0):
    raw = np.asarray(raw, dtype=float)
    sent = sanitize_action(raw, prev)
    return assess(raw, sent, prev, state, fps, SafetyLimits())


def test_all_checks_hold_gives_exactly_one() -> None:
    r = _score([0.3, 0.1, 0, 0, 0, 0.2, 1])
    assert r.score == 1.0 and set(r.checks) == {"finite", "range", "workspace", "speed", "jump"}


def test_non_finite_output_scores_zero_and_becomes_a_hold() -> None:
    prev = np.array([0.2, 0, 0, 0, 0, 0, 1.0])
    r = _score([np.nan, 0, 0, 0, 0, 0, 1], prev=prev)
    assert r.score == 0.0 and r.checks["finite"] == 0.0
    np.testing.assert_array_equal(sanitize_action(np.array([np.inf] * 7), prev), [0, 0, 0, 0, 0, 0, 1.0])
    np.testing.assert_array_equal(sanitize_action(np.zeros(5), None), np.zeros(7))


def test_out_of_range_values_lower_the_range_factor() -> None:
    r = _score([1.5, 0, 0, 0, 0, 0, 1])
    assert r.checks["range"] == pytest.approx(0.5) and r.score <= 0.5
    assert _score([2.0, 0, 0, 0, 0, 0, 1]).checks["range"] == 0.0


def test_workspace_factor_falls_with_distance_outside_the_box() -> None:
    limits = SafetyLimits()
    x_edge = ROBOT_WORKSPACE_MAX[0]
    # at the edge, a full +x step leaves the box by MAX_LIN_STEP_M (0.075 m > 0.05 m margin) -> 0
    at_edge = RobotStateIn(pose=(x_edge, 0.0, 0.35, np.pi, 0.0, 0.0))
    assert _score([1, 0, 0, 0, 0, 0, 1], state=at_edge).checks["workspace"] == 0.0
    # 0.0375 m beyond (half a step) -> 1 - 0.0375 / 0.05 = 0.25
    half = _score([0.5, 0, 0, 0, 0, 0, 1], state=at_edge)
    assert half.checks["workspace"] == pytest.approx(1 - 0.5 * MAX_LIN_STEP_M / limits.workspace_margin_m)
    # moving back inside is fine
    assert _score([-1, 0, 0, 0, 0, 0, 1], state=at_edge).checks["workspace"] == 1.0
    below = RobotStateIn(pose=(0.5, 0.0, ROBOT_WORKSPACE_MIN[2], np.pi, 0.0, 0.0))
    assert _score([0, 0, -1, 0, 0, 0, 1], state=below).checks["workspace"] == 0.0


def test_speed_factor_from_commanded_and_measured_speed() -> None:
    # full-scale linear action at 30 Hz: 0.075 * 30 = 2.25 m/s against 1 m/s -> 0
    assert _score([1, 0, 0, 0, 0, 0, 1], fps=30.0).checks["speed"] == 0.0
    # at 10 Hz: 0.75 m/s, fine
    assert _score([1, 0, 0, 0, 0, 0, 1], fps=10.0).checks["speed"] == 1.0
    fast = RobotStateIn(pose=CENTRE.pose, velocity=(1.5, 0, 0, 0, 0, 0))
    assert _score(HOLD, state=fast).checks["speed"] == pytest.approx(0.5)


def test_jump_factor_against_the_previous_action() -> None:
    prev = np.array([1.0, 0, 0, 0, 0, 0, 1])
    assert _score([-1, 0, 0, 0, 0, 0, 1], prev=prev).checks["jump"] == 0.0  # reversal: 2 = twice the limit
    assert _score([0.2, 0, 0, 0, 0, 0, 1], prev=prev).checks["jump"] == 1.0  # 0.8 within the limit of 1
    assert _score([-0.5, 0, 0, 0, 0, 0, 1], prev=prev).checks["jump"] == pytest.approx(0.5)


def test_without_state_only_stateless_checks_apply() -> None:
    r = _score([0.5, 0, 0, 0, 0, 0, 1], state=None)
    assert r.checks["workspace"] == 1.0 and r.score == 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-0.8, 0.8), min_size=3, max_size=3), st.lists(st.floats(-3, 3), min_size=3, max_size=3),
       st.lists(st.floats(-2, 2), min_size=7, max_size=7))
def test_next_position_is_action_to_targets_position(pos, rpy, action) -> None:
    quat = Rotation.from_euler("xyz", rpy).as_quat()
    target, _, _ = action_to_target(np.asarray(pos), quat, np.asarray(action))
    np.testing.assert_allclose(next_position(np.asarray(pos), np.asarray(action)), target, atol=1e-12)


def test_ratio_factor_and_limits_validation() -> None:
    assert ratio_factor(0.5, 1.0) == 1.0 and ratio_factor(1.5, 1.0) == 0.5 and ratio_factor(3.0, 1.0) == 0.0
    with pytest.raises(ValueError, match="safety.max_jump"):
        SafetyLimits(max_jump=0)
    with pytest.raises(ValueError, match="min < max"):
        SafetyLimits(workspace_min=(1.0, 0.0, 0.0), workspace_max=(0.5, 1.0, 1.0))


floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
state_strategy = st.one_of(
    st.none(),
    st.builds(
        lambda p, v: RobotStateIn(pose=tuple(p), velocity=None if v is None else tuple(v)),
        st.lists(st.floats(-2, 2), min_size=6, max_size=6),
        st.none() | st.lists(st.floats(-5, 5), min_size=6, max_size=6),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(floats, min_size=7, max_size=7), st.none() | st.lists(st.floats(-1, 1), min_size=7, max_size=7),
       state_strategy, st.floats(0.1, 50))
def test_score_is_in_unit_interval_and_sent_action_is_safe_to_send(raw, prev, state, fps) -> None:
    raw_arr = np.asarray(raw, dtype=float)
    prev_arr = None if prev is None else np.asarray(prev)
    sent = sanitize_action(raw_arr, prev_arr)
    assert sent.shape == (7,) and np.all(np.isfinite(sent)) and np.all(np.abs(sent) <= 1.0)
    assert np.linalg.norm(sent[:3]) <= 1 + 1e-9 and np.linalg.norm(sent[3:6]) <= 1 + 1e-9
    r = assess(raw_arr, sent, prev_arr, state, fps)
    assert 0.0 <= r.score <= 1.0
    assert all(0.0 <= v <= 1.0 for v in r.checks.values())
    assert (r.score == 1.0) == all(v == 1.0 for v in r.checks.values())
    if not np.all(np.isfinite(raw_arr)):
        assert r.score == 0.0
