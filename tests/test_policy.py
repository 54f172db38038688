"""VRPolicy: DROID's math with hand-computed values, engage/hold decisions, calibration, config.

The policy says *whether* the arm moves and, when it does, the target; a held step carries no
target (the command gate chooses the held pose: tests/test_safety_gate.py).

Conventions used by the hand computations: with the default ``rmat_reorder = (-2, -1, -3, 4)``,
``G`` maps a VR-frame vector (x, y, z) to robot (−y, −x, −z). Unless a test says otherwise the
calibration is frozen at the identity pose, so ``vr_pos = G · controller_position``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation as R

from oculus_server.constants import PERFORMANCE_CONTROL_FREQ
from oculus_server.errors import ConfigError
from oculus_server.policy import (
    EVENT_CALIBRATED,
    EVENT_DISENGAGED,
    EVENT_ENGAGED,
    EVENT_EPISODE_TOGGLE,
    EVENT_LINK_LOST,
    EVENT_LINK_RESTORED,
    EVENT_NON_FINITE,
    EVENT_ORIGIN_RESET,
    EVENT_POSE_JUMP,
    EVENT_SUCCESS,
    HOLD_DEADMAN,
    HOLD_INVALID_SAMPLE,
    HOLD_LINK_LOST,
    HOLD_NO_SAMPLE,
    HOLD_NON_FINITE,
    HOLD_REGRIP,
    PolicyConfig,
    PolicyError,
    PolicyOutput,
    VRPolicy,
)
from oculus_server.vr.source import VRSample
from robot_formats.recording.records import ControlMode

REF_POS = np.array([0.5, 0.0, 0.4])  # robot hand position, m
REF_QUAT = np.array([1.0, 0.0, 0.0, 0.0])  # hand pointing down (180° about x), xyzw
I4 = np.eye(4)


def make_pose(pos=(0.0, 0.0, 0.0), rotvec=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(4, 4) head_T_controller from a position (m) and a rotation vector (rad)."""
    p = np.eye(4)
    p[:3, :3] = R.from_rotvec(rotvec).as_matrix()
    p[:3, 3] = pos
    return p


class Rig:
    """Drives a VRPolicy with a fake clock, a still robot and hand-made samples."""

    def __init__(self, config: PolicyConfig | None = None, side: str = "r") -> None:
        self.policy = VRPolicy(config)
        self.side = side
        self.now = 100.0
        self.seq = 0
        self.robot_pos = REF_POS.copy()
        self.robot_quat = REF_QUAT.copy()
        self.robot_gripper = -1.0
        self.sample: VRSample | None = None

    def new_sample(self, pose: np.ndarray, buttons: dict | None = None, seq_step: int = 1) -> VRSample:
        self.seq += seq_step
        self.sample = VRSample(poses={self.side: pose}, buttons=dict(buttons or {}), t_recv=self.now, seq=self.seq)
        return self.sample

    def step(
        self,
        pose: np.ndarray | None = None,
        buttons: dict | None = None,
        *,
        dt: float = 0.05,
        seq_step: int = 1,
        mode: ControlMode = ControlMode.REAL_TIME,
        ref_pos=None,
        ref_quat=None,
    ) -> PolicyOutput:
        """Advances time by dt; with a pose, makes a fresh sample, else re-passes the last one."""
        self.now += dt
        if pose is not None:
            self.new_sample(pose, buttons, seq_step)
        return self.policy.step(
            self.sample,
            robot_pos=self.robot_pos,
            robot_quat=self.robot_quat,
            robot_gripper=self.robot_gripper,
            reference_pos=self.robot_pos if ref_pos is None else ref_pos,
            reference_quat=self.robot_quat if ref_quat is None else ref_quat,
            mode=mode,
            now=self.now,
            timestamp=self.now,
        )

    def engage_at_identity(self) -> PolicyOutput:
        """Calibrates at the identity pose (armed tracking, then grip freezes it) and engages."""
        self.step(I4, {})
        out = self.step(I4, {"RG": True} if self.side == "r" else {"LG": True})
        assert out.engaged
        return out


def assert_holds(out: PolicyOutput) -> None:
    assert not out.engaged and out.target is None
    np.testing.assert_array_equal(out.action, np.zeros(7))
    assert out.info["hold_reason"] != ""


def rot_angle_between(q1, q2) -> float:
    return (R.from_quat(q1) * R.from_quat(q2).inv()).magnitude()


# ------------------------------------------------------------------------------------------------
# DROID math, hand-computed
# ------------------------------------------------------------------------------------------------


def test_no_controller_motion_gives_zero_action_and_target_at_reference():
    rig = Rig()
    out = rig.engage_at_identity()
    for _ in range(3):
        out = rig.step(I4, {"RG": True})
        assert out.engaged and out.info["hold_reason"] == ""
        np.testing.assert_allclose(out.action, np.zeros(7), atol=1e-15)
        np.testing.assert_allclose(out.target.pos, REF_POS, atol=1e-15)
        assert rot_angle_between(out.target.quat, REF_QUAT) < 1e-12
        assert out.target.gripper == -1.0 and out.target.reset is False


