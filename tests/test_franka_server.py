"""The real-robot server (DeoxysBackend + frankateach-real) against a fake of deoxys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from frankateach.client import RobotClient
from frankateach.constants import (
    DEOXYS_STEPS_PER_COMMAND,
    GRIPPER_OPEN,
    HOME_JOINTS,
    ROBOT_WORKSPACE_MAX,
    ROBOT_WORKSPACE_MIN,
)
from frankateach.errors import FrankaTeachError, HardwareUnavailableError, RobotServerError
from frankateach.franka_server import (
    DEOXYS_INSTALL_HINT,
    DeoxysBackend,
    load_deoxys,
    main,
    osc_delta_action,
    width_to_gripper,
)
from frankateach.messages import FrankaAction, MsgpackCodec, PickleCodec
from frankateach.network import Subscriber
from tests.fakes import fake_deoxys, free_ports, served
from tests.fakes.fake_deoxys import FakeFrankaInterface

REPO = Path(__file__).resolve().parents[1]
DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # xyzw: hand pointing down


@pytest.fixture
def deoxys(monkeypatch, tmp_path):
    """Installs the fake deoxys with a config folder holding `charmander.yml`."""
    config_root = tmp_path / "deoxys_config"
    config_root.mkdir()
    (config_root / "charmander.yml").write_text("PC: {NAME: test}\nNUC: {IP: 127.0.0.1}\n")
    fake_deoxys.install(monkeypatch, config_root)
    yield config_root
    fake_deoxys.reset_fake()


def target(pos, quat=DOWN, gripper=0.0, reset=False) -> FrankaAction:
    return FrankaAction(
        pos=np.array(pos, dtype=float),
        quat=np.array(quat, dtype=float),
        gripper=gripper,
        reset=reset,
        timestamp=time.time(),
    )


def angle_between(q1, q2) -> float:
    return float((Rotation.from_quat(q1) * Rotation.from_quat(q2).inv()).magnitude())


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def test_osc_delta_action_scales_and_clips():
    cur_q = Rotation.from_euler("z", 0.0).as_quat()
    tgt_q = Rotation.from_euler("z", 0.3).as_quat()
    a = osc_delta_action([0.5, 0, 0.3], cur_q, [0.51, 0.5, 0.3], tgt_q, 1.0, 0.05, 1.0)
    np.testing.assert_allclose(a[:3], [0.2, 1.0, 0.0], atol=1e-12)  # 1 cm / 5 cm; 0.5 m clipped
    np.testing.assert_allclose(a[3:6], [0.0, 0.0, 0.3], atol=1e-12)  # base-frame axis-angle
    assert a[6] == 1.0 and a.shape == (7,)
    turned = Rotation.from_euler("x", 2.0).as_quat()
    big = osc_delta_action([0, 0, 0], cur_q, [0, 0, 0], turned, -1.0, 0.05, 0.5)
    np.testing.assert_allclose(big[3:6], [1.0, 0.0, 0.0])  # 2 rad / 0.5 clipped to 1


def test_width_to_gripper_maps_opening_to_protocol_range():
    assert width_to_gripper(0.08) == -1.0
    assert width_to_gripper(0.0) == 1.0
    assert width_to_gripper(0.04) == pytest.approx(0.0)
    assert width_to_gripper(0.2) == -1.0 and width_to_gripper(-0.01) == 1.0


# --------------------------------------------------------------------------------------------
# Missing deoxys / config
# --------------------------------------------------------------------------------------------


def test_missing_deoxys_raises_hardware_unavailable_with_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "deoxys", None)  # makes `import deoxys` fail
    with pytest.raises(HardwareUnavailableError) as err:
        load_deoxys()
    text = str(err.value)
    assert "UT-Austin-RPL/deoxys_control" in text and "pip install -e deoxys" in text
    assert "not on PyPI" in text
    with pytest.raises(HardwareUnavailableError, match="deoxys_control"):
        DeoxysBackend("charmander.yml")


def test_main_without_deoxys_exits_2_with_the_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "deoxys", None)
    assert main(["--config", "x.yml", "--duration", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "pip install -e deoxys" in err and "frankateach-real:" in err


def test_missing_config_is_a_clear_error(deoxys):
    with pytest.raises(HardwareUnavailableError, match="'nope.yml' not found.*--config"):
        DeoxysBackend("nope.yml", state_timeout_s=0.1)


def test_no_robot_state_times_out_and_releases_the_interface(deoxys):
    FakeFrankaInterface.has_state = False
    with pytest.raises(HardwareUnavailableError, match="no robot state from deoxys within 0.2 s"):
        DeoxysBackend("charmander.yml", state_timeout_s=0.2)
    assert FakeFrankaInterface.instances[-1].closed


# --------------------------------------------------------------------------------------------
# Backend against the fake arm
# --------------------------------------------------------------------------------------------


def test_backend_uses_deoxys_as_franka_teach_does(deoxys):
    backend = DeoxysBackend("charmander.yml")  # resolved inside deoxys' config folder
    arm = FakeFrankaInterface.instances[-1]
    assert arm.general_cfg_file == str(deoxys / "charmander.yml")
    assert arm.use_visualizer is False and arm.control_freq == 20.0
    s = backend.read_state()
    np.testing.assert_allclose(s.pos, fake_deoxys.START_POS)
    np.testing.assert_allclose(s.quat, fake_deoxys.START_QUAT)
    np.testing.assert_allclose(s.joint_positions, fake_deoxys.START_JOINTS)
    assert s.gripper == -1.0 and s.start_teleop  # fully open fingers
    assert backend.commanded_state() is None

    goal = [0.52, 0.12, 0.28]
    backend.apply_action(target(goal, gripper=1.0))
    assert len(arm.calls) == DEOXYS_STEPS_PER_COMMAND
    for controller, act, cfg in arm.calls:
        assert controller == "OSC_POSE" and act.shape == (7,)
        assert np.all(np.abs(act[:6]) <= 1.0) and act[6] == 1.0
        assert cfg["controller_type"] == "OSC_POSE"
    assert backend.read_state().gripper == 1.0  # grasped: fingers closed
    commanded = backend.commanded_state()
    np.testing.assert_array_equal(commanded.pos, goal)
    backend.close()
    assert arm.closed


def test_actions_move_the_arm_toward_the_target(deoxys):
    backend = DeoxysBackend("charmander.yml")
    goal_pos, goal_quat = np.array([0.45, -0.05, 0.25]), DOWN
    errors = []
    for _ in range(6):
        backend.apply_action(target(goal_pos, goal_quat))
        s = backend.read_state()
        errors.append((np.linalg.norm(s.pos - goal_pos), angle_between(s.quat, goal_quat)))
    pos_err, rot_err = np.array(errors).T
    assert np.all(np.diff(pos_err) < 0) and np.all(np.diff(rot_err) < 0)  # monotone approach
    assert pos_err[-1] < 1e-3 and rot_err[-1] < 1e-3


def test_far_target_is_approached_with_bounded_steps(deoxys):
    backend = DeoxysBackend("charmander.yml")
    arm = FakeFrankaInterface.instances[-1]
    start = backend.read_state().pos
    backend.apply_action(target([0.5, -0.3, 0.3]))  # 40 cm away: every step is clipped
    step = np.linalg.norm(backend.read_state().pos - start)
    assert all(np.max(np.abs(a[:3])) == pytest.approx(1.0) for _, a, _ in arm.calls)
    # 3 clipped steps of at most 0.05 m · gain 0.5 each (per axis).
    assert 0.0 < step <= DEOXYS_STEPS_PER_COMMAND * 0.05 * 0.5 * np.sqrt(3) + 1e-9


def test_reset_drives_joints_home_with_joint_position_control(deoxys):
    backend = DeoxysBackend("charmander.yml")
    arm = FakeFrankaInterface.instances[-1]
    backend.apply_action(target([0.5, 0.0, 0.3], gripper=1.0))
    arm.calls.clear()
    backend.apply_action(target([0.0, 0.0, 0.0], reset=True))
    kinds = {c for c, _, _ in arm.calls}
    assert kinds == {"JOINT_POSITION"}
    for _, act, cfg in arm.calls:
        np.testing.assert_array_equal(act[:7], HOME_JOINTS)
        assert act[7] == GRIPPER_OPEN and cfg["controller_type"] == "JOINT_POSITION"
    s = backend.read_state()
    assert np.max(np.abs(s.joint_positions - HOME_JOINTS)) < 1e-3
    assert s.gripper == -1.0
    np.testing.assert_array_equal(backend.commanded_state().joint_positions, HOME_JOINTS)


def test_reset_that_cannot_converge_reports_an_error(deoxys):
    backend = DeoxysBackend("charmander.yml", reset_timeout_s=0.5)
    FakeFrankaInterface.tracking_gain = 0.0  # joints never move (e.g. the arm is blocked)
    with pytest.raises(FrankaTeachError, match="joint reset did not reach HOME_JOINTS"):
        backend.apply_action(target([0.5, 0.0, 0.3], reset=True))


# --------------------------------------------------------------------------------------------
# Served over real sockets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [MsgpackCodec(), PickleCodec()], ids=["msgpack", "pickle"])
def test_served_backend_answers_state_and_actions_and_clamps(deoxys, codec):
    backend = DeoxysBackend("charmander.yml")
    arm = FakeFrankaInterface.instances[-1]
    with served(backend, codec=codec) as server:
        client = RobotClient(port=server.control_port, codec=codec, timeout_s=5.0)
        sub = Subscriber("127.0.0.1", server.state_port)
        try:
            s0 = client.get_state()
            np.testing.assert_allclose(s0.pos, fake_deoxys.START_POS)
            goal = np.array([0.5, 0.05, 0.3])
            for _ in range(5):
                s = client.send(target(goal))
            assert np.linalg.norm(s.pos - goal) < np.linalg.norm(s0.pos - goal) / 10
            # Outside the workspace: the arm is steered toward the clamped point instead.
            client.send(target([0.5, 0.05, -0.4]))
            np.testing.assert_allclose(
                backend.commanded_state().pos,
                np.clip([0.5, 0.05, -0.4], ROBOT_WORKSPACE_MIN, ROBOT_WORKSPACE_MAX),
            )
            assert arm.calls[-1][1][2] < 0  # still moving down, toward z = 0.05
            assert client.get_state().pos[2] >= ROBOT_WORKSPACE_MIN[2] - 1e-9
            # Invalid request: error reply, arm untouched.
            n_calls = len(arm.calls)
            with pytest.raises(RobotServerError, match="unit quaternion"):
                client.send(target(goal, quat=[0.0, 0.0, 0.0, 2.0]))
            assert len(arm.calls) == n_calls
            # Reset through the protocol.
            client.send(target(goal, reset=True))
            assert np.max(np.abs(client.get_state().joint_positions - HOME_JOINTS)) < 1e-3
            assert sub.recv(2.0) is not None  # the 100 Hz state stream runs too
        finally:
            sub.close()
            client.close()
    backend.close()


def test_paced_controller_makes_an_action_take_several_control_periods(deoxys):
    FakeFrankaInterface.paced = True  # 20 Hz pacing, as deoxys' control() does
    backend = DeoxysBackend("charmander.yml")
    with served(backend) as server:
        client = RobotClient(port=server.control_port, timeout_s=5.0)
        try:
            client.send(target([0.5, 0.1, 0.3]))  # the first control() call is not paced
            for _ in range(3):
                client.send(target([0.5, 0.1, 0.3]))
            last, mean, _ = client.latency_stats()
            # 3 control() calls 50 ms apart per command: at least ~100 ms per round trip.
            assert last >= (DEOXYS_STEPS_PER_COMMAND - 1) * 0.05 * 0.95
        finally:
            client.close()
    backend.close()


def test_main_serves_until_duration_with_the_fake(deoxys, capsys):
    control, state, commanded = free_ports(3)
    argv = ["--config", "charmander.yml", "--duration", "1.5", "--log-level", "WARNING",
            "--control-port", str(control), "--state-port", str(state),
            "--commanded-port", str(commanded)]
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(main(argv)))
    runner.start()
    client = RobotClient(port=control, timeout_s=1.0)
    try:
        for _ in range(20):  # the server needs a moment to bind
            try:
                s = client.get_state()
                break
            except FrankaTeachError:
                continue
        else:
            pytest.fail("frankateach-real never answered")
        np.testing.assert_allclose(s.pos, fake_deoxys.START_POS)
    finally:
        client.close()
        runner.join(10.0)
    assert result == [0]
    out = capsys.readouterr().out
    assert "serving charmander.yml on 127.0.0.1" in out and "stopped (" in out
    assert FakeFrankaInterface.instances[-1].closed


@pytest.mark.slow
def test_console_script_runs_as_a_subprocess_and_stops_on_sigterm(tmp_path):
    config_root = tmp_path / "cfg"
    config_root.mkdir()
    (config_root / "robot.yml").write_text("NUC: {IP: 127.0.0.1}\n")
    fake_deoxys.write_package(tmp_path / "site", config_root)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(REPO)]))
    control, state, commanded = free_ports(3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "frankateach.franka_server", "--config", "robot.yml",
         "--control-port", str(control), "--state-port", str(state),
         "--commanded-port", str(commanded), "--codec", "pickle"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    client = RobotClient(port=control, codec=PickleCodec(), timeout_s=1.0)
    try:
        deadline = time.monotonic() + 30.0
        while True:
            try:
                reply = client.send(target([0.5, 0.1, 0.3]))
                break
            except FrankaTeachError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "server did not come up"
        assert reply.start_teleop
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped (" in out


def test_console_script_without_deoxys_fails_with_the_hint(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "frankateach.franka_server", "--duration", "0.1"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert DEOXYS_INSTALL_HINT in proc.stderr
