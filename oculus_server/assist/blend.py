"""Blending a policy's action with the operator's: pure functions, no state, no clock.

Both actions are 7-D in the same action space (`robot_formats.action_space`, the daemon's DROID
action): ``[lin xyz, rot xyz (Euler), gripper]``, each in [−1, 1]; a full-scale linear part moves
the target `max_lin` metres from a reference pose, the rotation part turns it `max_rot` radians
about the base axes. The policy's action answers the pose it *saw* (the robot state sent with its
frame); by the time it is used the arm has moved, so it is first turned into the absolute target
it asked for (`action_space.action_to_target` in the service's scale) and then re-expressed from
the control tick's reference pose in the operator's scale (`action_space.target_to_action`,
`rebase_motion` here): a policy that says "go to the cube" keeps meaning the
cube, however late its answer, and never overshoots by the distance the arm moved meanwhile
(the arena applies actions the same way). The six motion values are then averaged
(`blend_motion`): ``a = α·a_policy + (1 − α)·a_operator``. The gripper is never averaged.

Floats only: this runs in the control loop. Frames: robot base frame, metres, radians,
quaternions xyzw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from robot_formats.action_space import (
    ACTION_DIM,
    MAX_LIN_STEP_M,
    MAX_ROT_STEP_RAD,
    MOTION_DIM,
    Motion,
    action_to_target,
    target_to_action,
)
from robot_formats.recording.records import Vector


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


def rebase_motion(
    action: Sequence[float],
    seen_pos: Vector,
    seen_quat: Vector,
    ref_pos: Vector,
    ref_quat: Vector,
    max_lin: float,
    max_rot: float,
) -> Motion | None:
    """The policy's motion re-based on the tick's reference: the target `action` asked for from the
    pose it saw (the service's scale), as motion from `ref` in the operator's scale (`max_lin` m,
    `max_rot` rad); None if anything is not finite."""
    target = action_to_target(seen_pos, seen_quat, action[:MOTION_DIM], MAX_LIN_STEP_M, MAX_ROT_STEP_RAD)
    if target is None:
        return None
    motion = target_to_action(ref_pos, ref_quat, target.pos, target.quat, None, max_lin, max_rot)
    return motion  # type: ignore[return-value]  # 6 values without a gripper


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