def test_pure_translation_maps_through_G_with_gain():
    rig = Rig()
    rig.engage_at_identity()
    # controller +1 cm along VR x → robot −y: pos_action (0, −0.01, 0) · gain 5 = (0, −0.05, 0)
    out = rig.step(make_pose((0.01, 0.0, 0.0)), {"RG": True})
    np.testing.assert_allclose(out.action, [0, -0.05, 0, 0, 0, 0, 0], atol=1e-12)
    # target = reference + action · max_lin_delta (0.075 m) = (0.5, −0.00375, 0.4)
    np.testing.assert_allclose(out.target.pos, [0.5, -0.00375, 0.4], atol=1e-12)
    # all three axes: d = (0.02, −0.01, 0.03) → G·d = (0.01, −0.02, −0.03) → ×5
    out = rig.step(make_pose((0.02, -0.01, 0.03)), {"RG": True})
    np.testing.assert_allclose(out.action[:3], [0.05, -0.1, -0.15], atol=1e-12)
    np.testing.assert_allclose(out.target.pos, [0.50375, -0.0075, 0.38875], atol=1e-12)


def test_spatial_coeff_scales_vr_motion():
    rig = Rig(PolicyConfig(spatial_coeff=2.0))
    rig.engage_at_identity()
    out = rig.step(make_pose((0.0, 0.01, 0.0)), {"RG": True})
    # VR +y → robot −x; 2 · 0.01 · 5 = 0.1
    np.testing.assert_allclose(out.action[:3], [-0.1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(out.info["vr_pos"], [-0.02, 0, 0], atol=1e-15)


def test_linear_norm_limit_scales_direction_preserving():
    rig = Rig()
    rig.engage_at_identity()
    # walk to (0.15, 0.2, 0) in steps of 2.5 cm (no pose jump): G·d = (−0.2, −0.15, 0),
    # ×5 = (−1, −0.75, 0), norm 1.25 > max_lin_vel 1 → (−0.8, −0.6, 0)
    for k in range(1, 11):
        out = rig.step(make_pose((0.015 * k, 0.02 * k, 0.0)), {"RG": True})
    assert EVENT_POSE_JUMP not in out.events
    np.testing.assert_allclose(out.action[:3], [-0.8, -0.6, 0.0], atol=1e-12)
    np.testing.assert_allclose(out.target.pos, [0.5 - 0.06, -0.045, 0.4], atol=1e-12)


def test_clip_to_unit_box_then_step_renormalised():
    # max_lin_vel 3: (−1, −0.75)·5... raw (−2.0, −1.5) has norm 2.5 < 3 → kept, then clipped to
    # (−1, −1); the target step renormalises that to norm 1 (DROID's velocity → delta).
    rig = Rig(PolicyConfig(max_lin_vel=3.0))
    rig.engage_at_identity()
    for k in range(1, 21):
        out = rig.step(make_pose((0.015 * k, 0.02 * k, 0.0)), {"RG": True})
    np.testing.assert_allclose(out.action[:3], [-1.0, -1.0, 0.0], atol=1e-12)
    s = 0.075 / math.sqrt(2.0)
    np.testing.assert_allclose(out.target.pos, [0.5 - s, -s, 0.4], atol=1e-12)


def test_robot_following_cancels_the_error():
    rig = Rig()
    rig.engage_at_identity()
    rig.robot_pos = REF_POS + np.array([0.0, -0.01, 0.0])  # the arm already moved by G·d
    out = rig.step(make_pose((0.01, 0.0, 0.0)), {"RG": True})
    np.testing.assert_allclose(out.action, np.zeros(7), atol=1e-12)
    np.testing.assert_allclose(out.target.pos, rig.robot_pos, atol=1e-15)


@pytest.mark.parametrize(
    "rotvec, index, value",
    [
        ((0.0, 0.0, 0.1), 5, -0.2),  # VR z → robot −z: Euler z = −0.1, ×2
        ((0.1, 0.0, 0.0), 4, -0.2),  # VR x → robot −y
        ((0.0, 0.1, 0.0), 3, -0.2),  # VR y → robot −x
    ],
)
def test_rotation_about_one_axis_gives_that_euler_component(rotvec, index, value):
    rig = Rig()
    rig.engage_at_identity()
    out = rig.step(make_pose(rotvec=rotvec), {"RG": True})
    expected = np.zeros(7)
    expected[index] = value
    np.testing.assert_allclose(out.action, expected, atol=1e-12)
    # target = R_xyz(action · 0.15) · R(reference): 0.03 rad about that base axis, applied on the left
    delta = np.zeros(3)
    delta[index - 3] = value * 0.15
    expected_q = (R.from_euler("xyz", delta) * R.from_quat(REF_QUAT)).as_quat()
    assert rot_angle_between(out.target.quat, expected_q) < 1e-12
    np.testing.assert_allclose(out.target.pos, REF_POS, atol=1e-15)


def test_rotation_norm_limit():
    rig = Rig()
    rig.engage_at_identity()
    out = rig.step(make_pose(rotvec=(0.0, 0.0, 0.8)), {"RG": True})
    # −0.8 · 2 = −1.6 → limited to −1 (max_rot_vel); target turns 0.15 rad about base −z
    np.testing.assert_allclose(out.action, [0, 0, 0, 0, 0, -1.0, 0], atol=1e-12)
    expected_q = (R.from_euler("xyz", [0, 0, -0.15]) * R.from_quat(REF_QUAT)).as_quat()
    assert rot_angle_between(out.target.quat, expected_q) < 1e-12


def test_robot_rotation_offset_enters_the_error():
    rig = Rig()
    rig.engage_at_identity()
    # the robot turned 0.05 rad about base z since the origin, the controller did not move:
    # error = quat_diff(identity, Rz(0.05)) = Rz(−0.05) → −0.1 after gain
    rig.robot_quat = (R.from_euler("z", 0.05) * R.from_quat(REF_QUAT)).as_quat()
    out = rig.step(I4, {"RG": True})
    np.testing.assert_allclose(out.action[3:6], [0, 0, -0.1], atol=1e-12)


def test_gripper_action_and_binary_target():
    rig = Rig()
    rig.engage_at_identity()
    # trigger 0.5, gripper open (−1 → 0): 1.5·0.5 − 0 = 0.75, ×3 = 2.25 → limited to 1
    out = rig.step(I4, {"RG": True, "rightTrig": 0.5})
    assert out.action[6] == pytest.approx(1.0)
    assert out.target.gripper == 1.0
    # trigger 0.2, gripper half closed (0 → 0.5): 1.5·0.2 − 0.5 = −0.2, ×3 = −0.6
    rig.robot_gripper = 0.0
    out = rig.step(I4, {"RG": True, "rightTrig": 0.2})
    assert out.action[6] == pytest.approx(-0.6)
    assert out.target.gripper == 1.0  # 0.2 > threshold 0.1
    out = rig.step(I4, {"RG": True, "rightTrig": 0.05})
    assert out.target.gripper == -1.0
    # oculus_reader's 1-tuples are accepted too
    out = rig.step(I4, {"RG": True, "rightTrig": (0.3,)})
    assert out.target.gripper == 1.0


def test_continuous_gripper_maps_trigger_linearly():
    rig = Rig(PolicyConfig(gripper_mode="continuous"))
    rig.engage_at_identity()
    for trig, want in ((0.0, -1.0), (0.2, -0.6), (0.5, 0.0), (1.0, 1.0)):
        out = rig.step(I4, {"RG": True, "rightTrig": trig})
        assert out.target.gripper == pytest.approx(want)


def test_gripper_holds_its_last_target_while_disengaged():
    rig = Rig()
    rig.engage_at_identity()
    assert rig.step(I4, {"RG": True, "rightTrig": 0.9}).target.gripper == 1.0
    out = rig.step(I4, {"rightTrig": 0.0})  # grip released: trigger no longer acts
    assert not out.engaged and out.target is None and out.gripper == 1.0


# ------------------------------------------------------------------------------------------------
# Reference and control mode
# ------------------------------------------------------------------------------------------------


def test_predictive_mode_uses_the_reference_as_robot_pose():
    rig = Rig()
    rig.engage_at_identity()
    pose = make_pose((0.01, 0.0, 0.0))
    last_target = REF_POS + np.array([0.0, -0.01, 0.0])  # already commanded G·d
    # measured pose is stale (still REF_POS): REAL_TIME would still push, PREDICTIVE does not
    out = rig.step(pose, {"RG": True}, mode=ControlMode.PREDICTIVE, ref_pos=last_target)
    np.testing.assert_allclose(out.action, np.zeros(7), atol=1e-12)
    np.testing.assert_allclose(out.target.pos, last_target, atol=1e-15)
    assert out.info["mode"] == "PREDICTIVE"
    out = rig.step(pose, {"RG": True}, mode=ControlMode.REAL_TIME, ref_pos=last_target)
    np.testing.assert_allclose(out.action[:3], [0, -0.05, 0], atol=1e-12)
    np.testing.assert_allclose(out.target.pos, last_target + [0, -0.00375, 0], atol=1e-12)


def test_the_policy_leaves_the_workspace_box_to_the_gate():
    # DROID's arithmetic only: reference + action · max_lin_delta, outside the box if it is.
    rig = Rig()
    rig.robot_pos = np.array([0.9, -0.6, 0.0])  # outside on every axis
    rig.engage_at_identity()
    out = rig.step(make_pose((0.0, -0.04, 0.0)), {"RG": True})  # VR −y → robot +x
    np.testing.assert_allclose(out.target.pos, [0.9 + 0.2 * 0.075, -0.6, 0.0], atol=1e-12)


def test_unusable_reference_holds_without_a_target_and_wrong_lengths_raise():
    rig = Rig()
    rig.engage_at_identity()
    out = rig.step(I4, {"RG": True}, ref_pos=np.array([np.nan, 0.0, 0.0]))
    assert_holds(out)
    assert out.info["hold_reason"] == HOLD_NON_FINITE and EVENT_NON_FINITE in out.events
    out = rig.step(I4, {"RG": True}, ref_quat=np.zeros(4))
    assert out.info["hold_reason"] == HOLD_NON_FINITE
    assert rig.policy.stats["non_finite"] == 2
    out = rig.step(I4, {"RG": True})
    assert out.engaged
    with pytest.raises(PolicyError, match="expected 3 numbers, got 2"):
        rig.step(I4, {}, ref_pos=[0.5, 0.0])


def test_non_finite_robot_state_holds_and_counts():
    rig = Rig()
    rig.engage_at_identity()
    rig.robot_pos = np.array([0.5, np.inf, 0.4])
    out = rig.step(make_pose((0.01, 0.0, 0.0)), {"RG": True}, ref_pos=REF_POS)
    assert_holds(out)
    assert out.info["hold_reason"] == HOLD_NON_FINITE
    assert EVENT_NON_FINITE in out.events and EVENT_DISENGAGED in out.events
    assert rig.policy.stats["non_finite"] == 1
    rig.robot_pos = REF_POS.copy()
    out = rig.step(make_pose((0.01, 0.0, 0.0)), {"RG": True})
    assert out.engaged and EVENT_ENGAGED in out.events
    np.testing.assert_allclose(out.action[:3], [0, -0.05, 0], atol=1e-12)


# ------------------------------------------------------------------------------------------------
# Deadman and origin
# ------------------------------------------------------------------------------------------------


def test_deadman_no_grip_means_zero_action_and_target_at_reference():
    rig = Rig()
    rig.step(I4, {})
    for k in range(1, 4):
        out = rig.step(make_pose((0.01 * k, 0.02, 0.0)), {"rightTrig": 1.0})
        assert_holds(out)
        assert out.info["hold_reason"] == HOLD_DEADMAN
        assert out.gripper == -1.0  # the initial hold follows the measured gripper


def test_origin_is_stored_on_grip_press_and_release():
    rig = Rig()
    rig.step(I4, {})
    rig.robot_pos = np.array([0.45, 0.1, 0.3])
    out = rig.step(I4, {"RG": True})
    assert EVENT_ORIGIN_RESET in out.events and EVENT_ENGAGED in out.events
    assert out.info["robot_origin_pos"] == (0.45, 0.1, 0.3)
    assert out.info["vr_origin_pos"] == (0.0, 0.0, 0.0)
    # release after moving: the origin is stored again at that instant
    rig.robot_pos = np.array([0.46, 0.11, 0.31])
    out = rig.step(make_pose((0.02, 0.0, 0.0)), {})
    assert EVENT_ORIGIN_RESET in out.events and EVENT_DISENGAGED in out.events
    assert out.info["robot_origin_pos"] == (0.46, 0.11, 0.31)
    np.testing.assert_allclose(out.info["vr_origin_pos"], [0.0, -0.02, 0.0], atol=1e-15)
    # move the controller while released, press again: no jump, the new pose is the origin
    rig.step(make_pose((0.05, 0.0, 0.0)), {})
    out = rig.step(make_pose((0.05, 0.0, 0.0)), {"RG": True})
    assert out.engaged and EVENT_ORIGIN_RESET in out.events
    np.testing.assert_allclose(out.action, np.zeros(7), atol=1e-12)
    out = rig.step(make_pose((0.06, 0.0, 0.0)), {"RG": True})
    np.testing.assert_allclose(out.action[:3], [0, -0.05, 0], atol=1e-12)


def test_reset_origin_re_anchors_while_engaged():
    rig = Rig()
    rig.engage_at_identity()
    rig.step(make_pose((0.01, 0.0, 0.0)), {"RG": True})
    rig.policy.reset_origin()
    out = rig.step(make_pose((0.01, 0.0, 0.0)), {"RG": True})
    assert EVENT_ORIGIN_RESET in out.events
    np.testing.assert_allclose(out.action, np.zeros(7), atol=1e-12)


def test_same_sample_passed_twice_gives_no_duplicate_edges():
    rig = Rig()
    rig.step(I4, {})
    out1 = rig.step(I4, {"RG": True, "A": True})
    out2 = rig.step(dt=0.02)  # the control loop runs faster than the VR samples
    assert EVENT_EPISODE_TOGGLE in out1.events and EVENT_ORIGIN_RESET in out1.events
    assert out2.events == () and out2.engaged


# ------------------------------------------------------------------------------------------------
# Link loss and pose jumps
# ------------------------------------------------------------------------------------------------


def test_no_sample_at_all_holds():
    rig = Rig()
    out = rig.step()
    assert_holds(out)
    assert out.info["hold_reason"] == HOLD_NO_SAMPLE and out.info["link_ok"] is False


def test_link_loss_disengages_and_needs_a_fresh_grip_press():
    rig = Rig()
    rig.engage_at_identity()
    rig.step(make_pose((0.01, 0.0, 0.0)), {"RG": True})
    out = rig.step(dt=0.4)  # same sample, 0.4 s old: still within the 0.5 s timeout
    assert out.engaged
    out = rig.step(dt=0.2)  # 0.6 s old
    assert_holds(out)
    assert EVENT_LINK_LOST in out.events and EVENT_DISENGAGED in out.events
    assert out.info["hold_reason"] == HOLD_LINK_LOST
    assert rig.policy.stats["link_losses"] == 1
    out = rig.step(dt=1.0)
    assert_holds(out)
    assert out.events == ()
    # link back with the grip still held: no movement until release + press
    out = rig.step(make_pose((0.03, 0.0, 0.0)), {"RG": True})
    assert_holds(out)
    assert EVENT_LINK_RESTORED in out.events and out.info["hold_reason"] == HOLD_REGRIP
    assert out.info["regrip_required"] is True
    out = rig.step(make_pose((0.03, 0.0, 0.0)), {"RG": True})
    assert_holds(out)
    out = rig.step(make_pose((0.03, 0.0, 0.0)), {})
    assert_holds(out)
    assert out.info["hold_reason"] == HOLD_DEADMAN
    out = rig.step(make_pose((0.03, 0.0, 0.0)), {"RG": True})
    assert out.engaged and EVENT_ORIGIN_RESET in out.events and EVENT_ENGAGED in out.events
    np.testing.assert_allclose(out.action, np.zeros(7), atol=1e-12)
    out = rig.step(make_pose((0.04, 0.0, 0.0)), {"RG": True})
    np.testing.assert_allclose(out.action[:3], [0, -0.05, 0], atol=1e-12)


def test_link_loss_with_sample_none_and_stale_new_samples():
    rig = Rig()
    rig.engage_at_identity()
    rig.sample = None
    out = rig.step(dt=0.6)
    assert EVENT_LINK_LOST in out.events
    assert_holds(out)
    # a "new" sample that is itself older than the timeout does not restore the link
    rig.new_sample(I4, {"RG": True})
    rig.now += 0.7
    out = rig.step(dt=0.0)
    assert_holds(out)
    assert out.info["link_ok"] is False


def test_invalid_samples_hold_without_dropping_the_link_until_timeout():
    rig = Rig()
    rig.engage_at_identity()
    bad = VRSample(poses={"l": I4}, buttons={"RG": True}, t_recv=0.0, seq=99)  # no right pose
    for _ in range(3):
        rig.now += 0.1
        bad = VRSample(poses=bad.poses, buttons=bad.buttons, t_recv=rig.now, seq=bad.seq + 1)
        rig.sample = bad
        out = rig.step(dt=0.0)
        assert_holds(out)
        assert out.info["hold_reason"] == HOLD_INVALID_SAMPLE
    rig.now += 0.3  # 0.6 s since the last valid sample
    rig.sample = VRSample(poses=bad.poses, buttons=bad.buttons, t_recv=rig.now, seq=bad.seq + 1)
    out = rig.step(dt=0.0)
    assert EVENT_LINK_LOST in out.events
    assert rig.policy.stats["invalid_samples"] == 4


@pytest.mark.parametrize(
    "pose",
    [
        np.diag([2.0, 1.0, 1.0, 1.0]),  # scaled, not a rotation
        np.diag([-1.0, 1.0, 1.0, 1.0]),  # mirrored (det −1)
        np.full((4, 4), np.nan),
        np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0.5, 0, 0, 1]]),  # bad bottom row
        np.eye(3),  # wrong shape
        make_pose((0.0, 3.5, 0.0)),  # farther than VR_MAX_HAND_DISTANCE_M from the head
    ],
)
def test_bad_poses_and_triggers_are_invalid_samples(pose):
    rig = Rig()
    rig.engage_at_identity()
    out = rig.step(pose, {"RG": True})
    assert_holds(out)
    assert out.info["hold_reason"] == HOLD_INVALID_SAMPLE
    out = rig.step(I4, {"RG": True, "rightTrig": float("nan")})
    assert out.info["hold_reason"] == HOLD_INVALID_SAMPLE
    out = rig.step(I4, {"RG": True})  # a good sample moves again, from the same origin
    assert out.engaged


