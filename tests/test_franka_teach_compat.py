"""Compatibility with unmodified NYU Franka-Teach (and Labelbox's fork) code.

Two kinds of evidence, both from a stand-in Franka-Teach installation (`tests.franka_teach_peer`)
running in its own interpreter with *their* record classes:

* byte fixtures: the pickles their code writes (operator's reset, actions, server states, camera
  frames), decoded by our codecs;
* a loopback: their client flow (operator's first message, get_state, a refused command,
  topic-filtered state feeds, the camera subscriber) against our server in pickle mode.

And, for numpy-1.x peers: every pickle we write names only ``numpy.array`` and the records,
never ``numpy._core`` (checked on the pickle's own opcodes).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from frankateach.camera_format import CameraDecoder, encode_franka_teach_frame
from frankateach.errors import ProtocolError, RobotServerError
from frankateach.messages import FrankaAction, FrankaState, PickleCodec
from frankateach.validation import validate_action
from tests.fakes import HOME_POS, TargetBackend, served
from tests.franka_teach_peer import (
    CLIENT_SCRIPT,
    FIXTURES_SCRIPT,
    install_peer,
    run_peer,
)

HOST = "127.0.0.1"
OUR_GLOBALS = {"numpy.array", "frankateach.messages.FrankaState", "frankateach.messages.FrankaAction"}


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("franka_teach")
    return {flavour: install_peer(root, flavour) for flavour in ("nyu", "labelbox")}


@pytest.fixture(scope="module")
def fixtures(peers: dict[str, Path]) -> dict[str, dict[str, bytes]]:
    return {
        flavour: {k: bytes.fromhex(v) for k, v in run_peer(path, FIXTURES_SCRIPT).items()}
        for flavour, path in peers.items()
    }


# --- their bytes, our decoders ----------------------------------------------------------------


def test_their_first_message_a_reset_with_a_zero_quaternion_is_accepted(fixtures) -> None:
    for flavour in ("nyu", "labelbox"):
        a = PickleCodec().decode_request(fixtures[flavour]["reset_action"])
        assert isinstance(a, FrankaAction) and a.reset is True and a.gripper == -1.0
        assert a.timestamp == 1700000000.25
        # The ignored pose is replaced by a neutral, valid one.
        assert a.pos.tolist() == [0.0, 0.0, 0.0] and a.quat.tolist() == [0.0, 0.0, 0.0, 1.0]


def test_a_non_reset_action_with_a_zero_quaternion_is_still_refused() -> None:
    with pytest.raises(ProtocolError, match="'quat': expected a unit quaternion"):
        validate_action({"pos": [0.0] * 3, "quat": [0.0] * 4, "gripper": -1, "reset": False, "timestamp": 1.0})


def test_their_actions_and_states_decode(fixtures) -> None:
    codec = PickleCodec()
    for flavour in ("nyu", "labelbox"):
        a = codec.decode_request(fixtures[flavour]["action"])
        np.testing.assert_allclose(a.pos, [0.45, 0.03, 0.3], rtol=1e-6)
        assert a.reset is False and a.gripper == 1.0
        s = codec.decode_reply(fixtures[flavour]["state"])
        np.testing.assert_allclose(s.pos, [0.457632, 0.0321814, 0.2653815], rtol=1e-6)
        assert s.gripper == -1.0 and s.start_teleop is False
        # Their state has no joint positions: missing (NaN, flagged), never zeros.
        assert not s.has_joint_positions and np.isnan(s.joint_positions).all()


def test_labelbox_joint_positions_are_kept(fixtures) -> None:
    s = PickleCodec().decode_reply(fixtures["labelbox"]["state_with_joints"])
    assert s.has_joint_positions
    np.testing.assert_allclose(s.joint_positions, np.linspace(-0.5, 0.5, 7))


def test_labelbox_joint_space_commands_are_refused_with_a_clear_error() -> None:
    fields = {"pos": [0.4, 0, 0.3], "quat": [0, 0, 0, 1], "gripper": 0, "reset": False, "timestamp": 1.0}
    assert validate_action({**fields, "joint_positions": None, "control_mode": "CARTESIAN"}).reset is False
    with pytest.raises(ProtocolError, match="control_mode': only 'CARTESIAN' is served, got 'JOINT_POSITION'"):
        validate_action({**fields, "joint_positions": [0.0] * 7, "control_mode": "JOINT_POSITION"})


def test_numpy_1_pickles_of_their_state_decode(fixtures) -> None:
    # numpy 1.x names its internals numpy.core.*; protocol 2 writes them as text, so the numpy-1
    # form of the same pickle is a plain substitution.
    numpy2 = fixtures["nyu"]["state_protocol2"]
    numpy1 = numpy2.replace(b"numpy._core.", b"numpy.core.")
    assert numpy1 != numpy2 and b"numpy.core.multiarray\n_reconstruct" in numpy1
    s = PickleCodec().decode_reply(numpy1)
    np.testing.assert_allclose(s.pos, [0.457632, 0.0321814, 0.2653815], rtol=1e-6)


def test_their_camera_frames_decode(fixtures) -> None:
    fx = fixtures["nyu"]
    decoder = CameraDecoder(2)
    first = decoder.decode(fx["camera"])
    second = decoder.decode(fx["camera_realsense_ms"])  # RealSense stamps milliseconds
    assert first is not None and second is not None
    assert (first.camera_id, first.name, first.seq, first.width, first.height) == (2, "cam_2", 0, 64, 48)
    assert first.jpeg.startswith(b"\xff\xd8") and first.timestamp == 1700000002.125
    assert second.seq == 1 and second.timestamp == pytest.approx(1700000002.125)
    assert decoder.decode(fx["intrinsics"]) is None and decoder.skipped == 1


@pytest.mark.parametrize(
    "payload, words",
    [
        (b"rgb_image " + pickle.dumps({"timestamp": 1.0, "rgb_image": b"!!"}), "not base64"),
        (b"rgb_image " + pickle.dumps({"timestamp": 1.0, "rgb_image": b"aGVsbG8="}), "not a readable JPEG"),
        (b"rgb_image " + pickle.dumps({"timestamp": 1.0}), "missing ['rgb_image']"),
        (b"rgb_image " + pickle.dumps([1, 2]), "expected a dict"),
        (b"rgb_image " + pickle.dumps(print), "refusing to load builtins.print"),
        (b"rgb_image garbage", "not a valid pickle"),
    ],
)
def test_bad_franka_teach_camera_frames_raise_protocol_errors(payload: bytes, words: str) -> None:
    with pytest.raises(ProtocolError) as err:
        CameraDecoder(0).decode(payload)
    assert words in str(err.value)


# --- our bytes: only names every numpy can resolve ---------------------------------------------


class _GlobalRecorder(pickle.Unpickler):
    """Loads a pickle with every global replaced by an inert stand-in, recording the names."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.names: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        self.names.append(f"{module}.{name}")

        class Inert:
            def __new__(cls, *args: Any, **kwargs: Any) -> Any:
                return object.__new__(cls)

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                pass

            def __setstate__(self, state: Any) -> None:
                pass

        return Inert


