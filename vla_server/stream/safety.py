"""The safety score of an action, 0..1, sent with every `action` message.

Each check gives a factor in [0, 1]; the score is their product, so it is 1.0 exactly when every
check holds and falls off smoothly with how badly one fails:

=============  ===============================================================================
finite         0 if any raw model output is NaN/inf (the action sent is then a hold: zero motion,
               the previous gripper value), else 1
range          ``g(max|a_i|, 1)`` on the raw output: values beyond [−1, 1] (which are clipped
               before sending) lower the score
workspace      with ``robot_state``: the next TCP position (`action_to_target`'s) at
               distance d (m) outside the box `ROBOT_WORKSPACE_MIN/MAX` scores
               ``max(0, 1 − d / workspace_margin_m)``
speed          ``g(‖lin‖·MAX_LIN_STEP_M·fps, max_lin_speed)``, the same for rotation, and, when
               ``robot_state.velocity`` is sent, ``g(‖v_measured‖, max_measured_lin_speed)``;
               the minimum of these
jump           ``g(‖motion(a_t) − motion(a_{t−1})‖, max_jump)`` against the previous action sent
=============  ===============================================================================

with ``g(x, limit) = 1`` for ``x ≤ limit`` else ``max(0, 1 − (x − limit) / limit)`` (0 at twice
the limit). Checks that need ``robot_state`` or a previous action are 1 when those are absent.
``fps`` is the session's `target_fps` (one action per frame period).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_formats.action_space import (
    ACTION_DIM,
    MAX_LIN_STEP_M,
    MAX_ROT_STEP_RAD,
    MOTION_DIM,
    clip_action,
)
from robot_formats.robot_state import RobotStateIn
from vla_server.stream.safety_limits import SafetyLimits

_DEFAULT_LIMITS = SafetyLimits()

__all__ = ["SafetyLimits", "SafetyReport", "assess", "next_position", "ratio_factor", "sanitize_action"]


@dataclass(frozen=True)
class SafetyReport:
    """The score and each check's factor (keys: finite, range, workspace, speed, jump)."""

    score: float
    checks: dict[str, float] = field(default_factory=dict)


def ratio_factor(x: float, limit: float) -> float:
    """``g(x, limit)``: 1 up to the limit, falling linearly to 0 at twice the limit."""
    if x <= limit:
        return 1.0
    return max(0.0, 1.0 - (x - limit) / limit)


def next_position(pos: np.ndarray, action: np.ndarray) -> np.ndarray:
    """(3,) TCP position `action` leads to from `pos` (m, base frame): the position part of
    `action_to_target` without its rotation math (~10× cheaper; a test keeps them equal)."""
    return np.asarray(pos, dtype=np.float64) + clip_action(action)[0:3] * MAX_LIN_STEP_M


def sanitize_action(raw: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """The (7,) action that is sent for a raw model output: clipped to the action space; a
    non-finite output becomes a hold (zero motion, previous gripper value or 0)."""
    a = np.asarray(raw, dtype=np.float64).reshape(-1)
    if a.shape != (ACTION_DIM,) or not np.all(np.isfinite(a)):
        hold = np.zeros(ACTION_DIM)
        hold[MOTION_DIM] = float(previous[MOTION_DIM]) if previous is not None else 0.0
        return hold
    return clip_action(a)


def assess(
    raw: np.ndarray,
    sent: np.ndarray,
    previous_sent: np.ndarray | None,
    state: RobotStateIn | None,
    fps: float,
    limits: SafetyLimits = _DEFAULT_LIMITS,
) -> SafetyReport:
    """Scores the action `sent` (after clipping and smoothing) produced from model output `raw`.

    Args:
        raw: the model's output row, any values.
        sent: (7,) the finite, clipped action that will be sent.
        previous_sent: (7,) the previous action sent in this session, or None.
        state: the robot state that came with the frame, or None.
        fps: the session's target rate, Hz (> 0).
        limits: check limits.
    """
    raw_arr = np.asarray(raw, dtype=np.float64).reshape(-1)
    if raw_arr.shape != (ACTION_DIM,) or not np.all(np.isfinite(raw_arr)):
        return SafetyReport(0.0, {"finite": 0.0, "range": 0.0, "workspace": 0.0, "speed": 0.0, "jump": 0.0})
    checks = {"finite": 1.0, "range": ratio_factor(float(np.max(np.abs(raw_arr))), 1.0)}
    a = np.asarray(sent, dtype=np.float64)
    checks["workspace"] = 1.0
    speeds = [
        ratio_factor(float(np.linalg.norm(a[0:3])) * MAX_LIN_STEP_M * fps, limits.max_lin_speed_m_s),
        ratio_factor(float(np.linalg.norm(a[3:6])) * MAX_ROT_STEP_RAD * fps, limits.max_ang_speed_rad_s),
    ]
    if state is not None:
        pose = np.asarray(state.pose, dtype=np.float64)
        target = next_position(pose[0:3], a)
        lo, hi = np.asarray(limits.workspace_min), np.asarray(limits.workspace_max)
        outside = float(np.linalg.norm(np.maximum(lo - target, 0.0) + np.maximum(target - hi, 0.0)))
        checks["workspace"] = max(0.0, 1.0 - outside / limits.workspace_margin_m)
        if state.velocity is not None:
            v = float(np.linalg.norm(np.asarray(state.velocity[0:3], dtype=np.float64)))
            speeds.append(ratio_factor(v, limits.max_measured_lin_speed_m_s))
    checks["speed"] = min(speeds)
    checks["jump"] = 1.0
    if previous_sent is not None:
        jump = float(np.linalg.norm(a[:MOTION_DIM] - np.asarray(previous_sent, dtype=np.float64)[:MOTION_DIM]))
        checks["jump"] = ratio_factor(jump, limits.max_jump)
    score = float(np.prod(list(checks.values())))
    return SafetyReport(score, checks)