def test_pose_jump_re_anchors_instead_of_moving():
    rig = Rig()
    rig.engage_at_identity()
    out = rig.step(make_pose((0.06, 0.0, 0.0)), {"RG": True})  # 6 cm in one sample
    assert EVENT_POSE_JUMP in out.events and EVENT_ORIGIN_RESET in out.events
    assert out.engaged
    np.testing.assert_allclose(out.action, np.zeros(7), atol=1e-12)
    np.testing.assert_allclose(out.target.pos, REF_POS, atol=1e-15)
    out = rig.step(make_pose((0.07, 0.0, 0.0)), {"RG": True})  # continues from the new origin
    assert EVENT_POSE_JUMP not in out.events
    np.testing.assert_allclose(out.action[:3], [0, -0.05, 0], atol=1e-12)
    assert rig.policy.stats["pose_jumps"] == 1


def test_pose_jump_bound_scales_with_skipped_source_samples():
    rig = Rig()
    rig.engage_at_identity()
    # 6 cm over 2 source samples (3 cm each) is ordinary motion
    out = rig.step(make_pose((0.06, 0.0, 0.0)), {"RG": True}, seq_step=2)
    assert EVENT_POSE_JUMP not in out.events
    np.testing.assert_allclose(out.action[:3], [0, -0.3, 0], atol=1e-12)
    # 11 cm over 2 samples is a jump
    out = rig.step(make_pose((0.17, 0.0, 0.0)), {"RG": True}, seq_step=2)
    assert EVENT_POSE_JUMP in out.events


