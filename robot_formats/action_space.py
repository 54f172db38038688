"""The VLA action space, defined once for the service, the arena and the daemon's assist.

An action is 7 floats:

* ``action[0:3]`` — linear x, y, z and ``action[3:6]`` — rotation x, y, z (Euler xyz), each in
  [−1, 1], as fractions of the per-step maximum displacement (`MAX_LIN_STEP_M`,
  `MAX_ROT_STEP_RAD`), robot base frame. This is the daemon's own 7-D DROID policy action:
  the linear and rotation parts are each renormalised to norm ≤ 1, then
  ``target_pos = pos + lin · max_lin`` and ``target_rot = R_xyz(rot · max_rot) · R(quat)``
  (the delta applied on the left, i.e. about the base axes, DROID's ``add_angles``).
* ``action[6]`` — gripper target, −1 open … +1 closed.

Frames and units: positions metres, angles radians, quaternions xyzw, hand TCP in the robot
base frame.

`action_to_target` / `target_to_action` are THE pair that turns an action into a pose target and
back, for every user: the service's safety score and policies, the arena, the daemon's VR policy
(DROID's ``cartesian_velocity_to_delta`` + ``add_poses``, with its own full-scale steps) and its
assist blend. Plain Python floats (~10× faster than scipy for one pose; the daemon's control loop
calls them each tick); a non-finite input gives None rather than a command.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from robot_formats.action_limits import (  # the scalars, defined once there (numpy-free)
    ACTION_DIM,
    GRIPPER_CLOSED,
    GRIPPER_INDEX,
    GRIPPER_OPEN,
    MAX_LIN_STEP_M,
    MAX_ROT_STEP_RAD,
    MOTION_DIM,  # noqa: F401 -- re-exported: the action space's importers find it here
)
from robot_formats.rotations import (
    Floats,
    Quat,
    Vec3,
    euler_xyz_to_quat,
    quat_diff,
    quat_mul,
    quat_normalize,
    quat_to_euler_xyz,
)

Motion = tuple[float, float, float, float, float, float]


class ActionError(ValueError):
    """An action that is not 7 finite numbers."""


def validate_action(action: object) -> np.ndarray:
    """Returns `action` as a (7,) float64 array, or raises `ActionError` saying what came."""
    arr = np.asarray(action, dtype=np.float64)
    if arr.shape != (ACTION_DIM,):
        raise ActionError(f"expected an action of shape ({ACTION_DIM},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ActionError(f"expected finite action values, got {arr.tolist()}")
    return arr


def validate_chunk(
    chunk: object,
    cols: int = ACTION_DIM,
    *,
    at_least: bool = False,
    meaning: str = "",
    error: type[ValueError] = ValueError,
) -> np.ndarray:
    """Returns a policy's action chunk as a finite (H, `cols`) float64 array, H ≥ 1 (one row,
    shape (cols,), becomes (1, cols)).

    Args:
        chunk: the chunk as it came (nested lists, an array).
        cols: numbers per row.
        at_least: accept rows with more than `cols` numbers (they are kept).
        meaning: what the rows hold, appended to the shape error (" (joint velocities + gripper)").
        error: the ValueError subclass raised.

    Raises:
        error: not numeric, another shape, or non-finite values; the message starts "actions: ".
    """
    try:
        arr = np.asarray(chunk, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise error(f"actions: expected a numeric (H, {cols}) array, got {type(chunk).__name__}") from exc
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] < 1 or (arr.shape[1] < cols if at_least else arr.shape[1] != cols):
        raise error(f"actions: expected shape (H, {cols}){meaning}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise error("actions: non-finite values in the chunk")
    return arr


def clip_action(action: np.ndarray) -> np.ndarray:
    """Clips every component to [−1, 1] and renormalises the linear and rotation parts to norm ≤ 1."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    for sl in (slice(0, 3), slice(3, 6)):
        n = float(np.linalg.norm(a[sl]))
        if n > 1.0:
            a[sl] = a[sl] / n
    return a


def _finite(values: Floats) -> bool:
    return all(math.isfinite(v) for v in values)


def _floats(values: object, n: int) -> tuple[float, ...] | None:
    """The first `n` values as finite floats, or None (too few, not numbers, NaN or ±inf)."""
    try:
        out = tuple(float(v) for v in values)[:n]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and _finite(out) else None


