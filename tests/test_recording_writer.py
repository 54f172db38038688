"""EpisodeWriter: Foxglove-native content read back with the official mcap reader, and write errors."""

from __future__ import annotations

import errno
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory
from scipy.spatial.transform import Rotation

from frankateach.messages import CameraFrame, FrankaAction, FrankaState
from oculus_server.recording.synthetic import SyntheticEpisode, make_jpeg
from oculus_server.vr.source import VRSample
from robot_formats.recording import encode as E
from robot_formats.recording import schemas as S
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.reader import JsonDecoderFactory, RecordingReader
from robot_formats.recording.records import ControlMode, Event, RecordTick, RobotCommand, RobotObservation
from robot_formats.recording.writer import EpisodeWriter, partial_path

T0 = 1_750_000_000.0  # a fixed wall-clock origin, s


def _read_all(path: Path):
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory(), JsonDecoderFactory()])
        summary = reader.get_summary()
        meta = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
        attachments = [(a.name, a.media_type, bytes(a.data)) for a in reader.iter_attachments()]
        msgs = [(sch.name, ch.topic, m, dec) for sch, ch, m, dec in reader.iter_decoded_messages()]
    return summary, meta, attachments, msgs


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory):
    """A 3-second synthetic episode (2 cameras) written through EpisodeWriter, plus what went in."""
    path = tmp_path_factory.mktemp("rec") / "episode.mcap"
    ep = SyntheticEpisode(cameras={"front": (320, 240), "wrist": (160, 120)}, t0_wall=T0)
    ticks = list(ep.ticks(120))
    w = EpisodeWriter(
        path, {"operator": "ada", "task": "stack", "rates": {"record": 40}},
        cameras={"front": (320, 240, 60.0)}, attachments=[("panda.xml", "application/xml", b"<mujoco/>")],
        policy_gains={"pos": 5.0},
    )
    assert w.path == partial_path(path) and w.path.exists() and not path.exists()
    for t in ticks:
        w.write(t)
    w.write_event(Event("error", "robot link lost", T0 + 2.9, {"code": 7}))
    counts = w.topic_counts
    messages = w.messages
    final = w.close("success", {"note": "first try"})
    assert final == path and path.exists() and not partial_path(path).exists()
    return path, ticks, counts, messages


def test_schemas_and_summary(recorded) -> None:
    path, ticks, counts, messages = recorded
    summary, meta, attachments, msgs = _read_all(path)
    assert summary is not None and summary.statistics.message_count == messages == len(msgs)
    schema_of = {ch.topic: summary.schemas[ch.schema_id] for ch in summary.channels.values()}
    expected = {
        "/tf": "foxglove.FrameTransforms", "/robot/ee_pose": "foxglove.PoseInFrame",
        "/robot/ee_target": "foxglove.PoseInFrame", "/vr/right/pose": "foxglove.PoseInFrame",
        "/camera/front/image": "foxglove.CompressedImage", "/camera/front/calibration": "foxglove.CameraCalibration",
        "/camera/wrist/image": "foxglove.CompressedImage", "/log": "foxglove.Log",
        "/robot/joint_states": "teleop.JointStates", "/action": "teleop.Action", "/control/mode": "teleop.ControlMode",
        "/vr/buttons": "teleop.VRButtons", "/events": "teleop.Event", "/timing": "teleop.Timing",
    }
    for topic, name in expected.items():
        assert schema_of[topic].name == name
        assert schema_of[topic].encoding == ("protobuf" if name.startswith("foxglove.") else "jsonschema")
    # every JSON message carries its schema's required fields and only declared top-level fields
    for sch_name, topic, _m, dec in msgs:
        if sch_name in S.JSON_SCHEMAS:
            js = json.loads(
                summary.schemas[[c for c in summary.channels.values() if c.topic == topic][0].schema_id].data
            )
            assert set(js["required"]) <= set(dec), (topic, dec)
            assert set(dec) <= set(js["properties"]), (topic, set(dec) - set(js["properties"]))
    assert {t: c for t, c in counts.items()} == {
        t: sum(1 for _, tp, _, _ in msgs if tp == t) for t in counts
    }
    assert attachments == [("panda.xml", "application/xml", b"<mujoco/>")]
    assert meta["recording_start"]["operator"] == "ada"
    assert json.loads(meta["recording_start"]["rates"]) == {"record": 40}
    end = meta["recording_end"]
    assert end["outcome"] == "success" and end["note"] == "first try"
    assert json.loads(end["topic_counts"]) == counts
    assert end["errors"] == "1" and "robot link lost" in end["last_error"]
    assert json.loads(end["achieved_rates"])["record"] == pytest.approx(40.0, rel=0.01)