# ------------------------------------------------------------------------------------------------
# Calibration
# ------------------------------------------------------------------------------------------------


def test_pose_calibration_arm_freeze_rearm():
    rig = Rig()
    poses = [make_pose((0.1 * k, 0.02, -0.3), (0.2 * k, -0.1, 0.3)) for k in range(8)]
    assert rig.policy.calibration_armed
    out = rig.step(poses[0], {})
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(poses[0]))
    np.testing.assert_allclose(out.info["vr_pos"], [0, 0, 0], atol=1e-12)  # armed: pose ≡ G
    out = rig.step(poses[1], {})  # (jump events here are irrelevant: not engaged)
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(poses[1]))
    out = rig.step(poses[2], {"RG": True})  # grip freezes at this pose
    assert EVENT_CALIBRATED in out.events and not rig.policy.calibration_armed
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(poses[2]))
    rig.step(poses[3], {"RG": True})
    rig.step(poses[3], {})
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(poses[2]))
    out = rig.step(poses[4], {"RJ": True})  # joystick re-arms and tracks while held
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(poses[4]))
    assert EVENT_CALIBRATED not in out.events
    rig.step(poses[5], {"RJ": True})
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(poses[5]))
    out = rig.step(poses[6], {})  # release: frozen at the last held pose
    assert EVENT_CALIBRATED in out.events and not rig.policy.calibration_armed
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(poses[5]))
    rig.step(poses[7], {})
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(poses[5]))
    assert rig.policy.stats["calibrations"] == 2


