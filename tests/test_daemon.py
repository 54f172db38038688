"""The whole daemon in-process: real threads, a real robot server on loopback, real MCAP files.

Each test runs the `Daemon` for a few seconds against a `KinematicBackend` served by a real
`RobotServer`, then reads the episode back with the official `mcap` reader. Timing figures are
checked only with generous bounds (the machine is small and shared); see the printed values.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from frankateach.messages import CameraFrame, encode_camera_frame
from frankateach.network import Publisher
from oculus_server.daemon import Daemon
from oculus_server.threads.writer_process import WriterProcessThread
from oculus_server.vr import make_source
from robot_formats.recording.records import ControlMode
from robot_formats.recording.schemas import TOPIC_EE_POSE, TOPIC_EVENTS, TOPIC_MODE
from tests.daemon_fakes import (
    FailingSource,
    LoggingBackend,
    daemon_config,
    finished_files,
    read_episode,
    threads,
    wait_for,
)
from tests.robot_fakes import KinematicBackend, free_port_block, start_robot_server


@pytest.fixture(autouse=True)
def _restore_switch_interval():
    """`Daemon.start` lowers the interpreter's switch interval; give the next test the default."""
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


@pytest.fixture
def robot():
    """A kinematic robot (logging every state it reports) served on a free loopback port."""
    port = free_port_block()
    backend = LoggingBackend()
    servers = [start_robot_server(backend, port)]
    yield port, backend, servers
    for s in servers:
        s.stop()


def _run_for(daemon: Daemon, seconds: float) -> int:
    daemon.start()
    time.sleep(seconds)
    daemon.stop_event.set()
    return daemon.shutdown()


def _pos(msg) -> np.ndarray:
    p = msg.body.pose.position
    return np.array([p.x, p.y, p.z])


def test_daemon_records_a_valid_episode_and_drives_the_robot(tmp_path: Path, robot):
    port, backend, _ = robot
    cfg = daemon_config(tmp_path, port, control_hz=40.0)
    daemon = Daemon(cfg, make_source(cfg.vr_source))

    code = _run_for(daemon, 3.0)

    assert code == 0, [f.error for f in daemon.supervisor.failures()]
    assert not any(t.is_alive() for t in daemon.threads)
    files = finished_files(tmp_path)
    assert [f.parent.name for f in files] == ["failure"]  # no success press in scripted:circle
    assert not list(tmp_path.glob("*.partial"))
    ep = read_episode(files[0])
    assert ep.has_summary

    mode = ep.topic(TOPIC_MODE)
    seqs = [m.sequence for m in mode]
    assert seqs == list(range(len(seqs))), "record ticks must be contiguous (no drop)"
    span_s = (mode[-1].log_ns - mode[0].log_ns) / 1e9
    hz = (len(mode) - 1) / span_s
    print(f"recorded {len(mode)} ticks over {span_s:.2f} s: {hz:.2f} Hz")
    assert span_s > 2.0 and 30.0 <= hz <= 48.0

    ee = ep.topic(TOPIC_EE_POSE)
    assert len(ee) >= 20

    # The robot was driven: commands arrived and the arm moved (circle of 8 cm radius).
    assert len(backend.actions) >= 10
    sent = np.array([a.pos for a in backend.actions])
    assert np.ptp(sent, axis=0).max() > 0.01
    recorded = np.array([_pos(m) for m in ee])
    assert np.ptp(recorded, axis=0).max() > 0.01

    start, end = ep.metadata["recording_start"], ep.metadata["recording_end"]
    assert "scripted:circle" in start["vr_source"] and "control=40.0" in start["rates_hz"]
    assert end["outcome"] == "shutdown" and end["success"] == "false"
    assert int(end["ticks_last_seq"]) == seqs[-1]
    assert daemon.writer.saved == files
    # No cameras configured: no camera loop, so none is shown or recorded as a dead thread.
    assert set(daemon.state.rates.snapshot()) == {"vr", "control", "robot", "recording"}
    assert "cameras" not in json.loads(end["achieved_rates"])


