"""The robot state a client reports with a frame (`/v1/stream` ``robot_state``, openpi
``observation/state``): defined once for the client, the service and its policies.

Frames and units: pose ``[x, y, z, roll, pitch, yaw]`` of the hand TCP in the robot base frame
(metres, radians, Euler xyz as `robot_formats.rotations`); velocity ``[vx, vy, vz, wx, wy, wz]``
(m/s, rad/s); gripper −1 open … +1 closed. Parsing from JSON is `robot_formats.stream.parse`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robot_formats.rotations import Floats, euler_xyz_to_quat, quat_normalize, quat_to_euler_xyz


@dataclass(frozen=True)
class RobotStateIn:
    """Robot state as a client reports it.

    Attributes:
        pose: (6,) x, y, z (m), roll, pitch, yaw (rad, Euler xyz), TCP in the base frame.
        velocity: (6,) linear (m/s) and angular (rad/s) velocity, or None when not sent.
        gripper: −1 open … +1 closed, or None when not known.
    """

    pose: tuple[float, float, float, float, float, float]
    velocity: tuple[float, float, float, float, float, float] | None = None
    gripper: float | None = None


def pose_to_pos_quat(pose: Floats) -> tuple[np.ndarray, np.ndarray]:
    """(pos (3,) m, quat (4,) xyzw) of a 6-value pose ``[x, y, z, roll, pitch, yaw]`` (Euler xyz).

    Raises:
        ValueError: not 6 finite numbers.
    """
    p = np.asarray(pose, dtype=np.float64)
    if p.shape != (6,) or not np.all(np.isfinite(p)):
        raise ValueError(f"pose: expected 6 finite numbers [x, y, z, roll, pitch, yaw], got {p.tolist()}")
    return p[:3].copy(), np.array(euler_xyz_to_quat((float(p[3]), float(p[4]), float(p[5]))))


def pos_quat_to_pose(
    pos: Floats, quat_xyzw: Floats
) -> tuple[float, float, float, float, float, float]:
    """The 6-value pose of a position (3,) m and an xyzw quaternion (4,) (normalised here).

    Raises:
        ValueError: not finite, or a zero quaternion.
    """
    q = quat_normalize(tuple(float(v) for v in quat_xyzw))
    x, y, z = (float(v) for v in pos)
    if not all(math.isfinite(v) for v in (x, y, z, *q)):
        raise ValueError(f"pose: expected a finite position and a non-zero quaternion, got {pos!r}, {quat_xyzw!r}")
    e = quat_to_euler_xyz(q)
    return (x, y, z, e[0], e[1], e[2])
