"""Conversions between the wire pose ``[x, y, z, roll, pitch, yaw]`` and position + quaternion.

Angles are Euler ``"xyz"`` in scipy's convention (lower case: extrinsic rotations about the base
axes), the convention of `robot_formats.action_space`. Positions m, quaternions xyzw, base frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation


def pose_to_pos_quat(pose: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(pos (3,), quat (4,) xyzw) of a 6-value pose.

    Raises:
        ValueError: not 6 finite numbers.
    """
    p = np.asarray(pose, dtype=np.float64)
    if p.shape != (6,) or not np.all(np.isfinite(p)):
        raise ValueError(f"pose: expected 6 finite numbers [x, y, z, roll, pitch, yaw], got {p.tolist()}")
    return p[:3].copy(), Rotation.from_euler("xyz", p[3:]).as_quat()


def pos_quat_to_pose(pos: np.ndarray, quat_xyzw: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """The 6-value pose of a position (3,) and an xyzw quaternion (4,)."""
    e = Rotation.from_quat(np.asarray(quat_xyzw, dtype=np.float64)).as_euler("xyz")
    p = np.asarray(pos, dtype=np.float64)
    return (float(p[0]), float(p[1]), float(p[2]), float(e[0]), float(e[1]), float(e[2]))
