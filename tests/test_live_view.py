"""The live view: the recording's topics over foxglove-sdk's WebSocket server, read by a real client.

The client (`tests/foxglove_ws_client.py`) speaks the Foxglove WebSocket protocol on loopback;
messages are decoded with the schemas the server advertised (protobuf descriptors, JSON schemas).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate

from oculus_server.recording.synthetic import SyntheticEpisode
from robot_formats.recording import schemas as S
from robot_formats.recording.encode import Message
from robot_formats.recording.layout import foxglove_layout, topics_in
from robot_formats.recording.live import LiveServer, advertised_topics
from robot_formats.recording.mapping import TickMapper
from robot_formats.recording.scene import ScenePainter, link_frame
from tests.foxglove_ws_client import FoxgloveClient, connect_when_up, free_port
from tests.robot_fakes import free_port_block

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server():
    srv = LiveServer(port=0, topics=advertised_topics(["front"]))
    yield srv
    srv.stop()


def _wait(cond, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


def test_every_recording_topic_is_advertised_with_its_recording_schema(server):
    client = FoxgloveClient(server.url)
    try:
        expected = {spec.topic: spec for spec in advertised_topics(["front"])}
        chans = client.wait_channels(set(expected))
        for topic, spec in expected.items():
            ch = chans[topic]
            name, encoding, data = S.schema_record(spec.schema)
            assert (ch.encoding, ch.schema_name, ch.schema_encoding) == (spec.encoding, name, encoding), topic
            assert ch.schema_bytes() == data, topic
        assert not server.wanted  # advertised, nobody subscribed yet
    finally:
        client.close()


def _mapped(n: int) -> list[list[Message]]:
    ep = SyntheticEpisode(cameras={"front": (64, 48)})
    mapper = TickMapper(scene=ScenePainter())
    return [mapper.tick(t) for t in ep.ticks(n)]


def test_a_subscriber_gets_the_mappers_bytes_decodable_with_the_advertised_schemas(server):
    batches = _mapped(80)
    client = FoxgloveClient(server.url)
    try:
        chans = client.wait_channels({S.TOPIC_TF, S.TOPIC_MODE, S.TOPIC_SCENE, S.TOPIC_JOINT_STATES})
        client.subscribe([S.TOPIC_TF, S.TOPIC_MODE, S.TOPIC_SCENE, S.TOPIC_JOINT_STATES])
        _wait(lambda: server.subscriptions == 4)
        assert server.wanted
        sent = {}
        for batch in batches:
            server.publish(batch)
            for m in batch:
                sent.setdefault(m.topic, []).append(m.data)
        got = client.collect(2.0)
    finally:
        client.close()
    by_topic: dict[str, list[bytes]] = {}
    for r in got:
        by_topic.setdefault(r.topic, []).append(r.data)
    for topic in (S.TOPIC_TF, S.TOPIC_MODE, S.TOPIC_JOINT_STATES, S.TOPIC_SCENE):
        assert by_topic[topic] == sent[topic], topic  # the very bytes, all of them, in order
    schema = json.loads(chans[S.TOPIC_MODE].schema)
    for data in by_topic[S.TOPIC_MODE]:
        jsonschema.validate(json.loads(data), schema)
    tf = FrameTransforms.FromString(by_topic[S.TOPIC_TF][-1])
    children = {t.child_frame_id for t in tf.transforms}
    assert {link_frame(f"link{i}") for i in range(8)} <= children  # the arm placed by FK
    scene = SceneUpdate.FromString(by_topic[S.TOPIC_SCENE][0])
    assert {e.frame_id for e in scene.entities} >= {link_frame("link3"), S.FRAME_EE_TARGET}


def test_a_client_that_stops_reading_never_blocks_publishing_and_is_counted(server):
    slow = FoxgloveClient(server.url)
    try:
        slow.wait_channels({S.TOPIC_MODE})
        slow.subscribe([S.TOPIC_MODE])
        _wait(lambda: server.wanted)
        big = Message(S.TOPIC_MODE, b"{" + b" " * 200_000 + b"}", 1, 1)
        t0 = time.perf_counter()
        for _ in range(2000):  # 400 MB offered to a client that reads nothing
            server.publish([big])
        assert time.perf_counter() - t0 < 5.0
        _wait(lambda: server.client_overflows >= 1)
        fresh = FoxgloveClient(server.url)  # the server still serves others
        try:
            fresh.wait_channels({S.TOPIC_MODE})
            fresh.subscribe([S.TOPIC_MODE])
            _wait(lambda: server.subscriptions == 2)
            server.publish([Message(S.TOPIC_MODE, b'{"mode":"REAL-TIME"}', 2, 2)])
            got = []
            end = time.monotonic() + 5
            while not got and time.monotonic() < end:
                r = fresh.recv(0.2)
                if r is not None:
                    got.append(r)
            assert got and got[0].data == b'{"mode":"REAL-TIME"}'
        finally:
            fresh.close()
    finally:
        slow.close()


def test_a_taken_port_is_a_clear_error(server):
    from robot_formats.recording.errors import RecordingError

    with pytest.raises(RecordingError, match=rf"127\.0\.0\.1:{server.port}.*--live-port or --no-live"):
        LiveServer(port=server.port)


def test_the_shipped_layout_is_generated_and_reads_only_recorded_topics_and_fields():
    shipped = json.loads((ROOT / "configs" / "foxglove_layout.json").read_text())
    assert shipped == foxglove_layout()
    advertised = {spec.topic: spec for spec in advertised_topics(["front", "wrist"])}
    for topic, fields in topics_in(shipped).items():
        assert topic in advertised, topic
        schema = advertised[topic].schema
        if schema in S.JSON_SCHEMAS:
            assert fields <= set(S.JSON_SCHEMAS[schema]["properties"]), (topic, fields)
        else:
            names = {f.name for f in S.PROTO_CLASSES[schema].DESCRIPTOR.fields}
            assert fields - {""} <= names, (topic, fields)


def _start_and_connect(argv: list[str], cwd: Path, log_path: Path, live_port: int):
    """Starts `argv` (its output in `log_path`) and connects to its live view once it listens."""
    log = open(log_path, "wb")
    proc = subprocess.Popen(argv, cwd=cwd, env=dict(os.environ, MUJOCO_GL="egl"), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    try:
        client = connect_when_up(f"ws://127.0.0.1:{live_port}", lambda: proc.poll() is None, 60)
    except RuntimeError:
        proc.kill()
        proc.wait()
        log.close()
        raise AssertionError(log_path.read_text()) from None
    return proc, log, client


@pytest.mark.slow
def test_debug_daemon_serves_live_at_the_recorded_rate_and_a_stalled_client_changes_nothing(tmp_path):
    """`--debug --performance` as a process: /control/mode at 40 Hz of tick time, both cameras,
    the 3D scene; a second client that reads nothing for 10 s: no tick dropped, overflow counted."""
    port = free_port_block(3) + 1
    cams = free_port_block(2)
    live_port = free_port()
    (tmp_path / "d.yaml").write_text(f"camera_port_offset: {cams}\nrealtime_priority: 0\n")
    argv = [sys.executable, "-m", "oculus_server.cli", "--config", str(tmp_path / "d.yaml"), "--debug",
            "--performance", "--vr-source", "scripted:circle", "--no-dashboard", "--robot-port", str(port),
            "--recordings-dir", str(tmp_path / "rec"), "--live-port", str(live_port), "--duration", "45",
            "--record-on-start"]
    proc, log, client = _start_and_connect(argv, tmp_path, tmp_path / "daemon.log", live_port)
    try:
        topics = {S.TOPIC_MODE, S.TOPIC_TF, S.TOPIC_SCENE, "/camera/front/image", "/camera/wrist/image"}
        client.wait_channels(topics, 30)
        client.subscribe(sorted(topics))
        stalled = FoxgloveClient(f"ws://127.0.0.1:{live_port}")
        stalled.wait_channels(topics, 10)
        stalled.subscribe(sorted(topics))  # and then reads nothing for the rest of the run
        got = client.collect(15.0)
        assert proc.wait(60) == 0, (tmp_path / "daemon.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    modes = [json.loads(r.data) for r in got if r.topic == S.TOPIC_MODE]
    stamps = [m["timestamp"]["sec"] + m["timestamp"]["nsec"] / 1e9 for m in modes]
    assert len(stamps) > 100
    assert statistics.median(b - a for a, b in zip(stamps, stamps[1:])) == pytest.approx(1 / 40, abs=0.002)
    for cam in ("front", "wrist"):
        assert any(r.topic == f"/camera/{cam}/image" for r in got), cam
    assert any(r.topic == S.TOPIC_SCENE for r in got)
    from robot_formats.recording.reader import RecordingReader

    [rec] = list((tmp_path / "rec").rglob("*.mcap"))
    with RecordingReader(rec) as reader:
        body = [m[4] for m in reader.messages([S.TOPIC_TIMING])][-1]
    counters = {c["name"]: c["value"] for c in body["counters"]}
    assert counters["records_dropped"] == 0
    assert counters["queue_live_client_overflows"] >= 1  # the stalled client's backlog overflowed



@pytest.mark.slow
def test_arena_run_live_publishes_the_episode_in_sim_time(tmp_path):
    """`vla-arena run --live`: the episode's topics while it runs, stamped and timed in sim time."""
    live_port = free_port()
    argv = [sys.executable, "-m", "vla_server.arena.cli", "--data", str(tmp_path / "data"), "--provider",
            "tests.arena_fakes:TestProvider", "run", "--model", "reach", "--instruction", "pick up the red cube",
            "--steps", "40", "--hz", "10", "--width", "64", "--height", "48", "--no-video", "--live",
            "--live-port", str(live_port)]
    proc, log, client = _start_and_connect(argv, ROOT, tmp_path / "arena.log", live_port)
    try:
        topics = [S.TOPIC_JOINT_STATES, S.TOPIC_TF, S.TOPIC_SCENE, "/camera/front/image", S.TOPIC_EVENTS]
        client.wait_channels(set(topics))
        assert "time" in client.server_info["capabilities"]
        client.subscribe(topics)
        got = []
        end = time.monotonic() + 120
        while not client.closed and time.monotonic() < end:
            got += client.collect(0.5)
        assert proc.wait(30) == 0, (tmp_path / "arena.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    joints = [r for r in got if r.topic == S.TOPIC_JOINT_STATES]
    assert len(joints) > 30
    stamps = [json.loads(r.data)["timestamp"] for r in joints]
    t = [s["sec"] + s["nsec"] / 1e9 for s in stamps]
    assert statistics.median(b - a for a, b in zip(t, t[1:])) == pytest.approx(1 / 30, abs=0.002)  # 30 Hz sim time
    assert client.times and client.times == sorted(client.times)  # the server's clock is the sim time
    assert any(r.topic == "/camera/front/image" for r in got)
    tf = FrameTransforms.FromString([r for r in got if r.topic == S.TOPIC_TF][-1].data)
    assert link_frame("link7") in {x.child_frame_id for x in tf.transforms}