def test_pose_calibration_makes_motion_relative_to_the_calibration_pose():
    rig = Rig()
    base = make_pose((0.1, -0.2, -0.3), (0.0, 0.0, math.pi / 2))  # controller yawed 90° about VR z
    rig.step(base, {})
    rig.step(base, {"RG": True})
    # moving 1 cm along the controller's own x axis (= VR +y here) acts like VR x at identity
    moved = base.copy()
    moved[:3, 3] += base[:3, 0] * 0.01
    out = rig.step(moved, {"RG": True})
    np.testing.assert_allclose(out.action[:3], [0, -0.05, 0], atol=1e-12)


def test_recalibrating_while_engaged_re_anchors_the_origin():
    rig = Rig()
    rig.engage_at_identity()
    rig.step(make_pose((0.01, 0.0, 0.0)), {"RG": True})
    out = rig.step(make_pose((0.01, 0.0, 0.0), (0.0, 0.0, 0.5)), {"RG": True, "RJ": True})
    assert EVENT_ORIGIN_RESET in out.events
    np.testing.assert_allclose(out.action, np.zeros(7), atol=1e-12)


def _motion_rig(yaw: float, rotvec=(0.3, -1.0, 0.4)) -> tuple[Rig, np.ndarray, np.ndarray, np.ndarray]:
    """Calibrates with a 5 cm forward (+2 cm up) joystick motion along heading `yaw`."""
    rig = Rig(PolicyConfig(calibration_mode="motion"))
    fwd = np.array([math.sin(yaw), 0.0, -math.cos(yaw)])  # horizontal in the y-up VR frame
    up = np.array([0.0, 1.0, 0.0])
    p0 = np.array([0.1, -0.3, -0.2])
    rig.step(make_pose(p0, rotvec), {})
    out = rig.step(make_pose(p0, rotvec), {"RJ": True})
    assert out.info["calibrating"]
    rig.step(make_pose(p0 + 0.025 * fwd + 0.01 * up, rotvec), {"RJ": True})
    out = rig.step(make_pose(p0 + 0.05 * fwd + 0.02 * up, rotvec), {})
    assert EVENT_CALIBRATED in out.events
    return rig, fwd, up, p0


