"""Starting arena episodes from teleop recordings: the simulator publishes its state blob, the daemon
records it on /sim/state, and `--from-recording FILE --at SECONDS` hands that moment to a policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zmq

from frankateach.network import sub_socket
from frankateach.sim import state_blob as SB
from frankateach.sim.server import start_sim_server
from frankateach.sim.state_message import SimStateSample, decode_sim_state
from robot_formats.recording import schemas as S
from robot_formats.recording.reader import RecordingReader
from robot_formats.recording.records import ControlMode, RecordTick
from robot_formats.recording.writer import EpisodeWriter
from tests.arena_fakes import TestProvider
from tests.daemon_fakes import record_debug_episode
from tests.robot_fakes import free_port_block
from vla_server.arena.blob import blob_summary
from vla_server.arena.cli import main as arena_main
from vla_server.arena.config import EpisodeSpec
from vla_server.arena.episode import run_episode
from vla_server.arena.recording_start import RecordingStartError, start_from_recording
from vla_server.arena.runtime import spec_with_start
from vla_server.arena.scene import ArenaScene

ROOT = Path(__file__).resolve().parents[1]


def receive_sample(port: int, timeout_s: float = 10.0) -> SimStateSample:
    sock = sub_socket("127.0.0.1", port)
    try:
        if not sock.poll(int(timeout_s * 1000)):
            raise AssertionError(f"no simulator state on port {port} within {timeout_s} s")
        return decode_sim_state(sock.recv(zmq.NOBLOCK))
    finally:
        sock.close(linger=0)


def test_running_simulator_publishes_blobs_the_arena_continues() -> None:
    port = free_port_block(1)
    sim = start_sim_server(cameras=False, sim_state_port=port, sim_state_period_s=0.2)
    try:
        first = receive_sample(port)
        later = receive_sample(port)
    finally:
        sim.stop()
    assert later.physics_step > first.physics_step and later.sim_time > first.sim_time
    scene = ArenaScene()
    assert later.scene_hash == scene.scene_hash.hex()
    snap = SB.decode(later.blob)
    scene.restore(snap)
    assert scene.step_count == later.physics_step and scene.time == pytest.approx(later.sim_time)
    p = TestProvider()
    spec = EpisodeSpec(model="reach", instruction="pick up the red cube", steps=5, width=64, height=48,
                       video=False, trajectory=False, start_blob=later.blob)
    a = run_episode(spec, p.policy("reach"), p.spec("reach"))
    b = run_episode(spec, p.policy("reach"), p.spec("reach"))
    assert a.final_blob == b.final_blob and a.metrics["start_sim_time_s"] == pytest.approx(later.sim_time)


def write_recording(path: Path, blobs: list[tuple[float, str]]) -> Path:
    """A recording with ticks every 0.1 s for 3 s and a /sim/state sample at each (t, blob)."""
    w = EpisodeWriter(path, {"task": "stack the red cube"})
    t0 = 1_700_000_000.0
    pending = sorted(blobs)
    for i in range(31):
        t = i * 0.1
        st = None
        if pending and pending[0][0] <= t + 1e-9:
            bt, blob = pending.pop(0)
            st = SimStateSample(sim_time=10.0 + bt, physics_step=int((10.0 + bt) * 500), wall_time=t0 + bt,
                                scene_hash="00", blob=blob)
        w.write(RecordTick(seq=i, t_mono=t, t_wall=t0 + t, vr=None, robot=None, command=None,
                           mode=ControlMode.REAL_TIME, sim_state=st))
    return w.close("success")


def test_at_picks_the_newest_blob_at_or_before_the_time(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "demo.mcap", [(0.0, "AAAA"), (1.0, "BBBB"), (2.0, "CCCC")])
    with RecordingReader(path) as r:
        assert r.topic_counts()[S.TOPIC_SIM_STATE] == 3
        assert r.channels()[S.TOPIC_SIM_STATE][1].name == "teleop.SimState"
    got = start_from_recording(path, 1.5)
    assert got.blob == "BBBB" and got.blob_at_s == pytest.approx(1.0) and got.sim_time_s == pytest.approx(11.0)
    assert got.task == "stack the red cube"
    assert start_from_recording(path, 2.0).blob == "CCCC"
    assert start_from_recording(path, 99).blob == "CCCC"
    late = write_recording(tmp_path / "late.mcap", [(1.0, "BBBB")])
    with pytest.raises(RecordingStartError, match=r"no simulator state at or before 0.500 s; the first is at 1.000 s"):
        start_from_recording(late, 0.5)
    none = write_recording(tmp_path / "none.mcap", [])
    with pytest.raises(RecordingStartError, match="has no simulator state"):
        start_from_recording(none, 1.0)
    with pytest.raises(RecordingStartError, match="not a finished MCAP recording"):
        (tmp_path / "junk.mcap").write_bytes(b"junk")
        start_from_recording(tmp_path / "junk.mcap", 1.0)
    spec = EpisodeSpec(model="m", instruction="x")
    with pytest.raises(ValueError, match="not both"):
        spec_with_start(EpisodeSpec(model="m", instruction="x", start_blob="B"), path, 1.0)
    with pytest.raises(ValueError, match="needs a time"):
        spec_with_start(spec, path, None)


@pytest.mark.slow
def test_debug_recording_starts_an_arena_episode(tmp_path: Path) -> None:
    """`oculus-server --debug` records /sim/state; `vla-arena run --from-recording --at` continues it."""
    path = record_debug_episode(tmp_path)
    with RecordingReader(path) as r:
        n = r.topic_counts().get(S.TOPIC_SIM_STATE, 0)
        samples = [m for _, _, _, _, m in r.messages([S.TOPIC_SIM_STATE])]
    assert n >= 2, f"expected about one /sim/state per second, got {n}"
    steps = [s["physics_step"] for s in samples]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    start = start_from_recording(path, 2.0)
    assert blob_summary(start.blob)["made_by"] == "simulator"
    data = tmp_path / "arena"
    argv = ["--data", str(data), "--provider", "tests.arena_fakes:TestProvider", "run", "--model", "reach",
            "--instruction", "pick up the red cube", "--steps", "6", "--width", "64", "--height", "48",
            "--from-recording", str(path), "--at", "2.0", "--json"]
    assert arena_main(argv) == 0
    ep_dir = next((data / "episodes").iterdir())
    started = SB.decode((ep_dir / "start.blob").read_text())
    recorded = SB.decode(start.blob)
    assert started.physics_step == recorded.physics_step
    assert np.array_equal(started.state, recorded.state)
