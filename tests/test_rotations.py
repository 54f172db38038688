"""The fast rotation helpers agree with scipy's conventions (scipy is the reference here)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation as R

from robot_formats.rotations import (
    angle_between,
    euler_xyz_to_quat,
    quat_diff,
    quat_from_matrix,
    quat_inv,
    quat_mul,
    quat_normalize,
    quat_to_euler_xyz,
    quat_to_matrix,
    quat_to_rotvec,
    quat_wxyz_to_xyzw,
    quat_xyzw_to_wxyz,
    quats_to_euler_xyz,
    rot_x,
    rot_y,
    rot_z,
    rotation_error,
    rotvec_to_quat,
    turn_toward,
    vec_to_reorder_mat,
)

quats = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda v: np.linalg.norm(v) > 0.1
).map(lambda v: tuple(np.asarray(v) / np.linalg.norm(v)))


def same_rotation(a, b, tol=1e-9) -> bool:
    """Unit quaternions a and b (xyzw) are the same rotation (q and −q)."""
    return abs(abs(float(np.dot(a, b))) - 1.0) < tol


def test_reorder_mat_droid_default_by_hand():
    g = vec_to_reorder_mat([-2, -1, -3, 4])
    expected = np.array(
        [
            [0.0, -1.0, 0.0, 0.0],
            [-1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, -1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    np.testing.assert_array_equal(g, expected)
    # row i of G @ x is sign(v_i) * x[|v_i| - 1]
    np.testing.assert_array_equal(g @ np.array([1.0, 2.0, 3.0, 1.0]), [-2.0, -1.0, -3.0, 1.0])


@settings(max_examples=200, deadline=None)
@given(quats)
def test_quat_from_matrix_matches_scipy(q):
    m = R.from_quat(q).as_matrix()
    ours = quat_from_matrix(m.tolist())
    assert same_rotation(ours, R.from_matrix(m).as_quat())
    assert math.isclose(np.linalg.norm(ours), 1.0, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(quats)
def test_quat_from_matrix_w_positive_is_the_same_rotation_with_w_at_least_zero(q):
    m = R.from_quat(q).as_matrix().tolist()
    raw, canon = quat_from_matrix(m), quat_from_matrix(m, w_positive=True)
    assert canon[3] >= 0.0
    assert canon == raw or canon == tuple(-v for v in raw)  # one implementation, only the sign differs


def test_quat_from_matrix_each_branch():
    # trace branch, and the x / y / z branches (180° turns have trace −1)
    for rotvec in ([0.1, 0.2, 0.3], [math.pi, 0, 0], [0, math.pi, 0], [0, 0, math.pi], [2.0, 2.0, 0.3]):
        m = R.from_rotvec(rotvec).as_matrix()
        assert same_rotation(quat_from_matrix(m.tolist()), R.from_rotvec(rotvec).as_quat())


def test_quat_from_matrix_is_finite_for_any_finite_matrix():
    rng = np.random.default_rng(3)
    for _ in range(200):
        m = rng.normal(scale=rng.choice([1e-3, 1.0, 1e6]), size=(3, 3))
        q = quat_from_matrix(m.tolist())
        assert all(math.isfinite(v) for v in q)


@settings(max_examples=200, deadline=None)
@given(quats, quats)
def test_mul_and_diff_match_scipy(a, b):
    assert same_rotation(quat_mul(a, b), (R.from_quat(a) * R.from_quat(b)).as_quat())
    assert same_rotation(quat_diff(a, b), (R.from_quat(a) * R.from_quat(b).inv()).as_quat())
    assert same_rotation(quat_inv(a), R.from_quat(a).inv().as_quat())


@settings(max_examples=200, deadline=None)
@given(quats)
def test_euler_matches_scipy_away_from_gimbal_lock(q):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns in gimbal lock; those cases are skipped
        expected = R.from_quat(q).as_euler("xyz")
    if abs(abs(expected[1]) - math.pi / 2) < 1e-4:
        return
    ours = quat_to_euler_xyz(q)
    # angles of ±π are the same angle; compare on the circle
    np.testing.assert_allclose(np.angle(np.exp(1j * (np.array(ours) - expected))), 0.0, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.tuples(st.floats(-3, 3), st.floats(-1.5, 1.5), st.floats(-3, 3)))
def test_euler_to_quat_matches_scipy(e):
    assert same_rotation(euler_xyz_to_quat(e), R.from_euler("xyz", e).as_quat())


def test_euler_gimbal_lock_sets_third_angle_to_zero_like_scipy():
    for e in ([0.3, math.pi / 2, 0.5], [0.3, -math.pi / 2, 0.5]):
        q = R.from_euler("xyz", e).as_quat()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = R.from_quat(q).as_euler("xyz")
        ours = quat_to_euler_xyz(q)
        np.testing.assert_allclose(ours, expected, atol=1e-7)
        assert ours[2] == 0.0
        assert same_rotation(euler_xyz_to_quat(ours), q, tol=1e-12)


def test_euler_single_axis_by_hand():
    # 0.1 rad about z is (0, 0, 0.1); about x is (0.1, 0, 0); about y is (0, 0.1, 0).
    for axis in range(3):
        e = [0.0, 0.0, 0.0]
        e[axis] = 0.1
        half = (math.sin(0.05), math.cos(0.05))
        q = [0.0, 0.0, 0.0, half[1]]
        q[axis] = half[0]
        np.testing.assert_allclose(quat_to_euler_xyz(q), e, atol=1e-15)
        np.testing.assert_allclose(euler_xyz_to_quat(e), q, atol=1e-15)


def test_quat_to_matrix_and_normalize():
    q = R.from_rotvec([0.4, -0.2, 1.1]).as_quat()
    np.testing.assert_allclose(quat_to_matrix(q), R.from_quat(q).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(quat_normalize((0.0, 0.0, 0.0, 2.0)), (0.0, 0.0, 0.0, 1.0))
    assert all(math.isnan(v) for v in quat_normalize((0.0, 0.0, 0.0, 0.0)))
    assert all(math.isnan(v) for v in quat_normalize((math.inf, 0.0, 0.0, 1.0)))


@pytest.mark.parametrize("vec", [[1, 2, 3, 4], [-3, 1, -2, 4], [2, 3, 1]])
def test_reorder_mat_is_signed_permutation(vec):
    g = vec_to_reorder_mat(vec)
    np.testing.assert_array_equal(g @ g.T, np.eye(len(vec)))
    for i, v in enumerate(vec):
        assert g[i, abs(v) - 1] == np.sign(v)


# ---- rotation vectors, error, slerp step, wxyz (consolidated here from the sim and the gate) ----

rotvecs = st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3).filter(lambda v: np.linalg.norm(v) < math.pi - 1e-6)


@settings(max_examples=200, deadline=None)
@given(quats)
def test_quat_to_rotvec_matches_scipy(q):
    ours = np.array(quat_to_rotvec(q))
    assert np.linalg.norm(ours) <= math.pi + 1e-12
    assert same_rotation(R.from_rotvec(ours).as_quat(), q)
    if np.linalg.norm(ours) < math.pi - 1e-6:  # at π, v and −v are the same rotation
        np.testing.assert_allclose(ours, R.from_quat(q).as_rotvec(), atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(rotvecs)
def test_rotvec_to_quat_matches_scipy_and_round_trips(v):
    q = rotvec_to_quat(v)
    assert same_rotation(q, R.from_rotvec(v).as_quat())
    np.testing.assert_allclose(quat_to_rotvec(q), v, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(quats, quats)
def test_rotation_error_is_the_sims_mujoco_rotation_error(target, current):
    from frankateach.sim.controller import rotation_error as mujoco_rotation_error

    want = mujoco_rotation_error(quat_xyzw_to_wxyz(target), quat_xyzw_to_wxyz(current))
    np.testing.assert_allclose(rotation_error(target, current), want, atol=1e-9)


def test_wxyz_reorders_both_ways():
    q = (0.1, 0.2, 0.3, 0.9)
    np.testing.assert_array_equal(quat_xyzw_to_wxyz(q), [0.9, 0.1, 0.2, 0.3])
    np.testing.assert_array_equal(quat_wxyz_to_xyzw(quat_xyzw_to_wxyz(q)), q)


@settings(max_examples=200, deadline=None)
@given(quats, quats, st.floats(0.0, 3.0))
def test_turn_toward_steps_at_most_the_limit_on_the_way_to_the_goal(start, goal, limit):
    out, limited = turn_toward(start, goal, limit)
    total = angle_between(start, goal)
    assert not limited or total > limit
    assert limited or total <= limit + 1e-6  # equal orientations may read ~1e-8 rad apart (acos)
    assert angle_between(start, out) <= min(limit, total) + 1e-6  # acos near 1: ~1e-8 rad noise
    assert angle_between(out, goal) <= max(0.0, total - limit) + 1e-6 or not limited


@settings(max_examples=100, deadline=None)
@given(st.lists(quats, min_size=0, max_size=20))
def test_quats_to_euler_xyz_is_the_scalar_version_row_by_row(qs):
    arr = np.array(qs, dtype=float).reshape(-1, 4)
    out = quats_to_euler_xyz(arr)
    assert out.shape == (len(qs), 3)
    for q, row in zip(qs, out):
        np.testing.assert_allclose(row, quat_to_euler_xyz(q), atol=1e-12)


def test_axis_rotations_are_scipys():
    for angle in (-2.0, -0.3, 0.0, 0.7, 3.0):
        np.testing.assert_allclose(rot_x(angle), R.from_euler("x", angle).as_matrix(), atol=1e-15)
        np.testing.assert_allclose(rot_y(angle), R.from_euler("y", angle).as_matrix(), atol=1e-15)
        np.testing.assert_allclose(rot_z(angle), R.from_euler("z", angle).as_matrix(), atol=1e-15)