def test_times_and_sequences(recorded) -> None:
    path, ticks, _, _ = recorded
    _, _, _, msgs = _read_all(path)
    by = {}
    for _, topic, m, dec in msgs:
        by.setdefault(topic, []).append((m, dec))
    tick_ns = [E.to_ns(t.t_wall) for t in ticks]
    mode = by["/control/mode"]
    assert [m.log_time for m, _ in mode] == tick_ns
    assert [m.sequence for m, _ in mode] == [t.seq for t in ticks]
    assert [m.sequence for m, _ in by["/tf"]] == [t.seq for t in ticks]
    # robot state: log = receive wall time, publish = measurement time
    robot = by["/robot/ee_pose"]
    assert [m.log_time for m, _ in robot] == [E.to_ns(t.robot.t_recv_wall) for t in ticks]
    assert [m.publish_time for m, _ in robot] == [E.to_ns(t.robot.state.timestamp) for t in ticks]
    first = ticks[0].robot.state
    m0, pose = robot[0]
    assert pose.frame_id == S.FRAME_BASE
    assert [pose.pose.position.x, pose.pose.position.y, pose.pose.position.z] == pytest.approx(list(first.pos))
    q = pose.pose.orientation
    assert abs(abs(float(np.dot([q.x, q.y, q.z, q.w], first.quat))) - 1.0) < 1e-9
    # commands: one message per new command seq, publish = creation time on the wall clock
    cmds = by["/robot/command"]
    seqs = sorted({t.command.seq for t in ticks})
    assert [m.sequence for m, _ in cmds] == seqs
    t_first = next(t for t in ticks if t.command.seq == seqs[1])
    made = t_first.t_wall + (t_first.command.created - t_first.t_mono)
    assert cmds[1][0].publish_time == E.to_ns(made)
    assert cmds[1][1]["gripper"] == t_first.command.target.gripper
    act = by["/action"][1][1]
    assert [act[k] for k in S.ACTION_FIELDS] == pytest.approx(list(t_first.command.action))
    # joint states: 7 arm joints + 2 fingers; velocity empty first, then finite differences
    js = by["/robot/joint_states"]
    assert len(js[0][1]["position"]) == 9 and js[0][1]["velocity"] == []
    q0, q1 = np.array(js[0][1]["position"]), np.array(js[1][1]["position"])
    dt = ticks[1].robot.state.timestamp - ticks[0].robot.state.timestamp
    assert js[1][1]["velocity"] == pytest.approx(list((q1 - q0) / dt))
    # cameras: sequence = frame seq, publish = capture time, log = tick time
    for name in ("front", "wrist"):
        frames = [(t, f) for t in ticks for f in t.cameras.get(name, ())]
        img = by[f"/camera/{name}/image"]
        assert [m.sequence for m, _ in img] == [f.seq for _, f in frames]
        assert [m.publish_time for m, _ in img] == [E.to_ns(f.timestamp) for _, f in frames]
        assert [m.log_time for m, _ in img] == [E.to_ns(t.t_wall) for t, _ in frames]
        assert img[0][1].format == "jpeg" and bytes(img[0][1].data) == frames[0][1].jpeg
    # VR: log time = receive time mapped to the wall clock
    vr = by["/vr/right/pose"]
    t = ticks[5]
    idx = [m.sequence for m, _ in vr].index(t.vr.seq)
    assert vr[idx][0].log_time == E.to_ns(t.t_wall + (t.vr.t_recv - t.t_mono))
    buttons = by["/vr/buttons"][idx][1]
    assert buttons["right"]["grip"] == 1.0 and buttons["right"]["RG"] is True and "left" not in buttons
    # timing once a second
    timing = by["/timing"]
    assert len(timing) == 2
    loops = {x["name"]: x for x in timing[0][1]["loops"]}
    assert loops["record"]["target_hz"] == 40.0 and set(loops) == {"vr", "control", "robot", "record"}
    assert {"name": "mcap_dropped", "value": 0.0} in timing[0][1]["counters"]
    gains = next(dec for m, dec in by["/control/mode"])["gains"]
    assert gains == [{"name": "pos", "value": 5.0}]