def pickle_globals(data: bytes) -> set[str]:
    """The module.name of every global a pickle references (read from its opcodes)."""
    start = data.index(b"\x80")  # after a topic prefix, if any
    recorder = _GlobalRecorder(data[start:])
    recorder.load()
    return set(recorder.names)


def _state(joints: bool = True) -> FrankaState:
    return FrankaState(
        pos=np.array([0.5, 0.0, 0.2]), quat=np.array([0.0, 0.0, 0.0, 1.0]), gripper=np.float32(0.25),
        timestamp=99.0, start_teleop=True,
        **({"joint_positions": np.linspace(-1, 1, 7)} if joints else {}),
    )


def test_every_pickle_we_write_names_only_numpy_array_and_the_records() -> None:
    codec = PickleCodec()
    action = FrankaAction(pos=np.array([0.4, 0.0, 0.3], np.float32), quat=np.array([0, 0, 0, 1.0]),
                          gripper=1.0, reset=False, timestamp=5.0)
    payloads = {
        "state reply": codec.encode(_state()),
        "state without joints": codec.encode(_state(joints=False)),
        "error reply": codec.encode_error("bad quaternion", _state()),
        "action": codec.encode(action),
        "state feed": codec.encode_state_feed(_state()),
        "commanded feed": codec.encode_commanded_feed(_state()),
        "camera frame": encode_franka_teach_frame(b"\xff\xd8jpeg", 12.5),
    }
    for what, data in payloads.items():
        names = pickle_globals(data)
        assert names <= OUR_GLOBALS, f"{what}: {names - OUR_GLOBALS}"
        assert b"_core" not in data and b"numpy.core" not in data, what
    assert pickle_globals(payloads["state reply"]) == {"numpy.array", "frankateach.messages.FrankaState"}
    assert pickle_globals(payloads["camera frame"]) == set()  # a plain dict of float and bytes


