"""The policy reads VR samples with the package's one rigidity rule and one analog-value rule."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from oculus_server.policy.sample import SampleKeys, parse_sample
from oculus_server.vr.parser import rigid_problem
from robot_formats.recording.records import VRSample

KEYS = SampleKeys("r", "RG", "RJ", "rightTrig", "A", "B")


def _rot(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


angles = st.floats(-math.pi, math.pi)
noise = st.floats(-0.02, 0.02)


@settings(max_examples=300, deadline=None)
@given(angles, angles, angles, st.lists(noise, min_size=16, max_size=16), st.floats(-4.0, 4.0),
       st.sampled_from([1.0, -1.0]))
def test_a_sample_is_usable_exactly_when_its_pose_is_rigid(ax, ay, az, jitter, x, flip) -> None:
    pose = np.eye(4)
    pose[:3, :3] = _rot(ax, ay, az) * np.array([1.0, 1.0, flip])  # flip: a reflection
    pose[:3, 3] = (x, 0.1, -0.2)
    pose += np.array(jitter).reshape(4, 4) * (np.arange(16).reshape(4, 4) % 3 == 0)  # perturb some entries
    sample = VRSample({"r": pose}, {"rightTrig": (0.25,), "RG": True}, 1.0, 0)
    parsed = parse_sample(sample, KEYS)
    assert (parsed is None) == (rigid_problem(pose.reshape(16).tolist()) is not None)
    if parsed is not None:
        assert parsed.trigger == 0.25 and parsed.grip


def test_trigger_values_follow_the_analog_rule() -> None:
    pose = np.eye(4)
    for value, want in (((0.5,), 0.5), ([0.75], 0.75), (np.array([0.1]), 0.1), (0.3, 0.3), (True, 1.0)):
        parsed = parse_sample(VRSample({"r": pose}, {"rightTrig": value}, 1.0, 0), KEYS)
        assert parsed is not None and parsed.trigger == want
    for bad in ((), float("nan"), "x", None):
        assert parse_sample(VRSample({"r": pose}, {"rightTrig": bad}, 1.0, 0), KEYS) is None
