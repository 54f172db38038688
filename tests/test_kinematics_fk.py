"""`robot_formats.kinematics` against the simulator's MuJoCo model: every link and the TCP to 1e-6."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from frankateach.constants import HOME_JOINTS, JOINT_LIMITS_HIGH, JOINT_LIMITS_LOW
from frankateach.sim.model import ARM_BODY_NAMES, FINGER_BODY_NAMES, SimIndex, build_model
from robot_formats import kinematics as K

_MJ_BODIES = dict(zip(K.LINK_NAMES, ("panda0_link0", *ARM_BODY_NAMES, *FINGER_BODY_NAMES)))


@pytest.fixture(scope="module")
def sim() -> tuple[mujoco.MjModel, mujoco.MjData, SimIndex]:
    model = build_model(cameras=False)
    return model, mujoco.MjData(model), SimIndex.from_model(model)


def _mujoco_poses(sim, q: np.ndarray, finger: float) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple]:
    model, data, idx = sim
    data.qpos[idx.arm_qpos] = q
    data.qpos[idx.finger_qpos] = finger
    mujoco.mj_kinematics(model, data)
    bodies = {}
    for name, body in _MJ_BODIES.items():
        bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
        bodies[name] = (data.xpos[bid].copy(), data.xmat[bid].reshape(3, 3).copy())
    tcp = (data.site_xpos[idx.tcp_site].copy(), data.site_xmat[idx.tcp_site].reshape(3, 3).copy())
    return bodies, tcp


def _joint_samples(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = JOINT_LIMITS_LOW.astype(float), JOINT_LIMITS_HIGH.astype(float)
    out = [HOME_JOINTS.astype(float), np.zeros(7), lo, hi]
    out += [rng.uniform(lo, hi) for _ in range(n)]
    out += [rng.uniform(-2 * np.pi, 2 * np.pi, 7) for _ in range(n // 4)]  # beyond the limits too
    return out


def test_every_link_and_the_tcp_match_mujoco_over_random_joints(sim) -> None:
    rng = np.random.default_rng(7)
    for q in _joint_samples(300, seed=1):
        finger = float(rng.uniform(0.0, K.FINGER_OPEN_M))
        bodies, (tcp_pos, tcp_rot) = _mujoco_poses(sim, q, finger)
        ours = K.link_poses(q, finger_m=finger)
        assert set(ours) == set(K.LINK_NAMES)
        for name, (pos, rot) in bodies.items():
            np.testing.assert_allclose(ours[name].pos, pos, atol=1e-6, err_msg=name)
            np.testing.assert_allclose(ours[name].rot, rot, atol=1e-6, err_msg=name)
        tcp = K.tcp_pose(q)
        np.testing.assert_allclose(tcp.pos, tcp_pos, atol=1e-6)
        np.testing.assert_allclose(tcp.rot, tcp_rot, atol=1e-6)


def test_forward_gives_the_tcp_quaternion_with_w_at_least_zero(sim) -> None:
    model, data, idx = sim
    for q in _joint_samples(50, seed=2):
        _, (tcp_pos, tcp_rot) = _mujoco_poses(sim, q, 0.04)
        pos, quat = K.forward(q)
        want = np.empty(4)
        mujoco.mju_mat2Quat(want, tcp_rot.reshape(9))  # wxyz
        want = np.array([want[1], want[2], want[3], want[0]])
        want = want if want[3] >= 0 else -want
        assert quat[3] >= 0.0
        np.testing.assert_allclose(pos, tcp_pos, atol=1e-6)
        np.testing.assert_allclose(quat, want, atol=1e-6)


def test_pose_matrix_is_the_homogeneous_transform() -> None:
    pose = K.tcp_pose(HOME_JOINTS)
    m = pose.matrix()
    np.testing.assert_array_equal(m[:3, :3], pose.rot)
    np.testing.assert_array_equal(m[:3, 3], pose.pos)
    np.testing.assert_array_equal(m[3], [0, 0, 0, 1])


@pytest.mark.parametrize("q", [[0.0] * 6, [0.0] * 8, [0.0] * 6 + [np.nan], [0.0] * 6 + [np.inf]])
def test_bad_joint_vectors_are_refused_with_what_came(q) -> None:
    with pytest.raises(ValueError, match="7 finite joint angles"):
        K.tcp_pose(q)
    with pytest.raises(ValueError, match="7 finite joint angles"):
        K.link_poses(q)


def test_finger_opening_is_clipped_to_the_travel(sim) -> None:
    wide = K.link_poses(HOME_JOINTS, finger_m=1.0)
    open_ = K.link_poses(HOME_JOINTS, finger_m=K.FINGER_OPEN_M)
    np.testing.assert_array_equal(wide["left_finger"].pos, open_["left_finger"].pos)
    closed = K.link_poses(HOME_JOINTS, finger_m=0.0)
    np.testing.assert_allclose(closed["left_finger"].pos, closed["right_finger"].pos, atol=1e-12)
    gap = np.linalg.norm(open_["left_finger"].pos - open_["right_finger"].pos)
    assert gap == pytest.approx(2 * K.FINGER_OPEN_M)
