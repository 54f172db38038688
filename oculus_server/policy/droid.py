"""DROID's VR-policy arithmetic as pure functions (``droid/controllers/oculus_controller.py``).

Nothing here keeps state; `VRPolicy` owns the origins and the calibration and calls these.

* `vr_state`: ``M = G · vr_to_global · head_T_controller``; ``vr_pos = spatial_coeff · M[:3, 3]``;
  ``vr_quat`` = rotation of ``M[:3, :3]`` (xyzw). DROID's ``_process_reading``.
* `droid_action`: ``pos_action = (vr_pos − vr_origin_pos) − (robot_pos − robot_origin_pos)``;
  ``rot_action = euler_xyz(quat_diff(quat_diff(vr_quat, vr_origin_quat),
  quat_diff(robot_quat, robot_origin_quat)))`` with ``quat_diff(a, b) = R(a)·R(b)⁻¹``;
  ``gripper_action = 1.5 · vr_gripper − robot_gripper_01``; gains, then each part scaled down to
  its max velocity norm, concatenated, clipped to [−1, 1]. DROID's ``_calculate_action``.
* the pose target is `robot_formats.action_space.action_to_target` (what DROID leaves to its
  robot side, ``RobotIKSolver`` conventions): ``lin`` / ``rot`` renormalised to norm ≤ 1,
  ``target_pos = reference_pos + lin · max_lin_delta``, ``target_rot = R_xyz(rot · max_rot_delta)
  · R(reference_quat)`` — the delta applied about the robot *base* axes (DROID's
  ``add_angles(delta, source)``).

Our `FrankaState.gripper` runs −1 open … +1 closed; DROID's 0 open … 1 closed, so
``robot_gripper_01 = (gripper + 1) / 2``. A non-finite value anywhere gives None (checked before
clipping: ``min``/``max`` would turn NaN into a full-scale ±1). Rotation maths on plain floats
(`robot_formats.rotations`, scipy's conventions; scipy itself is ~10× too slow for the budget).
Frames: VR poses head_T_controller in the headset app's frame; robot poses the hand TCP in the
robot base frame; metres, radians, xyzw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from oculus_server.policy.config import PolicyConfig
from robot_formats.rotations import (
    Quat,
    quat_diff,
    quat_from_matrix,
    quat_normalize,
    quat_to_euler_xyz,
)

Origin = tuple[Sequence[float], Quat]  # (pos (3,), quat xyzw)


def all_finite(vals: Sequence[float]) -> bool:
    """True only if every value is finite (a NaN or ±inf poisons the sum).

    Conservative: values whose sum overflows (beyond ~1e308) also count as non-finite.
    """
    return math.isfinite(sum(vals))


def inverse(pose: np.ndarray) -> np.ndarray:
    """DROID's ``np.linalg.inv(pose)``; identity if singular (cannot happen for a rigid pose)."""
    try:
        inv = np.linalg.inv(pose)
    except np.linalg.LinAlgError:
        return np.eye(4)
    return inv if np.isfinite(inv).all() else np.eye(4)


def vr_state(gv: np.ndarray, pose: np.ndarray, spatial_coeff: float) -> tuple[tuple[float, float, float], Quat]:
    """(vr_pos, vr_quat) of a controller pose: ``M = gv · pose`` with ``gv = G · vr_to_global``.

    Args:
        gv: (4, 4) ``G · vr_to_global``.
        pose: (4, 4) head_T_controller.
        spatial_coeff: VR metres → robot metres.
    """
    m = (gv @ pose).tolist()
    k = spatial_coeff
    return (k * m[0][3], k * m[1][3], k * m[2][3]), quat_from_matrix(m)


def droid_action(
    c: PolicyConfig,
    vr_pos: Sequence[float],
    vr_quat: Quat,
    trig: float,
    rob_pos: Sequence[float],
    rob_quat: Quat,
    rob_g: float,
    robot_origin: Origin,
    vr_origin: Origin,
) -> list[float] | None:
    """DROID's ``_calculate_action``: 7 values in [−1, 1], or None if anything is non-finite.

    Args:
        c: gains and velocity limits.
        vr_pos, vr_quat: controller pose in the robot frame (`vr_state`).
        trig: trigger 0..1 (DROID's ``vr_gripper``).
        rob_pos, rob_quat: robot hand pose (measured, or the reference in PREDICTIVE).
        rob_g: robot gripper, −1 open … +1 closed.
        robot_origin, vr_origin: the poses stored at the last origin reset.
    """
    (rox, roy, roz), ro_q = robot_origin
    (vox, voy, voz), vo_q = vr_origin
    px = ((vr_pos[0] - vox) - (rob_pos[0] - rox)) * c.pos_action_gain
    py = ((vr_pos[1] - voy) - (rob_pos[1] - roy)) * c.pos_action_gain
    pz = ((vr_pos[2] - voz) - (rob_pos[2] - roz)) * c.pos_action_gain
    q = quat_diff(quat_diff(vr_quat, vo_q), quat_diff(rob_quat, ro_q))
    ex, ey, ez = quat_to_euler_xyz(quat_normalize(q))
    ex *= c.rot_action_gain
    ey *= c.rot_action_gain
    ez *= c.rot_action_gain
    g = (1.5 * trig - (rob_g + 1.0) * 0.5) * c.gripper_action_gain

    n = math.sqrt(px * px + py * py + pz * pz)
    if n > c.max_lin_vel:
        s = c.max_lin_vel / n
        px, py, pz = px * s, py * s, pz * s
    n = math.sqrt(ex * ex + ey * ey + ez * ez)
    if n > c.max_rot_vel:
        s = c.max_rot_vel / n
        ex, ey, ez = ex * s, ey * s, ez * s
    if abs(g) > c.max_gripper_vel:
        g = g * c.max_gripper_vel / abs(g)
    raw = (px, py, pz, ex, ey, ez, g)
    if not all_finite(raw):  # check before clipping: min/max would turn NaN into ±1
        return None
    return [min(1.0, max(-1.0, v)) for v in raw]