@pytest.mark.parametrize("yaw", [0.0, 0.7, -2.5])
def test_motion_calibration_maps_forward_to_robot_x_and_up_to_z(yaw):
    rig, fwd, up, p0 = _motion_rig(yaw)
    left = np.cross(up, fwd)
    here = p0 + 0.05 * fwd
    rig.step(make_pose(here, (1.0, 0.2, 0.0)), {})
    out = rig.step(make_pose(here, (1.0, 0.2, 0.0)), {"RG": True})
    assert out.info["calibration_method"] == "motion"
    for direction, expected in ((fwd, [0.05, 0, 0]), (up, [0, 0, 0.05]), (left, [0, 0.05, 0])):
        out = rig.step(make_pose(here + 0.01 * direction, (1.0, 0.2, 0.0)), {"RG": True})
        np.testing.assert_allclose(out.action[:3], expected, atol=1e-12)
        rig.step(make_pose(here, (1.0, 0.2, 0.0)), {"RG": True})


def test_motion_calibration_rotation_about_up_is_robot_z():
    rig, fwd, up, p0 = _motion_rig(0.7)
    rig.step(make_pose(p0), {})
    rig.step(make_pose(p0), {"RG": True})
    out = rig.step(make_pose(p0, 0.1 * up), {"RG": True})  # turn 0.1 rad about VR up
    np.testing.assert_allclose(out.action[3:6], [0, 0, 0.2], atol=1e-12)


def test_motion_calibration_too_small_falls_back_to_pose():
    rig = Rig(PolicyConfig(calibration_mode="motion"))
    a = make_pose((0.1, 0.0, -0.2), (0.0, 0.4, 0.0))
    b = make_pose((0.1, 0.0, -0.202), (0.0, 0.5, 0.0))  # 2 mm < 3 mm
    rig.step(a, {})
    rig.step(a, {"RJ": True})
    rig.step(b, {"RJ": True})
    c = make_pose((0.1, 0.05, -0.202), (0.0, 0.6, 0.0))  # 5 cm straight up: no horizontal motion
    out = rig.step(b, {})
    assert EVENT_CALIBRATED in out.events and out.info["calibration_method"] == "pose-fallback"
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(b))
    rig.step(b, {"RJ": True})
    rig.step(c, {"RJ": True})
    out = rig.step(c, {})
    assert out.info["calibration_method"] == "pose-fallback"
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(c))


def test_link_loss_cancels_a_motion_capture():
    rig = Rig(PolicyConfig(calibration_mode="motion"))
    p = make_pose((0.1, 0.0, -0.2))
    rig.step(p, {})
    rig.step(p, {"RG": True})  # frozen by the grip ("pose")
    rig.step(p, {})
    out = rig.step(p, {"RJ": True})
    assert out.info["calibrating"]
    rig.step(dt=0.6)  # link lost mid-capture
    far = make_pose((0.1, 0.0, -0.4))
    out = rig.step(far, {})  # back, joystick already released: no calibration from a stale press
    assert EVENT_CALIBRATED not in out.events and not out.info["calibrating"]
    assert out.info["calibration_method"] == "pose"
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(p))


def test_motion_mode_starts_with_droid_tracking_until_grip():
    rig = Rig(PolicyConfig(calibration_mode="motion"))
    p = make_pose((0.1, 0.0, -0.2), (0.0, 0.4, 0.0))
    rig.step(p, {})
    np.testing.assert_allclose(rig.policy.vr_to_global_mat, np.linalg.inv(p))
    out = rig.step(p, {"RG": True})
    assert EVENT_CALIBRATED in out.events and out.info["calibration_method"] == "pose"


# ------------------------------------------------------------------------------------------------
# Left controller, episode buttons
# ------------------------------------------------------------------------------------------------