def test_predictive_mode_while_the_robot_is_slow_and_back_to_real_time(tmp_path: Path, robot):
    port, backend, servers = robot
    servers[0].latency_s = 0.15  # deoxys-like round trip for each command
    cfg = daemon_config(tmp_path, port, control_hz=40.0)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    state = daemon.state
    daemon.start()
    try:
        def predictive_engaged() -> bool:
            cmd = state.commands.command()
            return state.commands.mode() is ControlMode.PREDICTIVE and cmd is not None and cmd.engaged

        assert wait_for(predictive_engaged, 8.0), "no PREDICTIVE step while engaged with a 150 ms robot"
        time.sleep(0.5)
        servers[0].latency_s = 0.0

        streak = {"since": None}

        def real_time_for_half_a_second() -> bool:
            if state.commands.mode() is not ControlMode.REAL_TIME:
                streak["since"] = None
                return False
            streak["since"] = streak["since"] or time.monotonic()
            return time.monotonic() - streak["since"] >= 0.5

        assert wait_for(real_time_for_half_a_second, 8.0), "mode did not settle back to REAL-TIME"
    finally:
        daemon.stop_event.set()
        code = daemon.shutdown()
    assert code == 0

    (path,) = finished_files(tmp_path)
    ep = read_episode(path)
    mode = ep.topic(TOPIC_MODE)
    counts = Counter(m.body["mode"] for m in mode)
    print(f"recorded modes: {dict(counts)}")
    assert counts["PREDICTIVE"] > 0 and counts["REAL-TIME"] > 0
    assert any(m.body["mode"] == "PREDICTIVE" and m.body["engaged"] for m in mode)
    assert mode[-1].body["mode"] == "REAL-TIME"

    # Measured poses come from robot replies only, never from the predicted target: every
    # /robot/ee_pose matches (timestamp and position) a state the robot actually reported.
    reported = {round(s.timestamp * 1e9): np.asarray(s.pos) for s in backend.reported_states()}
    ee = ep.topic(TOPIC_EE_POSE)
    assert len(ee) >= 10
    for m in ee:
        assert m.publish_ns in reported, "an /robot/ee_pose that the robot never reported"
        np.testing.assert_allclose(_pos(m), reported[m.publish_ns], atol=1e-9)


def test_a_failing_thread_stops_the_daemon_with_exit_1_and_a_finalized_file(tmp_path: Path, robot):
    port, _, _ = robot
    cfg = daemon_config(tmp_path, port, duration=20.0)
    source = FailingSource(make_source(cfg.vr_source), fail_after_s=1.5, message="headset exploded")
    daemon = Daemon(cfg, source)

    t0 = time.monotonic()
    code = daemon.run()
    elapsed = time.monotonic() - t0

    print(f"daemon stopped {elapsed:.2f} s after start (source fails at 1.5 s)")
    assert code == 1
    assert elapsed < 10.0  # stopped by the failure, not by the 20 s duration
    (failure,) = daemon.supervisor.failures()
    assert failure.thread == "vr" and "RuntimeError: headset exploded" in failure.error
    assert "Traceback" in failure.traceback
    assert not any(t.is_alive() for t in daemon.threads)
    assert source.samples > 0 and source.closed  # ran, then the VR thread's cleanup closed it

    (path,) = finished_files(tmp_path)
    ep = read_episode(path)
    assert ep.has_summary
    end = ep.metadata["recording_end"]
    assert end["outcome"] == "shutdown"
    assert "vr" in end["ended_by"] and "headset exploded" in end["ended_by"]
    assert "headset exploded" in end["last_error"]
    errors = [m.body for m in ep.topic(TOPIC_EVENTS) if m.body["kind"] == "error"]
    assert any("headset exploded" in e["message"] for e in errors)


def test_robot_server_lost_and_restarted_while_recording(tmp_path: Path, robot):
    port, _, servers = robot
    cfg = daemon_config(tmp_path, port, control_hz=40.0, request_timeout_s=0.3)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    state = daemon.state
    daemon.start()
    try:
        assert wait_for(lambda: state.robot.link().up and daemon.recorder.open, 5.0)
        time.sleep(1.5)  # engaged (grip from 1 s)
        servers.pop().stop()
        t_lost = time.monotonic()
        assert wait_for(lambda: not state.robot.link().up, 5.0), "link still up after the server stopped"
        print(f"link down seen {time.monotonic() - t_lost:.2f} s after the server stopped")
        link = state.robot.link()
        assert link.failures >= 1 and link.last_error
        seq_down = daemon.recorder.seq
        time.sleep(1.0)
        assert daemon.recorder.seq >= seq_down + 20, "recording stalled while the robot was away"
        assert not daemon.stop_event.is_set()

        new_backend = KinematicBackend(pos=(0.5, 0.1, 0.25))
        servers.append(start_robot_server(new_backend, port))
        t_back = time.monotonic()
        assert wait_for(lambda: state.robot.link().up, 10.0), "link did not come back"
        print(f"link up {time.monotonic() - t_back:.2f} s after the server restarted")
        assert wait_for(lambda: len(new_backend.actions) >= 10, 5.0), "no commands after the link returned"
    finally:
        daemon.stop_event.set()
        code = daemon.shutdown()
    assert code == 0, [f.error for f in daemon.supervisor.failures()]

    # No lunge: the policy re-anchored on the new robot's pose instead of jumping to old targets.
    # The first target is the new pose itself; the next ones follow the hand from there
    # (8 cm circle at ~13 cm/s: ~3 cm in 10 steps), not toward the pre-loss anchor 12 cm away.
    away = [np.linalg.norm(np.asarray(a.pos) - [0.5, 0.1, 0.25]) for a in new_backend.actions[:10]]
    print(f"targets after restore, cm from the new pose: {np.round(np.array(away) * 100, 1)}")
    assert away[0] < 0.01 and max(away) < 0.06

    (path,) = finished_files(tmp_path)
    ep = read_episode(path)
    assert ep.has_summary
    seqs = [m.sequence for m in ep.topic(TOPIC_MODE)]
    assert seqs == list(range(len(seqs)))
    link_events = [m.body for m in ep.topic(TOPIC_EVENTS) if m.body["kind"] == "robot_link"]
    messages = [e["message"] for e in link_events]
    assert any("down" in m for m in messages) and any("restored" in m for m in messages)
    assert [e["data"]["up"] for e in link_events][:2] == [False, True]


