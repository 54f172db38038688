"""Pure pose helpers of the command gate: finiteness, box clamp, step limits.

Positions (3,) metres, quaternions (4,) xyzw; plain Python floats (tuples), which is ~10x faster
than numpy for vectors this small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from robot_formats.rotations import Quat, quat_mul, quat_normalize

Vec3 = tuple[float, float, float]


def finite(values: Sequence[float]) -> bool:
    """True only if every value is finite."""
    return all(math.isfinite(v) for v in values)


def as_floats(values: object, n: int) -> tuple[float, ...] | None:
    """`values` as n plain floats, or None if it is not a sequence of n numbers."""
    try:
        out = tuple(float(v) for v in values)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def clamp_box(pos: Sequence[float], lo: Sequence[float], hi: Sequence[float]) -> Vec3:
    """`pos` clamped into the box [lo, hi] (per axis)."""
    return (
        min(hi[0], max(lo[0], pos[0])),
        min(hi[1], max(lo[1], pos[1])),
        min(hi[2], max(lo[2], pos[2])),
    )


def distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Euclidean distance of two (3,) points, metres (no overflow for huge coordinates)."""
    return math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2])


def step_toward(start: Sequence[float], goal: Sequence[float], max_step: float) -> tuple[Vec3, bool]:
    """The point at most `max_step` from `start` on the way to `goal`; True if it was limited."""
    d = distance(start, goal)
    if d <= max_step:
        return (float(goal[0]), float(goal[1]), float(goal[2])), False
    s = max_step / d
    return (
        start[0] + (goal[0] - start[0]) * s,
        start[1] + (goal[1] - start[1]) * s,
        start[2] + (goal[2] - start[2]) * s,
    ), True


def angle_between(a: Sequence[float], b: Sequence[float]) -> float:
    """Rotation angle from unit quaternion `a` to unit quaternion `b`, radians in [0, π]."""
    dot = abs(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3])
    return 2.0 * math.acos(min(1.0, dot))


def turn_toward(start: Quat, goal: Quat, max_angle: float) -> tuple[Quat, bool]:
    """The orientation at most `max_angle` from `start` on the shortest way to `goal` (slerp).

    Both unit quaternions (xyzw). Returns (orientation, True if it was limited).
    """
    angle = angle_between(start, goal)
    if angle <= max_angle:
        return goal, False
    # relative rotation r = goal · start⁻¹ on the short side, scaled to max_angle about its axis
    sx, sy, sz, sw = start
    r = quat_mul(goal, (-sx, -sy, -sz, sw))
    if r[3] < 0.0:
        r = (-r[0], -r[1], -r[2], -r[3])
    s = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])  # = sin(angle / 2) > 0 here
    half = 0.5 * max_angle
    k = math.sin(half) / s
    step = (r[0] * k, r[1] * k, r[2] * k, math.cos(half))
    return quat_normalize(quat_mul(step, start)), True