def test_tf_and_calibration(recorded) -> None:
    path, ticks, _, _ = recorded
    _, _, _, msgs = _read_all(path)
    tf = next(dec for _, topic, _, dec in msgs if topic == "/tf")
    pairs = {(t.parent_frame_id, t.child_frame_id) for t in tf.transforms}
    assert {
        ("world", "robot_base"),
        ("robot_base", "ee"),
        ("robot_base", "ee_target"),
        ("world", "vr_head"),
        ("vr_head", "vr_right"),
    } <= pairs
    calib = [(m, dec) for _, topic, m, dec in msgs if topic == "/camera/front/calibration"]
    assert len(calib) == 2  # first frame, then every 2 s over a 3 s recording
    k = calib[0][1].K
    f = 120.0 / math.tan(math.radians(60.0) / 2.0)  # 240 px high, 60° vertical fov (given)
    assert list(k) == pytest.approx([f, 0, 160, 0, f, 120, 0, 0, 1])
    assert (calib[0][1].width, calib[0][1].height) == (320, 240)
    wrist = next(dec for _, topic, _, dec in msgs if topic == "/camera/wrist/calibration")
    fw = 60.0 / math.tan(math.radians(45.0) / 2.0)  # inferred: 160×120, default 45°
    assert wrist.K[0] == pytest.approx(fw) and wrist.width == 160


def test_reader_index_matches_messages(recorded) -> None:
    path, ticks, counts, _ = recorded
    with RecordingReader(path) as r:
        ix = r.index()
        assert {t: i.count for t, i in ix.items() if i.count} == counts
        assert list(ix["/control/mode"].sequence) == [t.seq for t in ticks]
        assert list(ix["/robot/ee_pose"].publish_ns) == [E.to_ns(t.robot.state.timestamp) for t in ticks]
        assert r.attachment("panda.xml") == b"<mujoco/>"
        with pytest.raises(RecordingError, match="no attachment"):
            r.attachment("missing")


def test_malformed_pieces_are_skipped_and_counted(tmp_path: Path) -> None:
    w = EpisodeWriter(tmp_path / "bad.mcap", {})
    good = SyntheticEpisode(t0_wall=T0).tick(0)
    bad_vr = VRSample(poses={"r": np.eye(3)}, buttons={}, t_recv=good.t_mono, seq=1)
    bad_cmd = RobotCommand(1, good.t_mono, np.zeros(5), good.command.target, ControlMode.REAL_TIME, True)
    bad_state = RobotObservation(
        FrankaState(np.array([np.nan, 0, 0]), np.array([0, 0, 0, 1.0]), 0.0, T0), good.t_mono, T0
    )
    tick = RecordTick(1, good.t_mono + 0.025, T0 + 0.025, bad_vr, bad_state, bad_cmd, ControlMode.PREDICTIVE)
    w.write(good)
    w.write(tick)
    assert w.encode_errors == 3
    path = w.close("failure")
    _, meta, _, msgs = _read_all(path)
    assert meta["recording_end"]["encode_errors"] == "3"
    modes = [dec["mode"] for _, topic, _, dec in msgs if topic == "/control/mode"]
    assert modes == ["REAL-TIME", "PREDICTIVE"]


def test_bad_arguments(tmp_path: Path) -> None:
    existing = tmp_path / "x.mcap"
    existing.write_bytes(b"")
    with pytest.raises(RecordingError, match="already exists"):
        EpisodeWriter(existing, {})
    with pytest.raises(RecordingError, match="must end in .mcap"):
        EpisodeWriter(tmp_path / "x.bag", {})
    with pytest.raises(RecordingError, match="compression"):
        EpisodeWriter(tmp_path / "y.mcap", {}, compression="gzip")
    with pytest.raises(RecordingError, match="vertical fov"):
        EpisodeWriter(tmp_path / "y.mcap", {}, cameras={"front": (320, 240)})
    with pytest.raises(RecordingError, match="folder does not exist"):
        EpisodeWriter(tmp_path / "no" / "such" / "dir.mcap", {})
    w = EpisodeWriter(tmp_path / "z.mcap", {})
    with pytest.raises(RecordingError, match="expected a RecordTick"):
        w.write("tick")  # type: ignore[arg-type]
    with pytest.raises(RecordingError, match="outcome"):
        w.close("Great Success!")
    w.close("shutdown")
    with pytest.raises(RecordingError, match="closed"):
        w.write(SyntheticEpisode().tick(0))