def test_no_recording_runs_and_writes_nothing(tmp_path: Path, robot):
    port, backend, _ = robot
    rec_dir = tmp_path / "recordings"
    cfg = daemon_config(rec_dir, port, record=False)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    daemon.start()
    try:
        time.sleep(1.0)
        daemon.state.episode.request("start")  # an A press is ignored too
        time.sleep(1.0)
    finally:
        daemon.stop_event.set()
        code = daemon.shutdown()
    assert code == 0
    assert not daemon.recorder.open and daemon.writer.saved == []
    assert not daemon.state.episode.status().active
    assert not rec_dir.exists() or not any(rec_dir.rglob("*"))
    assert len(backend.actions) > 0  # teleoperation itself ran


def _jpeg(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 20)).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def test_camera_frames_reach_the_recording_and_bad_frames_are_counted(tmp_path: Path, robot):
    port, _, _ = robot
    cam_offset = free_port_block(1)
    cfg = daemon_config(tmp_path, port, cameras=(0,), camera_port_offset=cam_offset)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    pub = Publisher("127.0.0.1", cam_offset + 0, hwm=16)
    jpeg = _jpeg(64, 48)
    stop = threading.Event()
    published: list[int] = []

    def camera() -> None:  # a 20 Hz camera; every 10th tick sends garbage instead of a frame
        seq, k = 0, 0
        while not stop.wait(0.05):
            k += 1
            if k % 10 == 5:  # alone in its tick: the SUB socket conflates to the newest message
                pub.publish(b"\x00not a frame")
                continue
            pub.publish(encode_camera_frame(CameraFrame(0, "front", seq, time.time(), 64, 48, jpeg)))
            published.append(seq)
            seq += 1

    cam = threading.Thread(target=camera, daemon=True)
    cam.start()
    try:
        code = _run_for(daemon, 2.5)
    finally:
        stop.set()
        cam.join(2.0)
        pub.close()
    assert code == 0
    counters = daemon.state.counters.snapshot()
    print(f"camera: published {len(published)}, received {counters['camera_frames']}, bad {counters['camera_errors']}")
    assert counters["camera_frames"] >= 10 and counters["camera_errors"] >= 1
    assert "cameras" in daemon.state.rates.snapshot()

    (path,) = finished_files(tmp_path)
    ep = read_episode(path)
    images = ep.topic("/camera/front/image")
    assert len(images) >= 10
    seqs = [m.sequence for m in images]
    assert seqs == sorted(set(seqs)) and set(seqs) <= set(published)  # frame counters, in order
    assert all(m.body.data == jpeg and m.body.format == "jpeg" for m in images)  # bytes as sent
    assert ep.topic("/camera/front/calibration")


