"""The 6-value wire pose ↔ position + quaternion (scipy's Euler "xyz" is the reference)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from robot_formats.robot_state import pos_quat_to_pose, pose_to_pos_quat

angles = st.lists(st.floats(-3.1, 3.1), min_size=3, max_size=3).filter(lambda e: abs(e[1]) < 1.5)
positions = st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3)


@settings(max_examples=200, deadline=None)
@given(positions, angles)
def test_pose_to_pos_quat_is_scipys_euler_xyz(pos, euler):
    p, q = pose_to_pos_quat([*pos, *euler])
    np.testing.assert_array_equal(p, pos)
    want = Rotation.from_euler("xyz", euler).as_quat()
    assert abs(abs(float(np.dot(q, want))) - 1.0) < 1e-12


@settings(max_examples=200, deadline=None)
@given(positions, angles)
def test_pose_round_trips(pos, euler):
    p, q = pose_to_pos_quat([*pos, *euler])
    back = pos_quat_to_pose(p, q)
    np.testing.assert_allclose(back, [*pos, *euler], atol=1e-9)
    np.testing.assert_allclose(back[3:], Rotation.from_quat(q).as_euler("xyz"), atol=1e-9)


@pytest.mark.parametrize("pose", [[0.0] * 5, [0.0] * 7, [0.0] * 5 + [float("nan")], [float("inf")] + [0.0] * 5])
def test_bad_poses_say_what_was_expected(pose):
    with pytest.raises(ValueError, match="6 finite numbers"):
        pose_to_pos_quat(pose)


def test_a_zero_quaternion_is_refused():
    with pytest.raises(ValueError, match="non-zero quaternion"):
        pos_quat_to_pose([0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0])
