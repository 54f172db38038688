"""Cartesian control of the simulated arm (headless: sim time runs as fast as the CPU allows)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from frankateach.constants import (
    HOME_JOINTS,
    JOINT_LIMITS_HIGH,
    JOINT_LIMITS_LOW,
    ROBOT_WORKSPACE_MAX,
    ROBOT_WORKSPACE_MIN,
)
from frankateach.messages import FrankaAction
from frankateach.sim.backend import SimBackend, SimBackendError
from frankateach.sim.controller import (
    finger_to_gripper,
    gripper_to_finger,
    quat_wxyz_to_xyzw,
    quat_xyzw_to_wxyz,
    rotation_error,
)
from frankateach.sim.model import build_model

POS_TOL_M = 0.005
ROT_TOL_RAD = 0.05


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return build_model(cameras=False)


@pytest.fixture
def sim(model: mujoco.MjModel) -> SimBackend:
    backend = SimBackend(model)
    yield backend
    backend.close()


def _action(pos: np.ndarray, quat: np.ndarray, gripper: float = -1.0, reset: bool = False) -> FrankaAction:
    return FrankaAction(np.asarray(pos, float), np.asarray(quat, float), gripper, reset, 0.0)


def _angle(q1_xyzw: np.ndarray, q2_xyzw: np.ndarray) -> float:
    return float(2 * np.arccos(np.clip(abs(np.dot(q1_xyzw, q2_xyzw)), 0.0, 1.0)))


def _quat_about_z(angle: float, base_xyzw: np.ndarray) -> np.ndarray:
    rz = np.array([np.cos(angle / 2), 0, 0, np.sin(angle / 2)])
    out = np.empty(4)
    mujoco.mju_mulQuat(out, rz, quat_xyzw_to_wxyz(base_xyzw))
    return quat_wxyz_to_xyzw(out)


def _time_to_reach(sim: SimBackend, pos: np.ndarray, quat: np.ndarray, horizon_s: float) -> float:
    """Sim seconds until the TCP is within tolerance and stays there to the horizon (inf if never)."""
    entered = float("inf")
    t0 = sim.sim_time
    while sim.sim_time - t0 < horizon_s:
        sim.step(5)
        p, q = sim.tcp_pose()
        ok = np.linalg.norm(p - pos) < POS_TOL_M and _angle(q, quat) < ROT_TOL_RAD
        if ok and entered == float("inf"):
            entered = sim.sim_time - t0
        elif not ok:
            entered = float("inf")
    return entered


@pytest.mark.parametrize(
    "offset",
    [(0.1, 0, 0), (-0.1, 0, 0), (0, 0.1, 0), (0, -0.1, 0), (0, 0, 0.1), (0, 0, -0.1)],
)
def test_reaches_a_target_10cm_away_in_under_2s(sim: SimBackend, offset: tuple) -> None:
    home = sim.read_state()
    target = home.pos + np.array(offset)
    sim.apply_action(_action(target, home.quat))
    assert _time_to_reach(sim, target, home.quat, horizon_s=2.5) < 2.0


def test_reaches_a_rotated_target(sim: SimBackend) -> None:
    home = sim.read_state()
    target = home.pos + np.array([0.06, 0.06, -0.05])
    quat = _quat_about_z(0.4, home.quat)
    sim.apply_action(_action(target, quat))
    assert _time_to_reach(sim, target, quat, horizon_s=2.5) < 2.0
    state = sim.read_state()
    assert _angle(state.quat, quat) < ROT_TOL_RAD


def test_target_outside_the_workspace_ends_inside_it(sim: SimBackend) -> None:
    home = sim.read_state()
    sim.apply_action(_action([1.5, -1.0, -0.3], home.quat))
    commanded = sim.commanded_state()
    assert commanded is not None
    np.testing.assert_allclose(commanded.pos, [ROBOT_WORKSPACE_MAX[0], ROBOT_WORKSPACE_MIN[1],
                                               ROBOT_WORKSPACE_MIN[2]])
    sim.run_for(3.0)
    pos = sim.read_state().pos
    assert np.all(pos >= ROBOT_WORKSPACE_MIN - POS_TOL_M) and np.all(pos <= ROBOT_WORKSPACE_MAX + POS_TOL_M)


def test_reset_returns_home_smoothly(sim: SimBackend) -> None:
    home = sim.read_state()
    sim.apply_action(_action(home.pos + [0.1, 0.15, -0.1], _quat_about_z(-0.5, home.quat)))
    sim.run_for(2.0)
    assert np.max(np.abs(sim.joint_positions() - HOME_JOINTS)) > 0.1
    sim.apply_action(_action(np.zeros(3) + 0.3, home.quat, reset=True))
    prev = sim.controller.q_cmd.copy()
    max_step = 0.0
    for _ in range(1500):  # 3 s
        sim.step(1)
        max_step = max(max_step, float(np.max(np.abs(sim.controller.q_cmd - prev))))
        prev = sim.controller.q_cmd.copy()
    assert max_step <= sim.controller.gains.max_joint_speed * sim.control_dt + 1e-9
    np.testing.assert_allclose(sim.joint_positions(), HOME_JOINTS, atol=0.01)
    np.testing.assert_allclose(sim.read_state().pos, home.pos, atol=POS_TOL_M)


def test_joint_limits_and_joint_speed_are_respected(sim: SimBackend) -> None:
    home = sim.read_state()
    extremes = [
        (home.pos, _quat_about_z(-2.9, home.quat)),  # twist that needs joint 7 past its limit
        ([0.75, 0.0, 0.7], home.quat),  # out of reach: stretches the arm
        ([0.75, 0.4, 0.05], home.quat),
        ([0.2, 0.4, 0.05], _quat_about_z(-2.5, home.quat)),
    ]
    limit_dt = sim.controller.gains.max_joint_speed * sim.control_dt + 1e-9
    highest = np.full(7, -np.inf)
    for pos, quat in extremes:
        sim.apply_action(_action(pos, quat))
        prev = sim.controller.q_cmd.copy()
        for _ in range(300):  # 3 s each
            sim.step(5)
            q = sim.joint_positions()
            cmd = sim.controller.q_cmd
            assert np.all(q >= JOINT_LIMITS_LOW - 2e-3) and np.all(q <= JOINT_LIMITS_HIGH + 2e-3), q
            assert np.all(cmd >= JOINT_LIMITS_LOW) and np.all(cmd <= JOINT_LIMITS_HIGH)
            assert np.max(np.abs(cmd - prev)) <= 3 * limit_dt  # 5 physics steps = 3 control steps at most
            prev = cmd.copy()
            highest = np.maximum(highest, q)
    assert JOINT_LIMITS_HIGH[6] - highest[6] < 0.05  # the twist really drove joint 7 to its limit


def test_gripper_mapping_and_measured_gripper(sim: SimBackend) -> None:
    assert gripper_to_finger(-1.0) == pytest.approx(0.04)
    assert gripper_to_finger(1.0) == pytest.approx(0.0)
    assert gripper_to_finger(0.0) == pytest.approx(0.02)
    for g in np.linspace(-1, 1, 9):
        assert finger_to_gripper(gripper_to_finger(g)) == pytest.approx(g)
    assert finger_to_gripper(-0.001) == 1.0 and finger_to_gripper(0.05) == -1.0
    home = sim.read_state()
    assert home.gripper == pytest.approx(-1.0, abs=0.02)
    sim.apply_action(_action(home.pos, home.quat, gripper=1.0))
    sim.run_for(1.5)
    assert sim.read_state().gripper > 0.9  # nothing between the fingers: they close fully
    sim.apply_action(_action(home.pos, home.quat, gripper=-1.0))
    sim.run_for(1.5)
    assert sim.read_state().gripper < -0.9


def test_rotation_error_is_the_axis_angle_between_quaternions() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = rng.uniform(0, np.pi - 1e-3)
        dq = np.r_[np.cos(angle / 2), np.sin(angle / 2) * axis]
        target = np.empty(4)
        mujoco.mju_mulQuat(target, dq, q)
        np.testing.assert_allclose(rotation_error(target, q), angle * axis, atol=1e-9)
        np.testing.assert_allclose(rotation_error(target, -q), angle * axis, atol=1e-9)


def test_state_reports_real_convention_and_continuous_quaternion(sim: SimBackend) -> None:
    state = sim.read_state()
    np.testing.assert_allclose(state.joint_positions, HOME_JOINTS, atol=1e-6)
    assert state.start_teleop
    sim.apply_action(_action(state.pos, _quat_about_z(3.0, state.quat)))
    prev = state.quat
    for _ in range(100):
        sim.step(10)
        q = sim.read_state().quat
        assert np.dot(q, prev) > 0.0  # no sign flips between consecutive states
        prev = q


def test_headless_step_is_refused_while_running_in_real_time(sim: SimBackend) -> None:
    sim.start()
    try:
        with pytest.raises(SimBackendError, match="real-time thread"):
            sim.step(1)
    finally:
        sim.stop()
    t = sim.sim_time
    sim.step(10)
    assert sim.sim_time == pytest.approx(t + 10 * sim.dt)


def test_scripted_grasp_lifts_a_cube(sim: SimBackend) -> None:
    home = sim.read_state()
    cube0 = sim.body_position("red_cube")
    above = np.array([cube0[0], cube0[1], 0.15])
    grasp = np.array([cube0[0], cube0[1], 0.05])
    lifted = np.array([cube0[0], cube0[1], 0.25])
    for pos, gripper, seconds in [
        (above, -1.0, 1.5),  # move above the cube, open
        (grasp, -1.0, 1.5),  # descend around it
        (grasp, 1.0, 1.0),  # close
        (lifted, 1.0, 2.0),  # lift
    ]:
        sim.apply_action(_action(pos, home.quat, gripper))
        sim.run_for(seconds)
    cube = sim.body_position("red_cube")
    assert cube[2] - cube0[2] > 0.05
    assert np.linalg.norm(cube[:2] - sim.read_state().pos[:2]) < 0.03  # it is in the hand
    assert -0.9 < sim.read_state().gripper < 0.5  # fingers stopped on the cube, not closed
