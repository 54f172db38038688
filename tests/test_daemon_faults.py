"""The whole daemon under recording and robot faults: teleop goes on, the exit code says so.

Real threads, a real robot server on loopback, real files; folder faults with ``chattr +i``.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from oculus_server.daemon import Daemon
from oculus_server.threads.cpu_weight import own_weight
from oculus_server.vr import make_source
from robot_formats.recording.records import RecordTick
from robot_formats.recording.schemas import TOPIC_EVENTS
from robot_formats.recording.writer import EpisodeWriter
from tests.daemon_fakes import daemon_config, finished_files, read_episode, wait_for
from tests.fs_faults import immutable
from tests.recording_checks import validate_json_messages
from tests.robot_fakes import KinematicBackend, free_port_block, start_robot_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_switch_interval():
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


class StalledWriter(EpisodeWriter):
    """An `EpisodeWriter` whose disk stops answering: from its `stall_after`-th tick on, `write`
    blocks (as a hung write(2) would) until `release` is set."""

    def __init__(self, path: Path, meta: dict, release: threading.Event, stalled: threading.Event,
                 stall_after: int = 5) -> None:
        super().__init__(path, meta)
        self.release, self.stalled, self.stall_after, self.ticks = release, stalled, stall_after, 0

    def write(self, tick: RecordTick) -> None:
        self.ticks += 1
        if self.ticks == self.stall_after:
            self.stalled.set()
            self.release.wait()
        super().write(tick)


def test_a_stalled_recording_side_never_blocks_the_control_loop(tmp_path: Path):
    port = free_port_block()
    backend = KinematicBackend()
    server = start_robot_server(backend, port)
    cfg = daemon_config(tmp_path, port, control_hz=40.0)
    release, stalled = threading.Event(), threading.Event()
    daemon = Daemon(cfg, make_source(cfg.vr_source),
                    writer_factory=lambda p, m: StalledWriter(p, m, release, stalled))
    small: queue.Queue = queue.Queue(maxsize=40)  # fills within a second or two of the stall
    daemon.mcap_queue = daemon.recorder.queue = daemon.writer.queue = small
    code = -1
    try:
        daemon.start()
        assert wait_for(stalled.is_set, 20.0), "the writer never got to its stall"
        ticks, sent = daemon.control.stats.ticks, len(backend.actions)
        # The writer stays blocked: the queue fills, the recorder drops (and counts) ticks, and the
        # control loop goes on ticking and commanding the arm.
        assert wait_for(lambda: daemon.state.counters.snapshot()["records_dropped"] > 0
                        and daemon.control.stats.ticks > ticks + 40 and len(backend.actions) > sent + 20, 60.0)
        assert not release.is_set() and daemon.writer.is_alive() and not daemon.stop_event.is_set()
        assert daemon.recorder.is_alive() and daemon.control.is_alive()
    finally:
        release.set()
        code = daemon.shutdown()
        server.stop()
    assert code == 0 and not daemon.supervisor.failures()


def test_a_robot_that_never_answers_is_said_so_and_its_episode_is_no_success(tmp_path: Path, caplog):
    port = free_port_block()  # nothing listens there
    cfg = daemon_config(tmp_path, port, request_timeout_s=0.3)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    daemon.start()
    time.sleep(3.0)  # record-on-start opens the episode after 2 s even without a robot
    daemon.state.episode.request("success")
    time.sleep(0.2)
    code = daemon.shutdown()
    assert code == 1
    assert f"the robot at 127.0.0.1:{port} never answered" in caplog.text
    (path,) = finished_files(tmp_path)
    assert path.parent.name == "failure"
    ep = read_episode(path)
    end = ep.metadata["recording_end"]
    assert end["success"] == "false" and "never answered" in end["reason"] and int(end["errors"]) >= 1
    assert any("never answered" in m.body["message"] for m in ep.topic(TOPIC_EVENTS))


def test_recording_faults_never_stop_teleop_and_make_the_exit_code_non_zero(tmp_path: Path, caplog):
    port = free_port_block()
    backend = KinematicBackend()
    server = start_robot_server(backend, port)
    cfg = daemon_config(tmp_path, port, control_hz=40.0)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    try:
        with immutable(tmp_path / "failure"):
            daemon.start()
            assert wait_for(lambda: bool(list(tmp_path.glob("*.partial"))), 5.0)
            time.sleep(1.5)
            daemon.state.episode.request("stop")  # closes into the immutable failure/
            assert wait_for(lambda: bool(daemon.writer.faults), 5.0)
            sent_at_fault = len(backend.actions)
            assert daemon.writer.is_alive() and not daemon.stop_event.is_set()
            daemon.state.episode.request("start")  # a new episode records normally
            time.sleep(1.5)
            assert len(backend.actions) > sent_at_fault + 10  # teleop went on
            code = daemon.shutdown()  # the second episode cannot be filed either
    finally:
        server.stop()
    assert code == 1 and not daemon.supervisor.failures()
    kept = sorted(tmp_path.glob("*.mcap"))
    assert len(kept) == 2 and [f.path for f in daemon.writer.faults] == kept
    assert all(f"the data is in {k}" in caplog.text for k in kept)
    second = read_episode(kept[1])
    errors = [m.body for m in second.topic(TOPIC_EVENTS) if m.body["kind"] == "error"]
    assert errors and errors[0]["data"]["path"] == str(kept[0])  # the first fault, in the next file
    validate_json_messages(kept[1])  # a real daemon recording matches its own schemas


_NO_MUJOCO = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from oculus_server.config import DaemonConfig
    from oculus_server.daemon import Daemon, recording_metadata
    from oculus_server.vr import make_source
    rec = Path(sys.argv[1])
    for debug in (True, False):
        cfg = DaemonConfig(debug=debug, vr_source="scripted:hold", cameras=(), recordings_dir=str(rec))
        d = Daemon(cfg, make_source(cfg.vr_source))
        w = d._make_writer(rec / f"debug-{debug}.mcap", recording_metadata(cfg, d.source))
        w.close("success")
        if d.sim_scene is not None:
            d.sim_scene.close()
    assert "mujoco" not in sys.modules, "the daemon imported mujoco"
    print("OK")
""")