FOXGLOVE_FIELD_TYPES = {"boolean", "string", "number", "integer", "object", "array"}


def _foxglove_readable(schema: dict, path: str = "") -> list[str]:
    """Problems Foxglove's JSON-schema reader would raise on `schema` (its rules, restated).

    Every object needs "properties"; every property one "type" out of boolean / string / number /
    integer / object / array; array items one of those too, objects recursively the same.
    """
    problems: list[str] = []
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        return [f"{path or '<root>'}: expected type object with properties"]
    for name, field in schema["properties"].items():
        where = f"{path}.{name}" if path else name
        t = field.get("type")
        if not isinstance(t, str) or t not in FOXGLOVE_FIELD_TYPES:
            problems.append(f"{where}: unsupported type {t!r}")
        elif t == "object":
            problems += _foxglove_readable(field, where)
        elif t == "array":
            items = field.get("items", {})
            if not isinstance(items.get("type"), str) or items["type"] not in FOXGLOVE_FIELD_TYPES - {"array"}:
                problems.append(f"{where}[]: unsupported item type {items.get('type')!r}")
            elif items["type"] == "object":
                problems += _foxglove_readable(items, where + "[]")
    return problems


@pytest.mark.parametrize("name", sorted(S.JSON_SCHEMAS))
def test_json_schemas_fit_foxglove_reader(name: str) -> None:
    assert _foxglove_readable(S.JSON_SCHEMAS[name]) == []
    assert _foxglove_readable({"type": "object", "properties": {"x": {"type": ["number", "null"]}}})  # the check bites


def test_json_messages_use_only_declared_fields(recorded) -> None:
    """Every key in every JSON message (nested too) is declared, so Foxglove knows its type."""
    path, _, _, _ = recorded
    summary, _, _, msgs = _read_all(path)
    schemas = {ch.topic: json.loads(summary.schemas[ch.schema_id].data) for ch in summary.channels.values()
               if summary.schemas[ch.schema_id].encoding == "jsonschema"}

    def check(value, schema, where):
        if schema.get("type") == "object" and isinstance(value, dict):
            if where.endswith(".data"):
                return  # events' free-form payload
            for k, v in value.items():
                assert k in schema["properties"], f"{where}.{k} not declared"
                check(v, schema["properties"][k], f"{where}.{k}")
        elif schema.get("type") == "array" and isinstance(value, list):
            for v in value:
                check(v, schema["items"], where + "[]")
        elif value is not None:
            expected = {"number": (int, float), "integer": int, "boolean": bool, "string": str}[schema["type"]]
            assert isinstance(value, expected), f"{where}: {value!r} is not {schema['type']}"

    for _, topic, _, dec in msgs:
        if topic in schemas:
            check(dec, schemas[topic], topic)


class FullDisk:
    """A real file on a pretend disk that fills up after `capacity` bytes.

    Like a real full disk, a write that does not fit stores what fits, then fails with ENOSPC.
    """

    def __init__(self, path: Path, capacity: int) -> None:
        self._f = open(path, "xb", buffering=0)
        self.capacity = capacity
        self.used = 0

    def write(self, data: bytes) -> int:
        room = self.capacity - self.used
        if len(data) > room:
            if room > 0:
                self._f.write(bytes(data[:room]))
                self.used += room
            raise OSError(errno.ENOSPC, "No space left on device")
        self._f.write(data)
        self.used += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        self._f.close()


def test_disk_full_raises_and_abort_keeps_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "full.mcap"
    disk: list[FullDisk] = []

    def opener(p: Path) -> FullDisk:
        disk.append(FullDisk(p, capacity=150_000))
        return disk[0]

    w = EpisodeWriter(path, {"operator": "ada"}, opener=opener, chunk_size=20_000)
    ep = SyntheticEpisode(t0_wall=T0)
    written = 0
    with pytest.raises(RecordingError, match=r"disk is full \(ENOSPC"):
        for tick in ep.ticks(4000):
            w.write(tick)
            written += 1
    assert 0 < written < 4000 and disk[0].used == 150_000
    with pytest.raises(RecordingError, match="failed earlier"):
        w.write(ep.tick(written + 1))
    final = w.abort()
    assert final == path and path.exists() and not partial_path(path).exists()
    summary, meta, _, msgs = _read_all(path)
    assert summary is not None and summary.statistics.message_count == len(msgs) > 0
    assert meta["recording_end"]["outcome"] == "aborted" and "ENOSPC" in meta["recording_end"]["reason"]
    ticks = [m.sequence for _, topic, m, _ in msgs if topic == "/control/mode"]
    assert ticks == list(range(len(ticks))) and 0 < len(ticks) <= written
    assert w.abort() == path  # idempotent


