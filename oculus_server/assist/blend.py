"""Blending a policy's action with the operator's: pure functions, no state, no clock.

Both actions are 7-D in the same action space (`robot_formats.action_space`, the daemon's DROID
action): ``[lin xyz, rot xyz (Euler), gripper]``, each in [−1, 1]; a full-scale linear part moves
the target `max_lin` metres from a reference pose, the rotation part turns it `max_rot` radians
about the base axes. The policy's action answers the pose it *saw* (the robot state sent with its
frame); by the time it is used the arm has moved, so it is first turned into the absolute target
it asked for (`policy_target`) and then re-expressed from the control tick's reference pose in
the operator's scale (`target_action`): a policy that says "go to the cube" keeps meaning the
cube, however late its answer, and never overshoots by the distance the arm moved meanwhile
(the arena applies actions the same way). The six motion values are then averaged
(`blend_motion`): ``a = α·a_policy + (1 − α)·a_operator``. The gripper is never averaged.

Floats only (`robot_formats.rotations`): this runs in the control loop. Frames: robot base
frame, metres, radians, quaternions xyzw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from oculus_server.types import Vector
from robot_formats.action_space import (
    ACTION_DIM,
    MAX_LIN_STEP_M,
    MAX_ROT_STEP_RAD,
    MOTION_DIM,
)
from robot_formats.rotations import (
    Quat,
    euler_xyz_to_quat,
    quat_diff,
    quat_mul,
    quat_normalize,
    quat_to_euler_xyz,
)

Vec3 = tuple[float, float, float]
Motion = tuple[float, float, float, float, float, float]


def finite(values: Sequence[float]) -> bool:
    """Every value is a finite number (False for anything that is not a number)."""
    try:
        return all(math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False


def as_action(action: object) -> tuple[float, ...] | None:
    """`action` as 7 finite floats, or None (wrong size, not numbers, NaN or ±inf)."""
    try:
        vals = tuple(float(v) for v in action)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    if len(vals) != ACTION_DIM or not finite(vals):
        return None
    return vals


def _clip_part(x: float, y: float, z: float) -> Vec3:
    """Each value into [−1, 1], then the 3-vector scaled to norm ≤ 1 (`action_space.clip_action`)."""
    x, y, z = (min(1.0, max(-1.0, v)) for v in (x, y, z))
    n = math.sqrt(x * x + y * y + z * z)
    if n > 1.0:
        return x / n, y / n, z / n
    return x, y, z


def clip_motion(motion: Sequence[float]) -> Motion:
    """The six motion values clipped as the action space clips them (parts of norm ≤ 1)."""
    lin = _clip_part(motion[0], motion[1], motion[2])
    rot = _clip_part(motion[3], motion[4], motion[5])
    return (*lin, *rot)


def floats(values: object, n: int) -> tuple[float, ...] | None:
    """The first `n` values as finite floats, or None (too few, not numbers, NaN or ±inf)."""
    try:
        out = tuple(float(v) for v in values)[:n]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and finite(out) else None


def policy_target(
    action: Vector,
    seen_pos: Vector,
    seen_quat: Vector,
    max_lin: float = MAX_LIN_STEP_M,
    max_rot: float = MAX_ROT_STEP_RAD,
) -> tuple[Vec3, Quat] | None:
    """The pose target an action asks for from the pose it saw (`action_space.action_to_target`).

    Args:
        action: (≥6,) action; values beyond [−1, 1] are clipped as the action space does.
        seen_pos, seen_quat: (3,) m, (4,) xyzw: the pose sent with the frame it answers.
        max_lin, max_rot: the action space's full-scale step, m and rad.

    Returns:
        (pos, unit quat), or None if anything is not finite (or the quaternion is zero).
    """
    a, p, q = floats(action, MOTION_DIM), floats(seen_pos, 3), floats(seen_quat, 4)
    if a is None or p is None or q is None or not any(v != 0.0 for v in q):
        return None
    lx, ly, lz, rx, ry, rz = clip_motion(a)
    pos = (p[0] + lx * max_lin, p[1] + ly * max_lin, p[2] + lz * max_lin)
    quat = quat_normalize(quat_mul(euler_xyz_to_quat((rx * max_rot, ry * max_rot, rz * max_rot)), quat_normalize(q)))
    if not (finite(pos) and finite(quat)):
        return None
    return pos, quat


def target_action(
    ref_pos: Vector,
    ref_quat: Vector,
    target_pos: Vector,
    target_quat: Vector,
    max_lin: float,
    max_rot: float,
) -> Motion | None:
    """The motion values that move `ref` toward a target, saturating at full scale
    (`action_space.target_to_action` in the given scale); None if not finite."""
    rp, rq, tp, tq = floats(ref_pos, 3), floats(ref_quat, 4), floats(target_pos, 3), floats(target_quat, 4)
    if rp is None or rq is None or tp is None or tq is None:
        return None
    lin = [(tp[i] - rp[i]) / max_lin for i in range(3)]
    rot = quat_to_euler_xyz(quat_diff(quat_normalize(tq), quat_normalize(rq)))
    motion = clip_motion((*lin, *(r / max_rot for r in rot)))
    return motion if finite(motion) else None


def blend_motion(alpha: float, policy: Sequence[float], operator: Sequence[float]) -> Motion:
    """``α·policy + (1 − α)·operator`` on the six motion values (α clamped to [0, 1])."""
    a = min(1.0, max(0.0, float(alpha)))
    out = tuple(a * float(p) + (1.0 - a) * float(o) for p, o in zip(policy[:MOTION_DIM], operator[:MOTION_DIM]))
    return out  # type: ignore[return-value]


def next_alpha(previous: float, target: float, usable: bool, ramp: float) -> float:
    """α for this tick: 0 at once when the policy is not usable; else up by at most `ramp`
    toward `target` (down to it at once)."""
    if not usable or not target > 0.0:
        return 0.0
    prev = previous if math.isfinite(previous) and previous > 0.0 else 0.0
    return min(float(target), prev + float(ramp))