@pytest.mark.slow
def test_the_sim_scene_is_attached_without_mujoco_in_the_daemon_and_never_for_a_real_arm(tmp_path: Path):
    from mcap.reader import make_reader

    out = subprocess.run([sys.executable, "-c", _NO_MUJOCO, str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr

    def attachments_and_meta(path: Path):
        with open(path, "rb") as f:
            r = make_reader(f)
            return [a.name for a in r.iter_attachments()], {m.name: dict(m.metadata) for m in r.iter_metadata()}

    sim_att, sim_meta = attachments_and_meta(tmp_path / "debug-True.mcap")
    real_att, real_meta = attachments_and_meta(tmp_path / "debug-False.mcap")
    assert sim_att == ["panda_scene.xml"] and real_att == []
    assert '"wrist"' in sim_meta["recording_start"]["cameras"] and "cameras" not in real_meta["recording_start"]
    config = json.loads(sim_meta["recording_start"]["config"])  # JSON, not a YAML string inside JSON
    assert config["debug"] is True and config["cameras"] == [] and isinstance(config["policy"], dict)


def test_without_real_time_scheduling_the_daemon_says_once_what_it_means_and_how_to_fix_it(tmp_path: Path, caplog):
    port = free_port_block()
    server = start_robot_server(KinematicBackend(), port)
    cfg = daemon_config(tmp_path, port, realtime_priority=0)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    try:
        daemon.start()
        assert wait_for(lambda: bool(list(tmp_path.glob("*.partial"))), 10.0)
        time.sleep(0.5)
    finally:
        daemon.shutdown()
        server.stop()
    said = [r.message for r in caplog.records if "no real-time scheduling" in r.message]
    assert len(said) == 1 and "realtime_priority is 0" in said[0] and "tens of ms" in said[0]
    (path,) = finished_files(tmp_path)
    bodies = [m.body for m in read_episode(path).topic(TOPIC_EVENTS)]
    assert [b["kind"] for b in bodies].count("scheduling") == 1  # in the recording too
    (sched,) = [b for b in bodies if b["kind"] == "scheduling"]
    assert sched["data"]["cpu_weight"] == own_weight()  # the cgroup's weight, as this machine has it
