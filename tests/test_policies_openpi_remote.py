"""openpi-remote against a fake openpi policy server on loopback (openpi's wire format)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from robot_formats.action_space import action_to_target
from robot_formats.droid import MAX_JOINT_DELTA_RAD, resize_with_pad
from robot_formats.kinematics import PandaKinematics
from robot_formats.robot_state import RobotStateIn, pos_quat_to_pose
from tests.fakes.fake_openpi_server import FakeOpenPIServer
from tests.fakes.net import free_port
from vla_server.models import ModelSpec
from vla_server.policies.base import Observation
from vla_server.policies.factory import build_policy
from vla_server.policies.openpi_remote import (
    OpenPIRemoteError,
    OpenPIRemoteParams,
    OpenPIRemotePolicy,
)
from vla_server.policies.params import PolicyParamsError

Q_GOAL = np.array([0.3, 0.1, -0.1, -2.2, 0.1, 2.5, 0.6])  # the fake policy's joint target, rad


def droid_like(obs: dict[str, Any]) -> dict[str, Any]:
    """A DROID-shaped policy: 10 joint-velocity rows toward Q_GOAL, gripper closes after 5 rows."""
    q = np.asarray(obs["observation/joint_position"], dtype=np.float64).copy()
    rows = []
    for k in range(10):
        v = np.clip((Q_GOAL - q) / MAX_JOINT_DELTA_RAD, -0.3, 0.3)
        q = q + v * MAX_JOINT_DELTA_RAD
        rows.append(np.r_[v, 1.0 if k >= 5 else 0.0])
    return {"actions": np.array(rows, dtype=np.float32)}


@pytest.fixture(scope="module")
def kin() -> PandaKinematics:
    return PandaKinematics()


@pytest.fixture
def server() -> Iterator[FakeOpenPIServer]:
    with FakeOpenPIServer(policy=droid_like) as srv:
        yield srv


def _policy(srv: FakeOpenPIServer, kin: PandaKinematics, **params: Any) -> OpenPIRemotePolicy:
    p = OpenPIRemotePolicy(OpenPIRemoteParams(url=f"ws://127.0.0.1:{srv.port}", **params), kinematics=kin)
    return p


def _obs(kin: PandaKinematics, q: np.ndarray | None = None, gripper: float | None = -1.0, session: str = "s",
         wrist: np.ndarray | None = None, state: bool = True) -> Observation:
    pos, quat = kin.forward(kin.home if q is None else q)
    img = np.zeros((240, 320, 3), np.uint8)
    img[100:140, 150:170] = (200, 30, 30)
    rs = RobotStateIn(pose=pos_quat_to_pose(pos, quat), gripper=gripper) if state else None
    return Observation(image=img, instruction="pick up the red cube", robot_state=rs, session=session,
                       wrist_image=wrist)


def test_sends_droid_observation_keys(server: FakeOpenPIServer, kin: PandaKinematics) -> None:
    p = _policy(server, kin)
    p.load()
    assert p.metadata == server.metadata
    q_true = kin.clip(kin.home + np.array([0.1, -0.1, 0.05, 0.1, 0.0, -0.1, 0.2]))
    wrist = np.full((120, 160, 3), 77, np.uint8)
    obs = _obs(kin, q_true, gripper=1.0, wrist=wrist)
    p.infer(obs)
    req = server.requests[-1]
    np.testing.assert_array_equal(req["observation/exterior_image_1_left"], resize_with_pad(obs.image, 224, 224))
    np.testing.assert_array_equal(req["observation/wrist_image_left"], resize_with_pad(wrist, 224, 224))
    assert req["observation/gripper_position"].tolist() == [1.0]
    assert req["prompt"] == "pick up the red cube"
    # The joints sent put the TCP where the client said it is.
    joints = req["observation/joint_position"]
    assert joints.shape == (7,) and joints.dtype == np.float64
    pos, quat = kin.forward(joints)
    want_pos, want_quat = kin.forward(q_true)
    assert np.linalg.norm(pos - want_pos) < 1e-3 and abs(float(np.dot(quat, want_quat))) > 1 - 1e-6
    p.infer(_obs(kin, wrist=None))
    assert not server.requests[-1]["observation/wrist_image_left"].any()  # no wrist frame: black
    p.close()


def test_actions_follow_the_servers_joint_velocities(server: FakeOpenPIServer, kin: PandaKinematics) -> None:
    p = _policy(server, kin)
    actions = p.infer(_obs(kin))
    assert actions.shape == (10, 7) and p.info().action_horizon == 10
    assert np.all(np.abs(actions) <= 1.0)
    np.testing.assert_array_equal(actions[:, 6], [-1] * 5 + [1] * 5)
    # Our actions, applied in turn from the reported pose, trace the fake policy's joint path.
    q = np.asarray(server.requests[-1]["observation/joint_position"])
    pos, quat = kin.forward(q)
    chunk = droid_like({"observation/joint_position": q})["actions"].astype(np.float64)
    for k, a in enumerate(actions):
        pos, quat, _ = action_to_target(pos, quat, a)
        q = kin.clip(q + chunk[k, :7] * MAX_JOINT_DELTA_RAD)
        want, _ = kin.forward(q)
        assert np.linalg.norm(pos - want) < 1e-4
    assert p.last_server_timing.get("infer_ms", -1) >= 0
    p.close()


def test_without_state_the_sessions_last_joints_are_sent(server: FakeOpenPIServer, kin: PandaKinematics) -> None:
    p = _policy(server, kin)
    p.infer(_obs(kin, state=False, session="a"))
    np.testing.assert_allclose(server.requests[-1]["observation/joint_position"], kin.home)
    q_true = kin.clip(kin.home + 0.2)
    p.infer(_obs(kin, q_true, session="a"))
    sent = server.requests[-1]["observation/joint_position"]
    p.infer(_obs(kin, state=False, session="a", gripper=None))
    np.testing.assert_array_equal(server.requests[-1]["observation/joint_position"], sent)
    # The last commanded gripper (row 0: open) is what is reported without a state.
    assert server.requests[-1]["observation/gripper_position"].tolist() == [0.0]
    p.end_session("a")
    p.infer(_obs(kin, state=False, session="a"))
    np.testing.assert_allclose(server.requests[-1]["observation/joint_position"], kin.home)
    p.close()


def test_api_key_header(kin: PandaKinematics, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenPIServer(policy=droid_like, api_key="sekret") as srv:
        with pytest.raises(OpenPIRemoteError, match="HTTP 401.*API key"):
            _policy(srv, kin).load()
        with pytest.raises(OpenPIRemoteError, match="HTTP 401"):
            _policy(srv, kin, api_key="wrong").load()
        assert _policy(srv, kin, api_key="sekret").infer(_obs(kin)).shape == (10, 7)
        monkeypatch.setenv("OPENPI_TEST_KEY", "sekret")
        assert _policy(srv, kin, api_key_env="OPENPI_TEST_KEY").infer(_obs(kin)).shape == (10, 7)
        monkeypatch.delenv("OPENPI_TEST_KEY")
        with pytest.raises(OpenPIRemoteError, match="OPENPI_TEST_KEY"):
            _policy(srv, kin, api_key_env="OPENPI_TEST_KEY").load()


def test_server_error_then_recovery(server: FakeOpenPIServer, kin: PandaKinematics) -> None:
    p = _policy(server, kin)
    p.infer(_obs(kin))
    server.fail_next("model exploded")
    with pytest.raises(OpenPIRemoteError, match="model exploded"):
        p.infer(_obs(kin))
    assert p.infer(_obs(kin)).shape == (10, 7)  # a fresh connection
    assert server.connections == 2
    p.close()


def test_a_dropped_connection_is_reopened_once(server: FakeOpenPIServer, kin: PandaKinematics) -> None:
    p = _policy(server, kin)
    p.infer(_obs(kin))
    server.close_connections()
    assert p.infer(_obs(kin)).shape == (10, 7)
    assert server.connections == 2
    p.close()


def test_slow_server_times_out_and_the_late_reply_is_not_reused(kin: PandaKinematics) -> None:
    with FakeOpenPIServer(policy=droid_like, latency_s=0.6) as srv:
        p = _policy(srv, kin, infer_timeout_s=0.2)
        p.load()
        with pytest.raises(OpenPIRemoteError, match="did not answer within 0.2 s"):
            p.infer(_obs(kin))
        srv.latency_s = 0.0
        assert p.infer(_obs(kin, session="later")).shape == (10, 7)
        assert srv.connections == 2
        p.close()


def test_unreachable_server(kin: PandaKinematics) -> None:
    port = free_port()
    p = OpenPIRemotePolicy(OpenPIRemoteParams(url=f"ws://127.0.0.1:{port}", connect_timeout_s=2.0), kinematics=kin)
    with pytest.raises(OpenPIRemoteError, match=f"cannot connect to the openpi server ws://127.0.0.1:{port}"):
        p.load()


@pytest.mark.parametrize(("reply", "message"), [
    ({"foo": 1}, "expected a map with 'actions'"),
    ({"actions": np.zeros((10, 7), np.float32)}, r"shape \(H, 8\)"),
    ({"actions": np.full((10, 8), np.inf, np.float32)}, "non-finite"),
])
def test_unusable_replies(kin: PandaKinematics, reply: dict[str, Any], message: str) -> None:
    with FakeOpenPIServer(policy=lambda obs: reply) as srv, pytest.raises(OpenPIRemoteError, match=message):
        _policy(srv, kin).infer(_obs(kin))


def test_params_are_checked() -> None:
    with pytest.raises(PolicyParamsError, match="url"):
        build_policy(ModelSpec(id="pi", backend="openpi-remote"))
    with pytest.raises(PolicyParamsError, match="url"):
        build_policy(ModelSpec(id="pi", backend="openpi-remote", params={"url": "http://x:8000"}))
    with pytest.raises(PolicyParamsError, match="infer_timeout_s"):
        build_policy(ModelSpec(id="pi", backend="openpi-remote", params={"url": "ws://x:1", "infer_timeout_s": 0}))
