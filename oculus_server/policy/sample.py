"""Checks one VR sample for the policy: the chosen controller's pose and buttons, or None.

A sample is unusable (the policy holds for that step; it does not count as a link sample) when
the pose for the chosen side is missing, non-finite or not rigid (``VR_RIGID_TOL``, bottom row
within ``VR_BOTTOM_ROW_TOL``), farther than ``VR_MAX_HAND_DISTANCE_M`` from the head, when its
receive time is not finite, or when its trigger is not a finite number.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from frankateach.constants import (
    VR_BOTTOM_ROW_TOL,
    VR_MAX_HAND_DISTANCE_M,
    VR_RIGID_TOL,
)
from oculus_server.types import VRSample


class SampleKeys(NamedTuple):
    """Which pose and buttons of a sample the policy reads (right or left controller)."""

    side: str  # "r" / "l"
    grip: str  # deadman
    joystick: str  # calibration
    trigger: str  # analog gripper
    episode: str
    success: str


class ParsedSample(NamedTuple):
    """The parts of a valid sample the policy uses."""

    pose: np.ndarray  # (4, 4) head_T_controller
    raw_pos: tuple[float, float, float]  # its translation, metres (headset frame)
    grip: bool
    joystick: bool
    trigger: float  # 0..1
    episode: bool
    success: bool


def parse_sample(sample: VRSample, keys: SampleKeys) -> ParsedSample | None:
    """The usable parts of `sample` for the controller `keys` names, or None if it is unusable."""
    p = sample.poses.get(keys.side)
    if p is None:
        return None
    try:
        pose = np.asarray(p, dtype=float)
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            return None
        if not math.isfinite(float(sample.t_recv)):
            return None
        pl = pose.tolist()
        if not is_rigid(pl):
            return None
        x, y, z = pl[0][3], pl[1][3], pl[2][3]
        if x * x + y * y + z * z > VR_MAX_HAND_DISTANCE_M * VR_MAX_HAND_DISTANCE_M:
            return None  # farther from the head than a hand can be (also bounds the maths)
        b = sample.buttons
        trig = b.get(keys.trigger, 0.0)
        if isinstance(trig, (tuple, list)):
            trig = trig[0] if trig else 0.0
        trig = float(trig)
        if not math.isfinite(trig):
            return None
        return ParsedSample(
            pose,
            (x, y, z),
            bool(b.get(keys.grip, False)),
            bool(b.get(keys.joystick, False)),
            trig,
            bool(b.get(keys.episode, False)),
            bool(b.get(keys.success, False)),
        )
    except (TypeError, ValueError, IndexError):
        return None


def is_rigid(pl: list[list[float]]) -> bool:
    """True if the 4×4 list has an orthonormal, right-handed rotation block and bottom row 0 0 0 1."""
    if abs(pl[3][0]) > VR_BOTTOM_ROW_TOL or abs(pl[3][1]) > VR_BOTTOM_ROW_TOL:
        return False
    if abs(pl[3][2]) > VR_BOTTOM_ROW_TOL or abs(pl[3][3] - 1.0) > VR_BOTTOM_ROW_TOL:
        return False
    a, b, c = pl[0][:3], pl[1][:3], pl[2][:3]
    tol = VR_RIGID_TOL
    for u, v, want in ((a, a, 1.0), (b, b, 1.0), (c, c, 1.0), (a, b, 0.0), (a, c, 0.0), (b, c, 0.0)):
        if abs(u[0] * v[0] + u[1] * v[1] + u[2] * v[2] - want) > tol:
            return False
    det = (
        a[0] * (b[1] * c[2] - b[2] * c[1])
        - a[1] * (b[0] * c[2] - b[2] * c[0])
        + a[2] * (b[0] * c[1] - b[1] * c[0])
    )
    return abs(det - 1.0) <= tol