def test_our_pickles_round_trip_through_our_decoder() -> None:
    codec = PickleCodec()
    s = codec.decode_reply(codec.encode(_state()))
    assert s.has_joint_positions and s.gripper == 0.25
    missing = codec.decode_reply(codec.encode(_state(joints=False)))
    assert not missing.has_joint_positions
    with pytest.raises(RobotServerError, match="bad quaternion"):
        codec.decode_reply(codec.encode_error("bad quaternion", _state()))
    assert codec.decode_state_feed(codec.encode_state_feed(_state())).start_teleop is True
    cmd = codec.decode_commanded_feed(codec.encode_commanded_feed(_state()))
    np.testing.assert_array_equal(cmd.pos, [0.5, 0.0, 0.2])
    with pytest.raises(ProtocolError, match="topic b'robot_state '"):
        codec.decode_state_feed(codec.encode(_state()))


# --- their client flow against our server ------------------------------------------------------


def _check_client_flow(out: dict, peer: Path, home: list[float], cam: tuple[int, int] | None) -> None:
    assert out["peer_module"].startswith(str(peer)), "the peer imported this project's package"
    kind, pos, quat = out["reset_reply"]
    assert kind == "frankateach.messages.FrankaState"
    np.testing.assert_allclose(pos, home, atol=0.02)
    assert len(quat) == 4
    assert len(out["features"]) == 8  # franka_env's pos + quat + gripper vector
    bad_pos, error = out["error_reply"]
    assert len(bad_pos) == 3 and "unit quaternion" in error  # read as a state; carries the reason
    assert out["state_feed"][0] == "FrankaState" and len(out["state_feed"][1]) == 3
    assert out["commanded_feed"][0] == "FrankaAction" and out["commanded_feed"][2] is False
    if cam is not None:
        fmt, size, stamp = out["camera"]
        assert fmt == "JPEG" and tuple(size) == cam and stamp > 1e9


@pytest.mark.parametrize("flavour", ["nyu", "labelbox"])
def test_their_client_flow_against_our_server(peers: dict[str, Path], flavour: str) -> None:
    backend = TargetBackend()
    with served(backend, codec=PickleCodec()) as server:
        out = run_peer(peers[flavour], CLIENT_SCRIPT, HOST, server.control_port, server.state_port,
                       server.commanded_port, 0)
    _check_client_flow(out, peers[flavour], HOME_POS.tolist(), None)
    assert backend.resets == 1  # their reset reached the robot
    np.testing.assert_allclose(out["move_reply_pos"], HOME_POS + [0, 0, 0.05], atol=1e-6)
    assert server.errors == 1  # only the zero-quaternion non-reset command was refused


@pytest.mark.slow
def test_their_client_flow_against_the_simulator_with_cameras(peers: dict[str, Path]) -> None:
    from frankateach.sim.server import start_sim_server

    sim = start_sim_server(HOST, codec="pickle", cameras=True, camera_width=160, camera_height=120)
    try:
        if sim.cameras is None:
            pytest.skip(f"no offscreen rendering: {sim.camera_error}")
        out = run_peer(peers["nyu"], CLIENT_SCRIPT, HOST, sim.ports.control, sim.ports.state,
                       sim.ports.commanded, sim.ports.camera_offset)
    finally:
        sim.stop()
    _check_client_flow(out, peers["nyu"], [0.4577, 0.0320, 0.2656], (160, 120))


@pytest.mark.slow
def test_daemon_in_pickle_mode_drives_the_simulator_and_records_its_franka_teach_camera_frames(
    tmp_path: Path,
) -> None:
    import sys
    import time

    from frankateach.sim.server import start_sim_server
    from oculus_server.daemon import Daemon
    from oculus_server.vr import make_source
    from tests.daemon_fakes import daemon_config

    switch = sys.getswitchinterval()
    sim = start_sim_server(HOST, codec="pickle", cameras=True, camera_width=160, camera_height=120,
                           camera_fps=10.0)
    try:
        if sim.cameras is None:
            pytest.skip(f"no offscreen rendering: {sim.camera_error}")
        cfg = daemon_config(tmp_path / "rec", sim.ports.control, codec="pickle", cameras=(0, 1),
                            camera_port_offset=sim.ports.camera_offset, record=False)
        daemon = Daemon(cfg, make_source(cfg.vr_source))
        daemon.start()
        time.sleep(3.0)
        daemon.stop_event.set()
        code = daemon.shutdown()
    finally:
        sim.stop()
        sys.setswitchinterval(switch)
    counters = daemon.state.counters.snapshot()
    print(f"pickle mode: {counters.get('camera_frames', 0)} camera frames, "
          f"{counters.get('camera_errors', 0)} bad, robot link {daemon.state.robot.link()}")
    assert code == 0
    assert counters.get("camera_frames", 0) >= 10 and counters.get("camera_errors", 0) == 0
    assert daemon.state.robot.link().up and sim.server.errors == 0
