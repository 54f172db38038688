"""The one action ↔ pose-target pair (`robot_formats.action_space`): scipy is the reference for
the rotation arithmetic, the two functions invert each other within one step, and nothing that
is not finite ever becomes a target."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from robot_formats.action_space import (
    GRIPPER_CLOSED,
    GRIPPER_OPEN,
    MAX_LIN_STEP_M,
    MAX_ROT_STEP_RAD,
    ActionError,
    action_to_target,
    clip_action,
    clip_motion,
    target_to_action,
    validate_action,
    validate_chunk,
)
from robot_formats.rotations import quat_diff, quat_to_euler_xyz
from tests.action_strategies import actions, finite, positions, quat, rotvecs, same_rotation

scales = st.tuples(st.floats(0.01, 0.2), st.floats(0.01, 0.5))


@settings(max_examples=300, deadline=None)
@given(actions, positions, rotvecs, scales)
def test_action_to_target_is_the_documented_arithmetic(action, pos, rv, scale) -> None:
    """target_pos = pos + lin · max_lin; target_rot = R_xyz(rot · max_rot) · R(quat), after clipping."""
    max_lin, max_rot = scale
    q = quat(rv)
    a = clip_action(np.array(action))
    got = action_to_target(pos, q, action, max_lin, max_rot)
    assert got is not None
    np.testing.assert_allclose(got.pos, np.array(pos) + a[:3] * max_lin, atol=1e-12)
    want = (Rotation.from_euler("xyz", a[3:6] * max_rot) * Rotation.from_quat(q)).as_quat()
    assert same_rotation(got.quat, want)
    assert got.gripper == a[6]
    assert action_to_target(pos, q, action[:6], max_lin, max_rot).gripper is None  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(actions, positions, rotvecs, scales)
def test_round_trip_action_target_action_is_the_clipped_action(action, pos, rv, scale) -> None:
    max_lin, max_rot = scale
    q = quat(rv)
    target = action_to_target(pos, q, action, max_lin, max_rot)
    assert target is not None
    back = target_to_action(pos, q, target.pos, target.quat, target.gripper, max_lin, max_rot)
    assert back is not None and len(back) == 7
    np.testing.assert_allclose(back, clip_action(np.array(action)), atol=1e-9)


@settings(max_examples=300, deadline=None)
@given(positions, rotvecs, st.lists(st.floats(-0.07, 0.07), min_size=3, max_size=3),
       st.lists(st.floats(-0.14, 0.14), min_size=3, max_size=3).filter(lambda v: np.linalg.norm(v) <= 0.149))
@example([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.078125, 0.08984375, 0.087890625])  # Euler norm > 0.15
def test_round_trip_target_action_target_within_one_step(pos, rv, dpos, drv) -> None:
    q = quat(rv)
    tq = (Rotation.from_rotvec(drv) * Rotation.from_quat(q)).as_quat()
    tp = np.array(pos) + np.array(dpos)
    if np.linalg.norm(dpos) > MAX_LIN_STEP_M:
        return
    # One step is measured as the action measures it: its rotation part is x-y-z Euler angles of the
    # delta (a rotation vector of norm ≤ 0.149 can have Euler angles of norm just over 0.15).
    if np.linalg.norm(quat_to_euler_xyz(quat_diff(tq, q))) > MAX_ROT_STEP_RAD:
        return
    a = target_to_action(pos, q, tp, tq, 0.5)
    assert a is not None
    back = action_to_target(pos, q, a)
    assert back is not None
    np.testing.assert_allclose(back.pos, tp, atol=1e-9)
    assert same_rotation(back.quat, tq, tol=1e-9) and back.gripper == 0.5


@settings(max_examples=200, deadline=None)
@given(positions, rotvecs, st.lists(st.floats(-5.0, 5.0), min_size=3, max_size=3), rotvecs)
def test_target_to_action_saturates_at_full_scale(pos, rv, dpos, drv) -> None:
    q = quat(rv)
    tq = (Rotation.from_rotvec(drv) * Rotation.from_quat(q)).as_quat()
    a = target_to_action(pos, q, np.array(pos) + dpos, tq)
    assert a is not None and len(a) == 6
    assert np.linalg.norm(a[:3]) <= 1.0 + 1e-12 and np.linalg.norm(a[3:]) <= 1.0 + 1e-12


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_anything_not_finite_gives_none(bad: float) -> None:
    down = (1.0, 0.0, 0.0, 0.0)
    assert action_to_target((0.4, 0, 0.2), down, [bad, 0, 0, 0, 0, 0, 0]) is None
    assert action_to_target((0.4, 0, 0.2), down, [0, 0, 0, 0, 0, 0, bad]) is None
    assert action_to_target((0.4, bad, 0.2), down, [0] * 7) is None
    assert action_to_target((0.4, 0, 0.2), (0, 0, 0, 0), [0] * 7) is None
    assert action_to_target((0.4, 0, 0.2), down, [0] * 5) is None
    assert target_to_action((0.4, 0, 0.2), down, (bad, 0, 0), down) is None
    assert target_to_action((0.4, 0, 0.2), down, (0.4, 0, 0.2), down, bad) is None


def test_gripper_is_clipped_to_its_range() -> None:
    down = (1.0, 0.0, 0.0, 0.0)
    assert action_to_target((0.4, 0, 0.2), down, [0] * 6 + [5.0]).gripper == GRIPPER_CLOSED  # type: ignore[union-attr]
    assert target_to_action((0.4, 0, 0.2), down, (0.4, 0, 0.2), down, -3.0)[6] == GRIPPER_OPEN  # type: ignore[index]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-10.0, 10.0), min_size=6, max_size=6))
def test_clip_motion_is_clip_action_on_floats(values) -> None:
    m = clip_motion(values)
    np.testing.assert_allclose(m, clip_action(np.array([*values, 0.0]))[:6], atol=1e-15)
    assert np.linalg.norm(m[:3]) <= 1.0 + 1e-12 and np.linalg.norm(m[3:]) <= 1.0 + 1e-12


@pytest.mark.parametrize("action, words", [([0.0] * 6, "shape"), ([0.0] * 6 + [math.nan], "finite")])
def test_validate_action_says_what_came(action, words) -> None:
    with pytest.raises(ActionError, match=words):
        validate_action(action)


class ChunkError(ValueError):
    pass


@given(st.lists(st.lists(finite, min_size=7, max_size=7), min_size=1, max_size=6))
def test_validate_chunk_keeps_a_finite_chunk_as_it_came(rows) -> None:
    arr = validate_chunk(rows)
    assert arr.dtype == np.float64 and arr.shape == (len(rows), 7)
    np.testing.assert_array_equal(arr, np.array(rows))
    np.testing.assert_array_equal(validate_chunk(rows[0]), np.array(rows[:1]))  # one row → (1, 7)


@pytest.mark.parametrize(
    "chunk, kwargs, words",
    [
        ("abc", {}, r"numeric \(H, 7\) array, got str"),
        ([[0.0] * 6], {}, r"shape \(H, 7\), got \(1, 6\)"),
        ([[0.0] * 8], {}, r"shape \(H, 7\), got \(1, 8\)"),
        (np.zeros((0, 7)), {}, "got \\(0, 7\\)"),
        (np.zeros((2, 7, 1)), {}, "got \\(2, 7, 1\\)"),
        ([[0.0] * 6 + [math.inf]], {}, "non-finite"),
        ([[0.0] * 7], {"cols": 8, "at_least": True, "meaning": " (joints)"}, r"shape \(H, 8\) \(joints\), got"),
    ],
)
def test_validate_chunk_says_what_came(chunk, kwargs, words) -> None:
    with pytest.raises(ChunkError, match=words):
        validate_chunk(chunk, error=ChunkError, **kwargs)


def test_validate_chunk_at_least_keeps_the_extra_columns() -> None:
    arr = validate_chunk(np.ones((3, 9)), 8, at_least=True)
    assert arr.shape == (3, 9)
