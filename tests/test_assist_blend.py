"""The blend arithmetic: the policy's action re-based on the tick's reference (through the one
`robot_formats.action_space` pair), the average, and the α ramp."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oculus_server.assist.blend import (
    as_action,
    blend_motion,
    next_alpha,
    rebase_motion,
)
from robot_formats.action_space import (
    MAX_LIN_STEP_M,
    MAX_ROT_STEP_RAD,
    clip_action,
    clip_motion,
)
from tests.action_strategies import actions, positions, quat, rotvecs


@settings(max_examples=200, deadline=None)
@given(actions, positions, rotvecs)
def test_an_action_re_based_on_the_pose_it_saw_is_itself(action, pos, rv) -> None:
    q = quat(rv)
    motion = rebase_motion(action, pos, q, pos, q, MAX_LIN_STEP_M, MAX_ROT_STEP_RAD)
    assert motion is not None
    np.testing.assert_allclose(motion, clip_action(np.array(action))[:6], atol=1e-9)


def test_a_late_answer_keeps_its_target_instead_of_overshooting() -> None:
    """The policy saw the arm at 0.40 m and asked for +5 cm (to 0.45 m); by now the arm is at
    0.43 m: re-based, the action asks for the remaining 2 cm, not another 5."""
    down = np.array([1.0, 0.0, 0.0, 0.0])
    action = [0.05 / MAX_LIN_STEP_M, 0, 0, 0, 0, 0, 1.0]
    motion = rebase_motion(action, (0.40, 0.0, 0.2), down, (0.43, 0.0, 0.2), down, MAX_LIN_STEP_M, MAX_ROT_STEP_RAD)
    assert motion is not None
    assert motion[0] * MAX_LIN_STEP_M == pytest.approx(0.02) and max(abs(v) for v in motion[1:]) < 1e-12


def test_the_operator_scale_is_used_for_the_blend() -> None:
    """--performance moves 5 cm per full-scale action: the policy's 3 cm is 0.6 of that."""
    down = np.array([1.0, 0.0, 0.0, 0.0])
    motion = rebase_motion([0.03 / MAX_LIN_STEP_M, 0, 0, 0, 0, 0], (0.4, 0, 0.2), down, (0.4, 0, 0.2), down, 0.05, 0.1)
    assert motion is not None and motion[0] == pytest.approx(0.6)


def test_blend_is_the_weighted_average_of_the_motion_values() -> None:
    p, o = (1.0, 0.0, -1.0, 0.5, 0.0, 0.0), (0.0, 1.0, 1.0, 0.5, 0.2, -0.2, 0.9)
    got = blend_motion(0.3, p, o)
    np.testing.assert_allclose(got, [0.3, 0.7, 0.4, 0.5, 0.14, -0.14])
    assert blend_motion(0.0, p, o) == o[:6] and blend_motion(1.0, p, o) == p
    assert blend_motion(7.0, p, o) == p and blend_motion(-1.0, p, o) == o[:6]  # α clamped


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_anything_not_finite_gives_none(bad: float) -> None:
    down = (1.0, 0.0, 0.0, 0.0)
    assert as_action([0, 0, 0, 0, 0, bad, 0]) is None and as_action([0] * 6) is None and as_action("abcdefg") is None
    here = (0.4, 0, 0.2)
    assert rebase_motion([bad, 0, 0, 0, 0, 0, 0], here, down, here, down, 0.075, 0.15) is None
    assert rebase_motion([0] * 7, (0.4, bad, 0.2), down, here, down, 0.075, 0.15) is None
    assert rebase_motion([0] * 7, here, (0, 0, 0, 0), here, down, 0.075, 0.15) is None
    assert rebase_motion([0] * 7, here, down, (bad, 0, 0), down, 0.075, 0.15) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=6, max_size=6))
def test_clipped_motion_is_always_inside_the_action_box(values) -> None:
    if not all(math.isfinite(v) for v in values):
        return
    m = clip_motion(values)
    assert all(-1.0 <= v <= 1.0 for v in m)
    assert np.linalg.norm(m[:3]) <= 1.0 + 1e-12 and np.linalg.norm(m[3:]) <= 1.0 + 1e-12


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0.3, 1.0, 0.0])), min_size=1, max_size=60),
       st.sampled_from([0.1, 0.05]))
def test_alpha_rises_at_most_one_ramp_per_tick_and_drops_at_once(steps, ramp) -> None:
    alpha = 0.0
    for usable, target in steps:
        new = next_alpha(alpha, target, usable, ramp)
        if not usable:
            assert new == 0.0
        else:
            assert new <= target + 1e-12 and new - alpha <= ramp + 1e-12 and new >= 0.0
            assert new == pytest.approx(min(target, alpha + ramp))
        alpha = new
