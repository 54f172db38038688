"""The live view's paths inside the daemon: recorder ticks between episodes, the writer thread's
mapping and tap, config and flags, and the 3D scene read from a real simulator state blob."""

from __future__ import annotations

import queue
import subprocess
import sys
import time
from pathlib import Path

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
from oculus_server.recording import schemas as S
from oculus_server.recording.record import RecordTick
from oculus_server.recording.scene import ScenePainter, cube_poses, scene_model_from_dict
from oculus_server.recording.sim_scene import _bodies
from oculus_server.recording.synthetic import SyntheticEpisode
from oculus_server.recording.writer import EpisodeWriter
from oculus_server.state import SharedState
from oculus_server.threads.base import Supervisor
from oculus_server.threads.mcap_writer import McapWriterThread
from oculus_server.threads.recorder import EpisodeStart, EpisodeStop, LiveTick, RecorderThread
from tests.test_threads_recorder import _drain, _robot
from vla_server.arena.scene import physics_model


class FakeLive:
    """What the writer thread needs of the live sink: `wanted` and `offer`."""

    def __init__(self, wanted: bool = True) -> None:
        self.wanted = wanted
        self.batches: list[list] = []

    def offer(self, messages) -> None:
        self.batches.append(list(messages))


def _sim_state(blob: str = "x") -> SimStateSample:
    return SimStateSample(1.0, 500, time.time(), "00", blob)


def test_between_episodes_ticks_are_built_only_for_a_subscribed_viewer():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=1000)
    watching = [False]
    rec = RecorderThread(q, sv, st, hz=100.0, live_wanted=lambda: watching[0])
    _robot(st)
    rec.step()
    assert _drain(q) == []  # nobody watches: nothing built
    watching[0] = True
    st.set_sim_state(_sim_state())
    st.add_event("error", "disk trouble")
    rec.step()
    rec.step()
    items = _drain(q)
    assert [type(i) for i in items] == [LiveTick, LiveTick]
    assert items[0].tick.sim_state is not None and items[1].tick.sim_state is None  # each new state once
    assert [e.kind for e in items[0].tick.events] == ["error"]
    st.request_episode("start")
    rec.step()
    items = _drain(q)
    ticks = [i for i in items if isinstance(i, RecordTick)]
    assert isinstance(items[0], EpisodeStart)
    assert ticks[0].sim_state is not None  # the live view only looked at it: the episode still gets it
    assert "error" in [e.kind for e in ticks[0].events]  # idle errors still reach the episode


def test_live_ticks_leave_room_for_an_episode_and_are_counted_when_dropped():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=210)
    rec = RecorderThread(q, sv, st, hz=100.0, live_wanted=lambda: True)
    _robot(st)
    for _ in range(20):
        rec.step()
    assert q.qsize() == 10  # 200 slots stay free for an episode
    assert st.counters()["live_ticks_dropped"] == 10


def _writer_thread(tmp_path: Path, live: FakeLive) -> tuple[queue.Queue, McapWriterThread, Supervisor]:
    q: queue.Queue = queue.Queue(maxsize=1000)
    sv = Supervisor()
    t = McapWriterThread(q, sv, SharedState(), tmp_path, lambda p, m: EpisodeWriter(p, m), live=live)  # type: ignore[arg-type]
    t.start()
    return q, t, sv


def _settle(q: queue.Queue) -> None:
    end = time.monotonic() + 10
    while not q.empty() and time.monotonic() < end:
        time.sleep(0.02)
    time.sleep(0.2)


def test_the_writer_thread_maps_live_ticks_for_a_viewer_and_taps_episodes_with_the_files_bytes(tmp_path):
    live = FakeLive(wanted=False)
    q, thread, sv = _writer_thread(tmp_path, live)
    ep = SyntheticEpisode(cameras={"front": (64, 48)})
    try:
        q.put(LiveTick(ep.tick(0)))
        _settle(q)
        assert live.batches == []  # nobody watches: not even mapped
        live.wanted = True
        for i in range(1, 4):
            q.put(LiveTick(ep.tick(i)))
        _settle(q)
        assert len(live.batches) == 3 and not list(tmp_path.rglob("*.mcap*"))  # live only: no file
        live.batches.clear()
        q.put(EpisodeStart("ep", time.time()))
        for i in range(4, 44):
            q.put(ep.tick(i))
        q.put(EpisodeStop("success", True))
        _settle(q)
    finally:
        sv.stop.set()
        thread.join(10)
    [path] = list(tmp_path.rglob("*.mcap"))
    with open(path, "rb") as f:
        in_file = [(c.topic, m.data) for _s, c, m in make_reader(f).iter_messages(log_time_order=False)]
    offered = [(m.topic, m.data) for b in live.batches for m in b]
    assert sorted(offered) == sorted(in_file)  # one mapping, both sinks


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
    code = ("import sys, oculus_server.recording.scene, oculus_server.recording.live, "
            "oculus_server.threads.live_sink; assert 'mujoco' not in sys.modules, 'mujoco imported'")
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
