"""Hypothesis strategies for actions and poses, and a rotation check, shared by the action-space and
assist-blend tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

finite = st.floats(-3.0, 3.0)  # an action value, beyond [−1, 1] so clipping is exercised
actions = st.lists(finite, min_size=7, max_size=7)
positions = st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3)  # m
rotvecs = st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3)  # rad


def quat(rotvec) -> np.ndarray:
    """The (x, y, z, w) quaternion of a rotation vector (scipy, the reference)."""
    return Rotation.from_rotvec(rotvec).as_quat()


def same_rotation(a, b, tol: float = 1e-9) -> bool:
    """True when quaternions `a` and `b` are the same rotation (q and −q included)."""
    return abs(abs(float(np.dot(a, b))) - 1.0) < tol
