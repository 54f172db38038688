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
"""

from __future__ import annotations

import numpy as np

ACTION_DIM = 7
MOTION_DIM = 6
GRIPPER_INDEX = 6
GRIPPER_OPEN = -1.0
GRIPPER_CLOSED = 1.0
MAX_LIN_STEP_M = 0.075  # a full-scale (norm 1) linear action moves the target this far per step
MAX_ROT_STEP_RAD = 0.15  # a full-scale (norm 1) rotation action turns the target this far per step


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


def clip_action(action: np.ndarray) -> np.ndarray:
    """Clips every component to [−1, 1] and renormalises the linear and rotation parts to norm ≤ 1."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    for sl in (slice(0, 3), slice(3, 6)):
        n = float(np.linalg.norm(a[sl]))
        if n > 1.0:
            a[sl] = a[sl] / n
    return a


def action_to_target(
    pos: np.ndarray,
    quat_xyzw: np.ndarray,
    action: np.ndarray,
    max_lin: float = MAX_LIN_STEP_M,
    max_rot: float = MAX_ROT_STEP_RAD,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Turns an action into a pose target relative to a reference pose.

    Args:
        pos: (3,) reference TCP position, m, base frame.
        quat_xyzw: (4,) reference TCP orientation, base frame.
        action: (7,) action (see module docstring).
        max_lin: metres moved by a full-scale linear action.
        max_rot: radians turned by a full-scale rotation action.

    Returns:
        (target_pos (3,), target_quat_xyzw (4,), gripper in [−1, 1]). Not clamped to any box:
        the consumer's safety layer does that.
    """
    # imported here: model workers that never call this start ~0.3 s faster
    from scipy.spatial.transform import Rotation

    a = clip_action(validate_action(action))
    target_pos = np.asarray(pos, dtype=np.float64) + a[0:3] * max_lin
    delta = Rotation.from_euler("xyz", a[3:6] * max_rot)
    target_rot = delta * Rotation.from_quat(np.asarray(quat_xyzw, dtype=np.float64))
    return target_pos, target_rot.as_quat(), float(a[GRIPPER_INDEX])


def target_to_action(
    pos: np.ndarray,
    quat_xyzw: np.ndarray,
    target_pos: np.ndarray,
    target_quat_xyzw: np.ndarray,
    gripper: float,
    max_lin: float = MAX_LIN_STEP_M,
    max_rot: float = MAX_ROT_STEP_RAD,
) -> np.ndarray:
    """The action that moves `pos, quat` toward a target (saturating at full scale); inverse of
    `action_to_target` for targets within one step."""
    from scipy.spatial.transform import Rotation

    lin = (np.asarray(target_pos, dtype=np.float64) - np.asarray(pos, dtype=np.float64)) / max_lin
    rel = Rotation.from_quat(np.asarray(target_quat_xyzw, dtype=np.float64)) * Rotation.from_quat(
        np.asarray(quat_xyzw, dtype=np.float64)
    ).inv()
    rot = rel.as_euler("xyz") / max_rot
    return clip_action(np.concatenate([lin, rot, [float(gripper)]]))