def test_debug_names_franka_teach_camera_frames_as_the_simulator_does(tmp_path: Path, robot):
    """Franka-Teach's frames carry no name: under --debug camera i is the simulator's SIM_CAMERAS[i]
    (so a pickle-mode simulator records /camera/front like a msgpack one), else cam_<id>."""
    from frankateach.camera_format import encode_franka_teach_frame
    from robot_formats.recording.writer import EpisodeWriter

    port, _, _ = robot
    cam_offset = free_port_block(2)
    cfg = daemon_config(tmp_path, port, cameras=(0, 1), camera_port_offset=cam_offset, debug=True)
    daemon = Daemon(cfg, make_source(cfg.vr_source), writer_factory=lambda path, meta: EpisodeWriter(path, meta))
    pubs = [Publisher("127.0.0.1", cam_offset + i, hwm=16) for i in (0, 1)]
    jpeg = _jpeg(64, 48)
    stop = threading.Event()

    def cameras() -> None:
        while not stop.wait(0.05):
            for p in pubs:
                p.publish(encode_franka_teach_frame(jpeg, time.time()))

    cam = threading.Thread(target=cameras, daemon=True)
    cam.start()
    try:
        code = _run_for(daemon, 2.0)
    finally:
        stop.set()
        cam.join(2.0)
        for p in pubs:
            p.close()
    assert code == 0
    (path,) = finished_files(tmp_path)
    ep = read_episode(path)
    assert len(ep.topic("/camera/front/image")) >= 5 and len(ep.topic("/camera/wrist/image")) >= 5
    assert not [m for m in ep.messages if m.topic.startswith("/camera/cam_")]
    plain = Daemon(daemon_config(tmp_path / "plain", port, cameras=(0,)), make_source(cfg.vr_source))
    assert plain.cameras is not None and plain.cameras.decoders[0].name == "cam_0"


def test_without_realtime_every_time_keeping_loop_runs_with_the_configured_slice(tmp_path: Path, robot):
    from tests.test_realtime import kernel_slice_ns

    port, _backend, _ = robot
    cfg = daemon_config(tmp_path, port, control_hz=40.0, loop_slice_ms=0.3)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    daemon.start()
    try:
        assert wait_for(lambda: all(t.short_slice for t in daemon.timekeepers), 5.0)
        if kernel_slice_ns(threading.get_native_id()) is not None:
            assert {kernel_slice_ns(t.native_id) for t in daemon.timekeepers} == {300_000}
        assert not daemon.writer.short_slice  # only the loops that keep time
    finally:
        daemon.stop_event.set()
        assert daemon.shutdown() == 0


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_without_realtime_the_control_recording_and_vr_ticks_are_waited_for_on_two_cpus(tmp_path: Path, robot):
    port, _backend, _ = robot
    cfg = daemon_config(tmp_path, port, control_hz=40.0)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    daemon.start()
    try:
        loops = (daemon.control, daemon.recorder, daemon.vr)
        assert wait_for(lambda: all(t.wakers is not None and t.ticker.ticks > 40 for t in loops), 5.0)
        names = dict(threads())
        for t in loops:
            assert len(t.waker_cpus) == 2 and t.waker_cpus[0] != t.waker_cpus[1]
            assert os.sched_getaffinity(t.native_id) == {t.waker_cpus[0]}
            assert os.sched_getaffinity(names[f"{t.name}-2"]) == {t.waker_cpus[1]}
        assert wait_for(lambda: daemon.recorder.seq > 40, 5.0)
    finally:
        daemon.stop_event.set()
        assert daemon.shutdown() == 0
    for t in loops:
        assert sum(t.wakers.taken.values()) == t.ticker.ticks  # every tick taken once, by one of the two
    (path,) = finished_files(tmp_path)
    ep = read_episode(path)
    seqs = [m.sequence for m in ep.topic(TOPIC_MODE)]
    assert seqs == list(range(len(seqs))) and len(seqs) > 40  # no recording tick lost
    (sched,) = [b for m in ep.topic(TOPIC_EVENTS) for b in [m.body] if b["kind"] == "scheduling"]
    assert sched["data"]["wakers"] == {"control": 2, "recording": 2, "vr": 2}
    assert "is waited for on 2 CPUs" in sched["message"]


def test_with_loop_wakers_1_every_loop_keeps_one_thread(tmp_path: Path, robot):
    port, _backend, _ = robot
    cfg = daemon_config(tmp_path, port, control_hz=40.0, loop_wakers=1)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    daemon.start()
    try:
        assert wait_for(lambda: daemon.recorder.ticker.ticks > 10, 5.0)
        assert not set(dict(threads())) & {"control-2", "recording-2", "vr-2"}
        assert all(t.wakers is None for t in (daemon.control, daemon.recorder, daemon.vr))
    finally:
        daemon.stop_event.set()
        assert daemon.shutdown() == 0


def test_the_recording_process_is_up_before_any_loop_runs(tmp_path: Path, robot):
    """Its start-up (imports: about a second of CPU) must not compete with the loops' first ticks."""
    port, _backend, _ = robot
    cfg = daemon_config(tmp_path, port, control_hz=40.0)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    daemon.start()
    try:
        assert isinstance(daemon.writer, WriterProcessThread)
        assert daemon.writer.wait_started(0.0)  # already: start() waited for it
        assert daemon.writer.proc is not None and daemon.writer.proc.is_alive()
    finally:
        daemon.stop_event.set()
        assert daemon.shutdown() == 0
