"""Pure pose helpers of the command gate: finiteness, box clamp, position step limit (the rotation
helpers, `angle_between` and `turn_toward`, are `robot_formats.rotations`).

Positions (3,) metres, quaternions (4,) xyzw; plain Python floats (tuples), which is ~10x faster
than numpy for vectors this small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
