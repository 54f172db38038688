"""The policy's action is DROID's: compared with a transcription of DROID's own code on scipy.

`droid_reference` below follows ``droid/controllers/oculus_controller.py`` (``_process_reading``
and ``_calculate_action``) and ``droid/misc/transformations.py`` step by step, with scipy's
`Rotation` as DROID uses it. Our implementation (`oculus_server.policy.droid`, plain floats) must
agree to 1e-15 on random poses, origins, gains and grippers, both as pure functions and through
`VRPolicy.step` (calibration frozen by the grip, origin stored at the grip press).

Tolerances: the VR pose in the robot frame agrees to 1e-15; the action (whose rotation part passes
through two quaternion differences, an Euler conversion and a gain of up to 12 before clipping)
to a few units in the last place of its pre-clip magnitude, 4e-15 at most over arbitrary
orientations (the largest seen is printed).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation as R

from oculus_server.policy import PolicyConfig, VRPolicy
from oculus_server.policy.droid import droid_action, vr_state
from robot_formats.recording.records import ControlMode, VRSample
from robot_formats.rotations import vec_to_reorder_mat

TOL = 1e-15  # VR position / quaternion in the robot frame
TOL_ACTION = 4e-15  # the 7-D action
REORDERS = ((-2, -1, -3, 4), (1, 2, 3, 4), (2, -1, 3, 4), (-1, 3, 2, 4))  # proper rotations


def droid_reorder(vec) -> np.ndarray:
    """DROID's vec_to_reorder_mat, from its definition: row i has sign(v_i) in column |v_i| - 1."""
    x = np.zeros((len(vec), len(vec)))
    for i, v in enumerate(vec):
        x[i, abs(int(v)) - 1] = np.sign(v)
    return x


def droid_reference(
    pose, vr_to_global, cfg: PolicyConfig, trig, robot_pos, robot_quat, robot_g01, robot_origin, vr_origin
):
    """DROID's VRPolicy._process_reading + _calculate_action (action only), scipy as DROID uses it."""
    m = droid_reorder(cfg.rmat_reorder) @ vr_to_global @ pose
    vr_pos = cfg.spatial_coeff * m[:3, 3]
    vr_quat = R.from_matrix(m[:3, :3]).as_quat()
    pos_action = (vr_pos - vr_origin[0]) - (np.asarray(robot_pos) - robot_origin[0])
    robot_off = (R.from_quat(robot_quat) * R.from_quat(robot_origin[1]).inv()).as_quat()
    target_off = (R.from_quat(vr_quat) * R.from_quat(vr_origin[1]).inv()).as_quat()
    quat_action = (R.from_quat(target_off) * R.from_quat(robot_off).inv()).as_quat()
    euler_action = R.from_quat(quat_action).as_euler("xyz")
    gripper_action = trig * 1.5 - robot_g01
    lin, rot, grip = (
        pos_action * cfg.pos_action_gain,
        euler_action * cfg.rot_action_gain,
        gripper_action * cfg.gripper_action_gain,
    )
    if np.linalg.norm(lin) > cfg.max_lin_vel:
        lin = lin * cfg.max_lin_vel / np.linalg.norm(lin)
    if np.linalg.norm(rot) > cfg.max_rot_vel:
        rot = rot * cfg.max_rot_vel / np.linalg.norm(rot)
    if abs(grip) > cfg.max_gripper_vel:
        grip = grip * cfg.max_gripper_vel / abs(grip)
    return np.concatenate([lin, rot, [grip]]).clip(-1, 1), vr_pos, vr_quat


def random_pose(rng: np.random.Generator, scale: float = 0.3) -> np.ndarray:
    p = np.eye(4)
    p[:3, :3] = R.random(random_state=rng).as_matrix()
    p[:3, 3] = rng.uniform(-scale, scale, 3)
    return p


def random_config(rng: np.random.Generator) -> PolicyConfig:
    return PolicyConfig(
        pos_action_gain=float(rng.uniform(1, 12)),
        rot_action_gain=float(rng.uniform(0.5, 4)),
        gripper_action_gain=float(rng.uniform(0.5, 4)),
        max_lin_vel=float(rng.uniform(0.5, 2)),
        max_rot_vel=float(rng.uniform(0.5, 2)),
        spatial_coeff=float(rng.uniform(0.5, 2)),
        rmat_reorder=REORDERS[int(rng.integers(len(REORDERS)))],
    )


def test_reorder_matrix_is_droids() -> None:
    for vec in ((-2, -1, -3, 4), (1, 2, 3, 4), (2, -1, 3, 4)):
        np.testing.assert_array_equal(vec_to_reorder_mat(vec), droid_reorder(vec))


