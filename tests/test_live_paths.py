"""The live view's paths inside the daemon: recorder ticks between episodes, the writer thread's
mapping and tap, config and flags, and the 3D scene read from a real simulator state blob."""

from __future__ import annotations

import queue
import subprocess
import sys
import time

import mujoco
import numpy as np
import pytest
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
from mcap.reader import make_reader

from frankateach.messages import FrankaAction
from frankateach.sim import state_blob as SB
from frankateach.sim.backend import SimBackend
from frankateach.sim.state_message import SimStateSample
from oculus_server.cli import build_parser, config_from_args
from oculus_server.config import DaemonConfig
from oculus_server.errors import ConfigError
from oculus_server.recording.sim_scene import _bodies
from oculus_server.recording.synthetic import SyntheticEpisode
from oculus_server.state import SharedState
from oculus_server.state.counters import Counters
from oculus_server.threads.base import Supervisor
from oculus_server.threads.live_sink import LiveSinkThread
from oculus_server.threads.recorder import EpisodeStart, RecorderThread
from robot_formats.recording import schemas as S
from robot_formats.recording.live import LiveServer, advertised_topics
from robot_formats.recording.mapping import TickMapper
from robot_formats.recording.records import RecordTick
from robot_formats.recording.scene import ScenePainter, cube_poses, scene_model_from_dict
from robot_formats.recording.writer import EpisodeWriter
from tests.foxglove_ws_client import FoxgloveClient
from tests.test_threads_recorder import _drain, _robot
from vla_server.arena.scene import physics_model


class FakeLive:
    """What the recorder needs of the live sink: `wanted` and `offer_tick`."""

    def __init__(self, wanted: bool = True) -> None:
        self.wanted = wanted
        self.ticks: list[RecordTick] = []

    def offer_tick(self, tick: RecordTick) -> None:
        self.ticks.append(tick)


def _sim_state(blob: str = "x") -> SimStateSample:
    return SimStateSample(1.0, 500, time.time(), "00", blob)


def test_ticks_go_to_the_live_view_only_while_a_viewer_is_subscribed_episode_or_not():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=1000)
    live = FakeLive(wanted=False)
    rec = RecorderThread(q, sv, st, hz=100.0, live=live)
    _robot(st)
    rec.step()
    assert _drain(q) == [] and live.ticks == []  # nobody watches: nothing built
    live.wanted = True
    st.sim.set(_sim_state())
    st.events.add("error", "disk trouble")
    rec.step()
    rec.step()
    assert _drain(q) == []  # between episodes: nothing for the file
    assert len(live.ticks) == 2
    assert live.ticks[0].sim_state is not None and live.ticks[1].sim_state is None  # each new state once
    assert [e.kind for e in live.ticks[0].events] == ["error"]
    st.episode.request("start")
    rec.step()
    items = _drain(q)
    assert isinstance(items[0], EpisodeStart)
    [tick] = [i for i in items if isinstance(i, RecordTick)]
    assert live.ticks[-1] is tick  # the episode's tick, offered as queued
    assert tick.sim_state is not None  # the live view only looked at it: the episode still gets it
    assert "error" in [e.kind for e in tick.events]  # idle errors still reach the episode