def _clip_part(x: float, y: float, z: float) -> Vec3:
    """Each value into [−1, 1], then the 3-vector scaled to norm ≤ 1 (as `clip_action`)."""
    x, y, z = min(1.0, max(-1.0, x)), min(1.0, max(-1.0, y)), min(1.0, max(-1.0, z))
    n = math.sqrt(x * x + y * y + z * z)
    if n > 1.0:
        return x / n, y / n, z / n
    return x, y, z


def clip_motion(motion: Floats) -> Motion:
    """The six motion values clipped as `clip_action` clips them (parts of norm ≤ 1), floats."""
    lin = _clip_part(motion[0], motion[1], motion[2])
    rot = _clip_part(motion[3], motion[4], motion[5])
    return (*lin, *rot)


class Target(NamedTuple):
    """The pose target an action asks for.

    Attributes:
        pos: (3,) TCP position, m, base frame.
        quat: (4,) unit quaternion xyzw, base frame.
        gripper: the action's gripper value clipped to [−1, 1], or None when the action had
            only the six motion values.
    """

    pos: Vec3
    quat: Quat
    gripper: float | None


def action_to_target(
    pos: Floats,
    quat_xyzw: Floats,
    action: Floats,
    max_lin: float = MAX_LIN_STEP_M,
    max_rot: float = MAX_ROT_STEP_RAD,
) -> Target | None:
    """Turns an action into a pose target relative to a reference pose.

    ``target_pos = pos + lin · max_lin``, ``target_quat = R_xyz(rot · max_rot) · R(quat)`` with
    `lin`, `rot` clipped as `clip_action` (no-ops for an action already in range).

    Args:
        pos: (3,) reference TCP position, m, base frame.
        quat_xyzw: (4,) reference TCP orientation, base frame (normalised with the result).
        action: 6 motion values, or the 7-value action (see the module docstring).
        max_lin: metres moved by a full-scale linear action.
        max_rot: radians turned by a full-scale rotation action.

    Returns:
        The target, not clamped to any box (the consumer's safety layer does that); None if a
        value is not finite, the quaternion is zero or the action has fewer than 6 values.
    """
    a, p, q = _floats(action, 6), _floats(pos, 3), _floats(quat_xyzw, 4)
    if a is None or p is None or q is None:
        return None
    lx, ly, lz, rx, ry, rz = clip_motion(a)
    target_pos = (p[0] + lx * max_lin, p[1] + ly * max_lin, p[2] + lz * max_lin)
    target_quat = quat_normalize(quat_mul(euler_xyz_to_quat((rx * max_rot, ry * max_rot, rz * max_rot)), q))
    if not (_finite(target_pos) and _finite(target_quat)):
        return None
    gripper: float | None = None
    if len(action) > GRIPPER_INDEX:
        g = float(action[GRIPPER_INDEX])
        if not math.isfinite(g):
            return None
        gripper = min(GRIPPER_CLOSED, max(GRIPPER_OPEN, g))
    return Target(target_pos, target_quat, gripper)


def target_to_action(
    pos: Floats,
    quat_xyzw: Floats,
    target_pos: Floats,
    target_quat_xyzw: Floats,
    gripper: float | None = None,
    max_lin: float = MAX_LIN_STEP_M,
    max_rot: float = MAX_ROT_STEP_RAD,
) -> tuple[float, ...] | None:
    """The action that moves `pos, quat` toward a target, saturating at full scale; the inverse
    of `action_to_target` for targets within one step.

    Returns:
        The 6 motion values, then `gripper` (clipped to [−1, 1]) when given; None if anything
        is not finite or a quaternion is zero.
    """
    rp, rq, tp, tq = _floats(pos, 3), _floats(quat_xyzw, 4), _floats(target_pos, 3), _floats(target_quat_xyzw, 4)
    if rp is None or rq is None or tp is None or tq is None:
        return None
    lin = [(tp[i] - rp[i]) / max_lin for i in range(3)]
    rot = quat_to_euler_xyz(quat_diff(quat_normalize(tq), quat_normalize(rq)))
    motion = clip_motion((*lin, *(r / max_rot for r in rot)))
    if not _finite(motion):
        return None
    if gripper is None:
        return motion
    g = float(gripper)
    if not math.isfinite(g):
        return None
    return (*motion, min(GRIPPER_CLOSED, max(GRIPPER_OPEN, g)))