@pytest.mark.parametrize("seed", range(4))
def test_pure_action_matches_droid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(250):
        cfg = random_config(rng) if seed % 2 else PolicyConfig()
        vr_to_global = np.linalg.inv(random_pose(rng))
        pose = random_pose(rng)
        gv = vec_to_reorder_mat(cfg.rmat_reorder) @ vr_to_global
        vr_pos, vr_quat = vr_state(gv, pose, cfg.spatial_coeff)
        robot_pos = rng.uniform([0.2, -0.4, 0.05], [0.75, 0.4, 0.7])
        robot_quat = R.random(random_state=rng).as_quat()
        robot_origin = (rng.uniform([0.2, -0.4, 0.05], [0.75, 0.4, 0.7]), R.random(random_state=rng).as_quat())
        vr_origin_pose = random_pose(rng)
        vo_pos, vo_quat = vr_state(gv, vr_origin_pose, cfg.spatial_coeff)
        trig, g = float(rng.uniform(0, 1)), float(rng.uniform(-1, 1))
        ours = droid_action(cfg, vr_pos, vr_quat, trig, tuple(robot_pos), tuple(robot_quat), g,
                            (tuple(robot_origin[0]), tuple(robot_origin[1])), (vo_pos, vo_quat))
        ref, ref_vr_pos, ref_vr_quat = droid_reference(
            pose, vr_to_global, cfg, trig, robot_pos, robot_quat, (g + 1) / 2,
            robot_origin, (np.array(vo_pos), np.array(vo_quat)),
        )
        assert ours is not None
        np.testing.assert_allclose(vr_pos, ref_vr_pos, rtol=0, atol=TOL)
        assert min(np.abs(np.array(vr_quat) - ref_vr_quat).max(), np.abs(np.array(vr_quat) + ref_vr_quat).max()) <= TOL
        worst = max(worst, float(np.abs(np.array(ours) - ref).max()))
    print(f"largest difference from DROID's action: {worst:.2e}")
    assert worst <= TOL_ACTION


def test_vr_policy_actions_match_droid_through_a_grip_and_motion() -> None:
    """End to end: DROID freezes vr_to_global = inv(pose) at the grip press and stores the origins
    there; every later action follows from DROID's formula with the (moving) robot pose."""
    rng = np.random.default_rng(7)
    cfg = PolicyConfig()
    policy = VRPolicy(cfg)
    robot_pos = np.array([0.5, 0.0, 0.4])
    robot_quat = R.from_euler("xyz", [np.pi, 0.1, -0.2]).as_quat()
    pose = random_pose(rng)
    now, worst, engaged = 10.0, 0.0, 0
    vr_to_global = robot_origin = vr_origin = None
    for k in range(120):
        now += 0.05
        grip = k >= 1
        step_rot = R.from_rotvec(rng.normal(0, 0.01, 3)).as_matrix()
        pose = pose.copy()
        pose[:3, :3] = step_rot @ pose[:3, :3]
        pose[:3, 3] += rng.normal(0, 0.004, 3)
        trig = float(rng.uniform(0, 1))
        sample = VRSample(poses={"r": pose}, buttons={"RG": grip, "rightTrig": trig}, t_recv=now, seq=k)
        out = policy.step(sample, robot_pos=robot_pos, robot_quat=robot_quat, robot_gripper=-0.5,
                          reference_pos=robot_pos, reference_quat=robot_quat, mode=ControlMode.REAL_TIME,
                          now=now, timestamp=now)
        if k == 1:  # DROID: the grip press freezes the calibration and stores both origins
            vr_to_global = np.linalg.inv(pose)
            m = droid_reorder(cfg.rmat_reorder) @ vr_to_global @ pose
            vr_origin = (cfg.spatial_coeff * m[:3, 3], R.from_matrix(m[:3, :3]).as_quat())
            robot_origin = (robot_pos.copy(), robot_quat.copy())
        if not grip:
            assert not out.engaged
            continue
        ref, _, _ = droid_reference(pose, vr_to_global, cfg, trig, robot_pos, robot_quat, 0.25, robot_origin, vr_origin)
        worst = max(worst, float(np.abs(out.action - ref).max()))
        engaged += out.engaged
        # the arm follows part of the way (a different pose every step)
        robot_pos = robot_pos + 0.3 * np.asarray(out.action[:3]) * 0.075
        robot_quat = (R.from_euler("xyz", 0.3 * np.asarray(out.action[3:6]) * 0.15) * R.from_quat(robot_quat)).as_quat()
    print(f"largest difference from DROID's action over {engaged} engaged steps: {worst:.2e}")
    assert engaged == 119 and worst <= TOL_ACTION