def test_left_controller_mirrors_the_right():
    right, left = Rig(), Rig(PolicyConfig(right_controller=False), side="l")
    steps = [
        (I4, {}),
        (I4, {"G": True}),
        (make_pose((0.01, -0.02, 0.005), (0.05, 0.0, -0.1)), {"G": True, "Trig": 0.7}),
        (make_pose((0.02, -0.02, 0.005), (0.05, 0.1, -0.1)), {"G": True, "A": True}),
        (make_pose((0.02, -0.02, 0.005)), {"J": True, "B": True}),
    ]
    names_r = {"G": "RG", "Trig": "rightTrig", "A": "A", "B": "B", "J": "RJ"}
    names_l = {"G": "LG", "Trig": "leftTrig", "A": "X", "B": "Y", "J": "LJ"}
    for pose, b in steps:
        out_r = right.step(pose, {names_r[k]: v for k, v in b.items()})
        out_l = left.step(pose, {names_l[k]: v for k, v in b.items()})
        np.testing.assert_array_equal(out_r.action, out_l.action)
        assert (out_r.target is None) == (out_l.target is None)
        if out_r.target is not None:
            np.testing.assert_array_equal(out_r.target.pos, out_l.target.pos)
            np.testing.assert_array_equal(out_r.target.quat, out_l.target.quat)
        assert out_r.gripper == out_l.gripper
        assert out_r.events == out_l.events and out_r.engaged == out_l.engaged
    assert left.policy.stats["episode_toggles"] == 1 and left.policy.stats["successes"] == 1


def test_left_policy_ignores_right_controller():
    rig = Rig(PolicyConfig(right_controller=False), side="l")
    rig.step(I4, {})
    sample = VRSample(poses={"r": I4, "l": I4}, buttons={"RG": True, "A": True}, t_recv=rig.now + 0.05, seq=50)
    rig.sample = sample
    out = rig.step(dt=0.05)
    assert not out.engaged and out.info["hold_reason"] == HOLD_DEADMAN
    assert EVENT_EPISODE_TOGGLE not in out.events
    rig.sample = VRSample(poses={"r": I4}, buttons={"LG": True}, t_recv=rig.now + 0.05, seq=51)
    out = rig.step(dt=0.05)
    assert out.info["hold_reason"] == HOLD_INVALID_SAMPLE  # left pose missing


def test_episode_and_success_edges():
    rig = Rig()
    seen = []
    for b in ({}, {"A": True}, {"A": True}, {}, {"A": True}, {"B": True}, {"B": True, "A": True}, {}):
        seen.append(rig.step(I4, b).events)
    toggles = [i for i, ev in enumerate(seen) if EVENT_EPISODE_TOGGLE in ev]
    successes = [i for i, ev in enumerate(seen) if EVENT_SUCCESS in ev]
    assert toggles == [1, 4, 6]
    assert successes == [5]
    assert rig.policy.stats["episode_toggles"] == 3 and rig.policy.stats["successes"] == 1


def test_custom_episode_buttons():
    rig = Rig(PolicyConfig(episode_button="RThU", success_button="RTr"))
    events = [rig.step(I4, b).events for b in ({}, {"A": True}, {"RThU": True}, {"RTr": True})]
    assert EVENT_EPISODE_TOGGLE not in events[1]
    assert EVENT_EPISODE_TOGGLE in events[2] and EVENT_SUCCESS in events[3]


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------


def test_default_config_is_droid():
    c = PolicyConfig()
    assert (c.max_lin_vel, c.max_rot_vel, c.max_gripper_vel, c.spatial_coeff) == (1.0, 1.0, 1.0, 1.0)
    assert (c.pos_action_gain, c.rot_action_gain, c.gripper_action_gain) == (5.0, 2.0, 3.0)
    assert c.rmat_reorder == (-2, -1, -3, 4) and c.control_hz == 20.0
    assert (c.max_lin_delta, c.max_rot_delta) == (0.075, 0.15)
    assert (c.trigger_threshold, c.link_timeout_s, c.pose_jump_m) == (0.1, 0.5, 0.05)
    assert (c.episode_button_name, c.success_button_name, c.side) == ("A", "B", "r")
    left = PolicyConfig(right_controller=False)
    assert (left.episode_button_name, left.success_button_name, left.grip_button) == ("X", "Y", "LG")
    assert (left.joystick_button, left.trigger_name, left.side) == ("LJ", "leftTrig", "l")


def test_performance_config():
    c = PolicyConfig.performance()
    assert (c.pos_action_gain, c.rot_action_gain) == (10.0, 3.0)
    assert (c.max_lin_delta, c.max_rot_delta) == (0.05, 0.1)
    assert c.control_hz == PERFORMANCE_CONTROL_FREQ == 40
    assert c.gripper_action_gain == 3.0  # untouched
    c2 = PolicyConfig.from_dict({"right_controller": False}, performance=True)
    assert c2.pos_action_gain == 10.0 and c2.side == "l"
    assert PolicyConfig.performance(max_lin_delta=0.04).max_lin_delta == 0.04
    # hand-computed performance step: 1 cm along VR x → −y, ×10 = −0.1, × 0.05 m = −5 mm
    rig = Rig(c)
    rig.engage_at_identity()
    out = rig.step(make_pose((0.01, 0.0, 0.0)), {"RG": True})
    np.testing.assert_allclose(out.action[:3], [0, -0.1, 0], atol=1e-12)
    np.testing.assert_allclose(out.target.pos, REF_POS + [0, -0.005, 0], atol=1e-12)


def test_from_dict_accepts_yaml_values():
    c = PolicyConfig.from_dict(
        {"pos_action_gain": 4, "rmat_reorder": [-2, -1, -3, 4], "gripper_mode": "continuous", "episode_button": None}
    )
    assert c.pos_action_gain == 4.0 and isinstance(c.pos_action_gain, float)
    assert c.rmat_reorder == (-2, -1, -3, 4) and c.gripper_mode == "continuous"
    assert PolicyConfig.from_dict(None) == PolicyConfig()