def test_disk_full_while_closing_keeps_the_flushed_part(tmp_path: Path) -> None:
    path = tmp_path / "close.mcap"
    disks: list[FullDisk] = []
    w = EpisodeWriter(path, {}, opener=lambda p: disks.append(FullDisk(p, 10**9)) or disks[0], flush_period_s=1e9)
    ep = SyntheticEpisode(t0_wall=T0)
    for tick in ep.ticks(40):
        w.write(tick)
    w.flush()
    disks[0].capacity = disks[0].used + 2000  # the disk fills while the next second is buffered
    for i in range(40, 80):
        w.write(ep.tick(i))
    with pytest.raises(RecordingError, match=f"what was written is kept in {path}"):
        w.close("success")
    summary, meta, _, msgs = _read_all(path)
    ticks = [m.sequence for _, topic, m, _ in msgs if topic == "/control/mode"]
    assert ticks[:40] == list(range(40)) and len(ticks) < 80
    assert meta["recording_end"]["outcome"] == "aborted"


def test_abort_of_a_healthy_recording_keeps_everything(tmp_path: Path) -> None:
    w = EpisodeWriter(tmp_path / "a.mcap", {})
    for tick in SyntheticEpisode(t0_wall=T0).ticks(40):
        w.write(tick)
    n = w.messages
    path = w.abort("operator pressed stop twice")
    summary, meta, _, _ = _read_all(path)
    assert summary.statistics.message_count == n
    assert meta["recording_end"]["reason"] == "operator pressed stop twice"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda v: np.linalg.norm(v) > 0.1))
def test_pose_from_matrix_matches_scipy_with_w_positive(v: list[float]) -> None:
    q = np.array(v) / np.linalg.norm(v)
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat(q).as_matrix()
    m[:3, 3] = (0.1, -0.2, 0.3)
    pos, got = E.pose_from_matrix(m)
    assert abs(abs(float(np.dot(got, q))) - 1.0) < 1e-9
    assert got[3] >= 0 and np.allclose(pos, (0.1, -0.2, 0.3))


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(10**6), 10**6)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=5),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
        max_leaves=20,
    )
)
def test_json_bodies_are_always_strict_json(value) -> None:
    data = E.dumps({"v": value})
    def no_constants(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    json.loads(data, parse_constant=no_constants)  # strict: no NaN / Infinity tokens


def test_camera_frames_and_events_only_ticks(tmp_path: Path) -> None:
    """A tick with nothing but a camera frame and an event (no robot, VR or command yet)."""
    w = EpisodeWriter(tmp_path / "c.mcap", {})
    frame = CameraFrame(0, "side", 4, T0 - 0.01, 64, 48, make_jpeg(64, 48, 0))
    tick = RecordTick(0, 5.0, T0, None, None, None, ControlMode.REAL_TIME, cameras={"side": (frame,)},
                      events=(Event("episode_start", "go", T0),))
    w.write(tick)
    reset_cmd = RobotCommand(0, 5.0, np.zeros(7), FrankaAction(np.zeros(3), np.array([0, 0, 0, 1.0]), -1.0, True, T0),
                             ControlMode.REAL_TIME, False)
    w.write(RecordTick(1, 5.025, T0 + 0.025, None, None, reset_cmd, ControlMode.REAL_TIME))
    path = w.close("success")
    _, _, _, msgs = _read_all(path)
    topics = [topic for _, topic, _, _ in msgs]
    assert topics.count("/camera/side/image") == 1 and topics.count("/camera/side/calibration") == 1
    assert topics.count("/robot/command") == 1 and "/robot/ee_target" not in topics  # resets have no pose target
    log = next(dec for _, topic, _, dec in msgs if topic == "/log")
    assert log.name == "episode_start" and log.message == "go"
