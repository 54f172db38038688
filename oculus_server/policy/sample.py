"""Checks one VR sample for the policy: the chosen controller's pose and buttons, or None.

A sample is unusable (the policy holds for that step; it does not count as a link sample) when
the pose for the chosen side is missing or fails the package's one rigidity rule
(`oculus_server.vr.parser.rigid_problem`: finite, rigid, within reach of the head), when its
receive time is not finite, or when its trigger (read as `robot_formats.recording.records.analog_value`,
like every button map) is not a finite number.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from oculus_server.vr.parser import rigid_problem
from robot_formats.recording.records import VRSample, analog_value


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
        if pose.shape != (4, 4) or not math.isfinite(float(sample.t_recv)):
            return None
        if rigid_problem(pose.reshape(16).tolist()) is not None:
            return None  # not finite, not rigid, or farther from the head than a hand can be
        b = sample.buttons
        trig = analog_value(b.get(keys.trigger, 0.0))
        if not math.isfinite(trig):
            return None
        return ParsedSample(
            pose,
            (float(pose[0, 3]), float(pose[1, 3]), float(pose[2, 3])),
            bool(b.get(keys.grip, False)),
            bool(b.get(keys.joystick, False)),
            trig,
            bool(b.get(keys.episode, False)),
            bool(b.get(keys.success, False)),
        )
    except (TypeError, ValueError, IndexError):
        return None