def test_from_dict_rejects_unknown_keys_naming_them_and_the_allowed_ones():
    with pytest.raises(ConfigError) as exc:
        PolicyConfig.from_dict({"pos_gain": 5})
    msg = str(exc.value)
    assert "'pos_gain'" in msg and "pos_action_gain" in msg and "rmat_reorder" in msg


@pytest.mark.parametrize(
    "d, fragment",
    [
        ({"pos_action_gain": "5"}, "expected a number"),
        ({"pos_action_gain": -1}, "> 0"),
        ({"max_lin_delta": float("nan")}, "> 0"),
        ({"rmat_reorder": [1, 2, 3]}, "list of 4"),
        ({"rmat_reorder": [1, 1, 3, 4]}, "signed permutation"),
        ({"rmat_reorder": [-1, 2, 3, 4]}, "determinant"),
        ({"rmat_reorder": [1, 2, 4, 3]}, "ending in 4"),
        ({"gripper_mode": "analog"}, "gripper_mode"),
        ({"calibration_mode": "auto"}, "calibration_mode"),
        ({"trigger_threshold": 1.0}, "trigger_threshold"),
        ({"right_controller": "yes"}, "true/false"),
        ({"episode_button": "Z"}, "episode_button"),
        ({"workspace_min": [0.8, -0.4, 0.05]}, "belong in the 'safety:' section"),
        ({"vr_up_axis": [0, 0, 0]}, "vr_up_axis"),
    ],
)
def test_from_dict_rejects_bad_values(d, fragment):
    with pytest.raises(ConfigError, match=fragment):
        PolicyConfig.from_dict(d)


def test_from_dict_rejects_non_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        PolicyConfig.from_dict([("pos_action_gain", 1)])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# Never a non-finite output
# ------------------------------------------------------------------------------------------------

huge = st.floats(allow_nan=True, allow_infinity=True, width=64)
reasonable = st.floats(-2.0, 2.0)


@st.composite
def vr_pose(draw) -> np.ndarray:
    kind = draw(st.sampled_from(["rigid", "rigid", "rigid_huge", "garbage"]))
    if kind == "garbage":
        return np.array(draw(st.lists(huge, min_size=16, max_size=16))).reshape(4, 4)
    rv = draw(st.lists(st.floats(-4, 4), min_size=3, max_size=3))
    pos = draw(st.lists(huge.filter(math.isfinite) if kind == "rigid_huge" else reasonable, min_size=3, max_size=3))
    return make_pose(pos, rv)


step_spec = st.tuples(
    vr_pose(),
    st.fixed_dictionaries(
        {
            "RG": st.booleans(),
            "RJ": st.booleans(),
            "A": st.booleans(),
            "rightTrig": st.one_of(st.floats(0, 1), huge),
        }
    ),
    st.lists(st.one_of(st.floats(-1e6, 1e6), st.floats(-1e300, 1e300)), min_size=3, max_size=3),
    st.one_of(st.none(), st.lists(huge, min_size=3, max_size=3)),  # reference, when not the robot pose
    st.floats(0.0, 1.0),  # dt
    st.sampled_from([ControlMode.REAL_TIME, ControlMode.PREDICTIVE]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step_spec, min_size=1, max_size=12), st.sampled_from(["pose", "motion"]))
def test_output_is_always_finite_and_a_hold_has_no_target(steps, calibration_mode):
    policy = VRPolicy(PolicyConfig(calibration_mode=calibration_mode))
    now = 0.0
    for seq, (pose, buttons, robot_pos, reference, dt, mode) in enumerate(steps):
        now += dt
        sample = VRSample(poses={"r": pose}, buttons=buttons, t_recv=now, seq=seq)
        ref = np.array(robot_pos if reference is None else reference)
        out = policy.step(
            sample,
            robot_pos=np.array(robot_pos),
            robot_quat=REF_QUAT,
            robot_gripper=0.0,
            reference_pos=ref,
            reference_quat=REF_QUAT,
            mode=mode,
            now=now,
            timestamp=now,
        )
        assert out.action.shape == (7,) and np.isfinite(out.action).all()
        assert np.all(np.abs(out.action) <= 1.0)
        assert math.isfinite(out.gripper) and -1.0 <= out.gripper <= 1.0
        if not out.engaged:
            assert out.target is None and not out.action.any() and out.info["hold_reason"]
            continue
        t = out.target
        assert t is not None and np.isfinite(t.pos).all() and np.isfinite(t.quat).all()
        assert abs(np.linalg.norm(t.quat) - 1.0) < 1e-9 and t.gripper == out.gripper
        # the step from the reference is at most one full-scale delta (the gate limits further)
        assert np.linalg.norm(t.pos - ref) <= policy.config.max_lin_delta * (1 + 1e-9)


def test_overflow_inside_the_action_holds_instead_of_clipping_nan_to_full_speed():
    # gain · error overflows to inf; the norm limit then makes inf · 0 = NaN, which clipping alone
    # would turn into a full-scale −1: the policy must hold instead.
    rig = Rig(PolicyConfig(pos_action_gain=1e308, spatial_coeff=100.0))
    rig.engage_at_identity()
    out = rig.step(make_pose((0.04, 0.0, 0.0)), {"RG": True})
    assert_holds(out)
    assert out.info["hold_reason"] == HOLD_NON_FINITE and EVENT_NON_FINITE in out.events
