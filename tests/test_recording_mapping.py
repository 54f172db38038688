"""Tick → topic mapping: every JSON message matches its own schema, times and frames are right."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory

from frankateach.messages import FrankaAction, FrankaState
from frankateach.timing import RateSnapshot
from oculus_server.recording.synthetic import SyntheticEpisode
from robot_formats.recording import schemas as S
from robot_formats.recording.camera_mounts import CameraMount, camera_mount_from_dict
from robot_formats.recording.mapping import TickMapper
from robot_formats.recording.records import ControlMode, Event, RecordTick, RobotCommand, RobotObservation, SentCommand
from robot_formats.recording.writer import EpisodeWriter
from tests.recording_checks import validate_json_messages

T0 = 1_750_000_000.0
NAN = float("nan")
MOUNTS = {
    "front": CameraMount("robot_base", (1.0, 0.0, 0.7), (0.6724, 0.6724, -0.2190, -0.2190), 34.0),
    "wrist": CameraMount("ee", (0.07, 0.0, -0.0734), (-0.1625, -0.1625, 0.6882, 0.6882), 70.0),
}


def _nan_snapshot(name: str) -> RateSnapshot:
    """A loop that has ticked once: no period yet, so every figure but the counts is NaN."""
    return RateSnapshot(name, 0.0, NAN, 1, 0, 0, NAN, NAN, NAN, NAN, NAN, NAN, NAN)


def _edge_ticks() -> list[RecordTick]:
    """Ticks that used to write null: no command yet, PUB states (no rtt), NaN timing figures,
    a server without joint positions, a command without a VR sample."""
    state = FrankaState(np.array([0.4, 0.0, 0.3]), np.array([1.0, 0, 0, 0]), -1.0, T0 - 0.01, True)  # no joints
    obs = RobotObservation(state, 10.0, T0 - 0.005)  # rtt NaN: from the state feed
    tick0 = RecordTick(0, 10.01, T0, None, obs, None, ControlMode.PREDICTIVE,
                       rates={"cameras": _nan_snapshot("cameras")}, counters={"rtt_mean_ms": NAN, "vr_rejected": 3})
    target = FrankaAction(np.array([0.41, 0.0, 0.3]), np.array([1.0, 0, 0, 0]), 1.0, False, T0)
    cmd = RobotCommand(1, 10.02, np.zeros(7), target, ControlMode.REAL_TIME, False)  # vr_t_recv NaN
    state2 = FrankaState(np.array([0.41, 0.0, 0.3]), np.array([1.0, 0, 0, 0]), 0.5, T0 + 0.015, True, np.full(7, NAN))
    obs2 = RobotObservation(state2, 10.03, T0 + 0.02, 0.004)
    tick1 = RecordTick(1, 10.035, T0 + 0.025, None, obs2, cmd, ControlMode.REAL_TIME,
                       events=(Event("error", "recording stopped: disk full", T0 + 0.02, {"path": "/x"}),))
    return [tick0, tick1]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("map") / "ep.mcap"
    w = EpisodeWriter(path, {"task": "t"}, camera_mounts=MOUNTS, policy_gains={"pos_action_gain": 5.0})
    for tick in _edge_ticks():
        w.write(tick)
    for tick in SyntheticEpisode(cameras={"front": (320, 240), "wrist": (160, 120)}, t0_wall=T0 + 1).ticks(90):
        w.write(tick)
    return w.close("success")


def test_every_json_message_matches_its_schema(recorded: Path) -> None:
    checked = validate_json_messages(recorded)
    for topic in (S.TOPIC_TIMING, S.TOPIC_MODE, S.TOPIC_JOINT_STATES, S.TOPIC_LATENCY, S.TOPIC_COMMAND,
                  S.TOPIC_ACTION, S.TOPIC_VR_BUTTONS, S.TOPIC_EVENTS):
        assert checked[topic] > 0, topic


def test_no_json_message_holds_null(recorded: Path) -> None:
    def walk(v: object, where: str) -> None:
        assert v is not None, f"null at {where}"
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{where}.{k}")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{where}[{i}]")

    with open(recorded, "rb") as f:
        for schema, channel, message in make_reader(f).iter_messages():
            if schema is not None and schema.encoding == "jsonschema":
                walk(json.loads(message.data), channel.topic)


def _decoded(path: Path, topic: str) -> list:
    with open(path, "rb") as f:
        return [
            (m, d)
            for _, _, m, d in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages(topics=[topic])
        ]


def _json(path: Path, topic: str) -> list[dict]:
    with open(path, "rb") as f:
        return [json.loads(m.data) for _, _, m in make_reader(f).iter_messages(topics=[topic])]


def test_first_mode_and_timing_leave_unavailable_numbers_out_and_show_the_gains(recorded: Path) -> None:
    mode = _json(recorded, S.TOPIC_MODE)
    assert "vr_to_command_ms" not in mode[0]  # no command yet: absent, not null
    assert all(m["gains"] == [{"name": "pos_action_gain", "value": 5.0}] for m in mode)
    timing = _json(recorded, S.TOPIC_TIMING)[0]
    assert timing["loops"] == [{"name": "cameras", "target_hz": 0.0, "ticks": 1, "missed": 0, "late": 0}]
    assert {"name": "vr_rejected", "value": 3.0} in timing["counters"]
    assert all(c["name"] != "rtt_mean_ms" for c in timing["counters"])
    latency = _json(recorded, S.TOPIC_LATENCY)[0]
    assert "rtt_ms" not in latency and math.isfinite(latency["state_age_ms"])


def test_missing_joint_positions_are_absent_not_zero(recorded: Path) -> None:
    js = _json(recorded, S.TOPIC_JOINT_STATES)
    assert js[0]["name"] == list(S.FINGER_JOINT_NAMES) and len(js[0]["position"]) == 2
    assert js[1]["name"] == list(S.FINGER_JOINT_NAMES)  # NaN joints are missing too
    assert js[2]["name"] == list(S.JOINT_NAMES) and len(js[2]["position"]) == 9


def test_ee_pose_is_stamped_with_the_measurement_time_like_joint_states(recorded: Path) -> None:
    poses = _decoded(recorded, S.TOPIC_EE_POSE)
    joints = _json(recorded, S.TOPIC_JOINT_STATES)
    assert len(poses) == len(joints) > 10
    for (msg, pose), js in zip(poses, joints):
        stamp = pose.timestamp.seconds * 10**9 + pose.timestamp.nanos
        assert stamp == js["timestamp"]["sec"] * 10**9 + js["timestamp"]["nsec"] == msg.publish_time
        assert msg.log_time > msg.publish_time  # received after it was measured


def test_cameras_have_frames_in_tf(recorded: Path) -> None:
    tfs = _decoded(recorded, S.TOPIC_TF)
    edges = {(t.parent_frame_id, t.child_frame_id): t for _, msg in tfs for t in msg.transforms}
    front, wrist = edges[("robot_base", "camera_front")], edges[("ee", "camera_wrist")]
    assert (front.translation.x, front.translation.z) == pytest.approx((1.0, 0.7))
    assert wrist.translation.z == pytest.approx(-0.0734)
    images = _decoded(recorded, "/camera/wrist/image")
    assert images and all(img.frame_id == "camera_wrist" for _, img in images)
    calib = _decoded(recorded, "/camera/wrist/calibration")[0][1]
    fy = calib.K[4]
    assert fy == pytest.approx((120 / 2) / math.tan(math.radians(70.0) / 2))  # the mount's field of view
    with open(recorded, "rb") as f:
        meta = {m.name: dict(m.metadata) for m in make_reader(f).iter_metadata()}
    assert json.loads(meta["recording_start"]["cameras"])["wrist"]["parent"] == "ee"


def test_camera_mount_validation_names_camera_and_key() -> None:
    with pytest.raises(ValueError, match="camera 'x' parent"):
        camera_mount_from_dict("x", {"parent": "world", "position": [0, 0, 0], "orientation": [0, 0, 0, 1]})
    with pytest.raises(ValueError, match="camera 'x' orientation: a zero quaternion"):
        camera_mount_from_dict("x", {"position": [0, 0, 0], "orientation": [0, 0, 0, 0]})
    with pytest.raises(ValueError, match="camera 'x': unknown key 'fov'"):
        camera_mount_from_dict("x", {"position": [0, 0, 0], "orientation": [0, 0, 0, 1], "fov": 3})
    m = camera_mount_from_dict("x", {"position": [1, 2, 3], "orientation": [0, 0, 0, 2], "fovy_deg": 50})
    assert m.orientation == (0.0, 0.0, 0.0, 1.0) and camera_mount_from_dict("x", m.to_dict()) == m


_finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=150, deadline=None)
@given(rtt=_finite_or_not, jitter=_finite_or_not, hz=_finite_or_not, vr_t=_finite_or_not, counter=_finite_or_not)
def test_any_nan_or_inf_figure_still_gives_schema_valid_messages(rtt, jitter, hz, vr_t, counter) -> None:
    mapper = TickMapper(policy_gains={"g": 1.0})
    state = FrankaState(np.array([0.4, 0.0, 0.3]), np.array([0, 0, 0, 1.0]), -1.0, T0, True, np.zeros(7))
    target = FrankaAction(np.array([0.4, 0.0, 0.3]), np.array([0, 0, 0, 1.0]), -1.0, False, T0)
    cmd = RobotCommand(0, 5.0, np.zeros(7), target, ControlMode.REAL_TIME, True, 3, vr_t)
    snap = RateSnapshot("vr", 50.0, hz, 10, 0, 0, jitter, jitter, jitter, jitter, hz, jitter, jitter)
    tick = RecordTick(0, 5.0, T0, None, RobotObservation(state, 5.0, T0, rtt), cmd, ControlMode.REAL_TIME,
                      rates={"vr": snap}, counters={"c": counter})
    validators = {name: Draft202012Validator(schema) for name, schema in S.JSON_SCHEMAS.items()}
    schema_of = {spec.topic: spec.schema for spec in S.FIXED_TOPICS}
    for m in mapper.tick(tick):
        if schema_of.get(m.topic) in validators:
            body = json.loads(m.data)
            validators[schema_of[m.topic]].validate(body)


# --- daemon ticks carry logs: every measured state and every sent command, each once -------------


def _state(z: float, t_meas: float) -> FrankaState:
    return FrankaState(np.array([0.4, 0.0, z]), np.array([1.0, 0, 0, 0]), -1.0, t_meas, True, np.zeros(7))


def _sent(seq: int, send_seq: int, made: float, sent: float) -> SentCommand:
    target = FrankaAction(np.array([0.4, 0.0, 0.3 + seq * 1e-3]), np.array([1.0, 0, 0, 0]), -1.0, False, T0)
    cmd = RobotCommand(seq, made, np.zeros(7), target, ControlMode.REAL_TIME, True)
    return SentCommand(cmd, send_seq, sent, T0 + (sent - 10.0))


def _topic(msgs, topic: str):
    return [m for m in msgs if m.topic == topic]


def test_robot_states_of_a_tick_are_each_recorded_once_in_measurement_order() -> None:
    m = TickMapper()
    a, b, c = (RobotObservation(_state(0.3 + k * 0.01, T0 + k * 0.01), 10.0 + k * 0.01, T0 + k * 0.01 + 0.001)
               for k in range(3))
    late = RobotObservation(_state(0.35, T0 + 0.015), 10.03, T0 + 0.031)  # measured before c: a reply overlapping
    step_back = RobotObservation(_state(0.36, T0 - 5.0), 10.04, T0 + 0.041)  # the server's clock stepped back
    t1 = RecordTick(0, 10.025, T0 + 0.025, None, b, None, ControlMode.REAL_TIME, robot_states=(a, b))
    t2 = RecordTick(1, 10.05, T0 + 0.05, None, step_back, None, ControlMode.REAL_TIME,
                    robot_states=(b, c, late, step_back))
    t3 = RecordTick(2, 10.075, T0 + 0.075, None, step_back, None, ControlMode.REAL_TIME, robot_states=())
    poses = [_topic(m.tick(t), S.TOPIC_EE_POSE) for t in (t1, t2, t3)]
    assert [len(p) for p in poses] == [2, 2, 0]  # b once; `late` skipped; nothing new in t3
    assert [p.publish_ns for p in poses[1]] == [round((T0 + 0.02) * 1e9), round((T0 - 5.0) * 1e9)]
    d = RobotObservation(_state(0.37, T0 - 4.9), 10.09, T0 + 0.091)
    joints = _topic(m.tick(RecordTick(3, 10.1, T0 + 0.1, None, d, None, ControlMode.REAL_TIME)), S.TOPIC_JOINT_STATES)
    assert len(joints) == 1  # without a log (robot_states None) the newest state is sampled


def test_sent_commands_are_recorded_at_their_send_time_with_the_send_counter() -> None:
    m = TickMapper()
    sent = (_sent(7, 3, 10.000, 10.004), _sent(9, 4, 10.050, 10.052))
    newest_made = sent[1].command
    tick = RecordTick(0, 10.06, T0 + 0.06, None, None, newest_made, ControlMode.REAL_TIME, sent_commands=sent)
    msgs = m.tick(tick)
    cmds = _topic(msgs, S.TOPIC_COMMAND)
    assert [c.sequence for c in cmds] == [3, 4]
    assert [c.log_ns for c in cmds] == [round((T0 + 0.004) * 1e9), round((T0 + 0.052) * 1e9)]
    assert [c.publish_ns for c in cmds] == [round(T0 * 1e9), round((T0 + 0.05) * 1e9)]
    bodies = [json.loads(c.data) for c in cmds]
    assert [(b["seq"], b["send_seq"]) for b in bodies] == [(7, 3), (9, 4)]
    assert bodies[0]["age_ms"] == pytest.approx(4.0) and bodies[1]["age_ms"] == pytest.approx(2.0)
    assert [a.sequence for a in _topic(msgs, S.TOPIC_ACTION)] == [3, 4]
    assert [t.sequence for t in _topic(msgs, S.TOPIC_EE_TARGET)] == [3, 4]
    empty = RecordTick(1, 10.085, T0 + 0.085, None, None, newest_made, ControlMode.REAL_TIME, sent_commands=())
    assert _topic(m.tick(empty), S.TOPIC_COMMAND) == []  # nothing sent: nothing recorded, even if made
    schema = Draft202012Validator(S.JSON_SCHEMAS["teleop.RobotCommand"])
    for b in bodies:
        schema.validate(b)


def test_commands_sent_after_the_last_tick_are_written_before_the_file_closes(tmp_path: Path) -> None:
    w = EpisodeWriter(tmp_path / "ep.mcap", {})
    w.write(RecordTick(0, 10.0, T0, None, None, None, ControlMode.REAL_TIME, sent_commands=(_sent(1, 0, 9.99, 9.995),)))
    w.write_sent_commands([_sent(2, 1, 10.01, 10.012)])
    path = w.close("shutdown")
    with open(path, "rb") as f:
        seqs = [msg.sequence for _, ch, msg in make_reader(f).iter_messages(topics=[S.TOPIC_COMMAND])]
    assert seqs == [0, 1]