def test_the_live_sink_maps_ticks_into_the_files_bytes_and_drops_when_full(tmp_path):
    server = LiveServer(port=0, topics=advertised_topics(["front"]))
    counters = Counters()
    sink = LiveSinkThread(lambda: server, lambda: TickMapper(scene=ScenePainter()), Supervisor(), counters,
                          queue_size=3)
    assert sink.open()
    ep = SyntheticEpisode(cameras={"front": (64, 48)})
    ticks = list(ep.ticks(40))
    client = FoxgloveClient(server.url)
    try:
        client.wait_channels({S.TOPIC_TF})
        sink.offer_tick(ticks[0])
        assert sink.queue.qsize() == 0  # nobody subscribed: not even queued
        client.subscribe(sorted(client.by_topic()))
        end = time.monotonic() + 5
        while not sink.wanted and time.monotonic() < end:
            time.sleep(0.01)
        for t in ticks[:5]:  # the thread is not running: nothing drains the queue
            sink.offer_tick(t)
        assert sink.queue.qsize() == 3 and counters.snapshot()["live_ticks_dropped"] == 2
        while not sink.queue.empty():
            sink.queue.get_nowait()
        sink.start()
        for t in ticks:
            sink.offer_tick(t)
            time.sleep(0.005)
        got = client.collect(3.0)
    finally:
        sink.stop_event.set()
        sink.join(5)
        client.close()
    writer = EpisodeWriter(tmp_path / "ep.mcap", {}, scene=ScenePainter())
    for t in ticks:
        writer.write(t)
    path = writer.close("success")
    with open(path, "rb") as f:
        in_file = [(c.topic, m.data) for _s, c, m in make_reader(f).iter_messages(log_time_order=False)]
    live_bytes = sorted((r.topic, r.data) for r in got)
    assert live_bytes == sorted(in_file)  # one mapping code: the viewer gets the file's bytes
    assert counters.snapshot()["live_messages"] == len(got)


def test_live_config_key_defaults_to_debug_and_flags_override():
    assert DaemonConfig().effective_live is False
    assert DaemonConfig(debug=True).effective_live is True
    assert DaemonConfig(debug=True, live=False).effective_live is False
    cfg = config_from_args(build_parser().parse_args(["--live", "--live-port", "9001", "--live-host", "0.0.0.0"]))
    assert (cfg.effective_live, cfg.live_port, cfg.live_host) == (True, 9001, "0.0.0.0")
    assert config_from_args(build_parser().parse_args(["--debug", "--no-live"])).effective_live is False
    with pytest.raises(ConfigError, match=r"--live-port \('live_port'\): got 70000"):
        config_from_args(build_parser().parse_args(["--live-port", "70000"]))


def test_state_blob_constants_are_mujocos_and_decoding_needs_no_mujoco():
    assert SB.STATE_SPEC == int(mujoco.mjtState.mjSTATE_INTEGRATION)
    assert SB.STATE_TIME == int(mujoco.mjtState.mjSTATE_TIME)
    code = ("import sys, robot_formats.recording.scene, robot_formats.recording.live, "
            "oculus_server.threads.live_sink, oculus_server.threads.live_process; "
            "assert 'mujoco' not in sys.modules, 'mujoco imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cube_poses_come_from_the_simulators_blob():
    model = physics_model()
    b = SimBackend(model)
    b.apply_action(FrankaAction(np.array([0.5, 0.05, 0.12]), np.array([1.0, 0.0, 0.0, 0.0]), 1.0, False, 0.0))
    b.step(200)
    scene = scene_model_from_dict(_bodies(model))
    blob = SB.encode(SB.capture(b))
    poses = cube_poses(blob, scene)
    assert set(poses) == {"red_cube", "green_cube", "blue_cube"}
    for name, (pos, quat) in poses.items():
        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        np.testing.assert_allclose(pos, b.data.xpos[body], atol=1e-9)
        w, x, y, z = b.data.xquat[body]
        assert abs(float(np.dot(quat, [x, y, z, w]))) == pytest.approx(1.0, abs=1e-9)
    painter = ScenePainter(model=scene)
    ep = SyntheticEpisode(cameras={})
    tick = ep.tick(0)
    import dataclasses

    msgs = painter.messages(dataclasses.replace(tick, sim_state=_sim_state(blob)), 10**18)
    update = SceneUpdate.FromString(msgs[0].data)
    ids = {e.id for e in update.entities}
    assert {"table", "cube/red_cube", "target"} <= ids
    assert msgs[0].topic == S.TOPIC_SCENE
