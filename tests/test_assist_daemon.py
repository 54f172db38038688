"""VLA assist in the daemon, end to end and at build time.

Slow runs of ``python -m oculus_server.cli --debug`` as real processes (MuJoCo simulator child,
rendered front camera, the inference service running color-reach):

* drive mode with the scripted operator holding the deadman still (``scripted:hold``): the
  gripper reaches the red cube within 3 cm in under 20 s — read back from the recording: the
  grasp point from ``/robot/ee_pose``, the cube from the simulator's own state blobs
  (``/sim/state``), the policy at α = 1 on ``/assist/blend``;
* the default weight with the operator drawing circles while the service (``vla-server serve``,
  started by the test) is SIGKILLed and restarted on its port: the blend is recorded, the
  operator still drives, α is 0 within 2 control periods of the kill, the daemon reconnects.

Fast: with assist off the daemon builds exactly the threads it did before; with assist on it
builds the assist thread and the control thread's blender.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from frankateach.sim import state_blob as SB
from oculus_server.daemon import Daemon
from oculus_server.errors import ConfigError
from oculus_server.vr import make_source
from robot_formats.recording import schemas as S
from robot_formats.recording.reader import RecordingReader
from tests.daemon_fakes import daemon_config, finished_files, wait_for
from tests.recording_checks import validate_json_messages
from tests.robot_fakes import free_port_block

ROOT = Path(__file__).resolve().parent.parent
REACH_M = 0.03
INSTRUCTION = "pick up the red cube"


# -- build time ------------------------------------------------------------------------------------

def test_assist_off_builds_the_same_threads_as_before(tmp_path: Path) -> None:
    d = Daemon(daemon_config(tmp_path, 18901), make_source("scripted:hold"))
    names = [t.name for t in d.loop_threads]
    assert "assist" not in names and names[:4] == ["vr", "control", "robot", "recording"]
    assert d.assist is None and d.blender is None and d.control.assist is None and d.assist_cfg is None


def test_assist_on_adds_the_assist_thread_and_the_blender(tmp_path: Path) -> None:
    cfg = daemon_config(tmp_path, 18901, assist={"model": "color-reach", "instruction": INSTRUCTION,
                                                 "url": "ws://127.0.0.1:1/v1/stream", "key": "k", "weight": 0.4})
    d = Daemon(cfg, make_source("scripted:hold"))
    assert d.loop_threads[-1] is d.assist and d.assist is not None and d.assist.name == "assist"
    assert d.control.assist is d.blender and d.blender is not None and d.blender.cfg.weight == 0.4
    assert d.assist.url == "ws://127.0.0.1:1/v1/stream" and d.assist.rebase
    assert d.blender.channel is d.state.assist
    assert d.cfg.to_dict()["assist"]["key"] == "<set>"
    with pytest.raises(ConfigError, match="no inference service URL"):
        Daemon(daemon_config(tmp_path, 18901, debug=True, assist={"model": "color-reach", "instruction": "x"}),
               make_source("scripted:hold"))


# -- end to end ------------------------------------------------------------------------------------

def _grasp_points(r: RecordingReader) -> tuple[np.ndarray, np.ndarray]:
    """(log times s, (n, 3) points between the finger pads) from the measured TCP poses."""
    from vla_server.arena.config import GRASP_POINT_OFFSET_M

    t, pts = [], []
    for _, log_ns, _, _, m in r.messages([S.TOPIC_EE_POSE]):
        p, q = m.pose.position, m.pose.orientation
        rot = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
        t.append(log_ns / 1e9)
        pts.append(np.array([p.x, p.y, p.z]) + GRASP_POINT_OFFSET_M * rot[:, 2])
    return np.array(t), np.array(pts)


def _cube(r: RecordingReader, name: str) -> np.ndarray:
    """The cube's centre in the simulator's first state blob of the recording (base frame, m)."""
    from vla_server.arena.scene import ArenaScene

    blob = next(m["blob"] for _, _, _, _, m in r.messages([S.TOPIC_SIM_STATE]))
    scene = ArenaScene()
    scene.restore(SB.decode(blob))
    return scene.kinematics(update_ref=False).cubes[name]


def _run_daemon(tmp_path: Path, *extra: str, duration: float) -> tuple[subprocess.Popen, Path, Path, int]:
    port = free_port_block(4) + 1  # sim: state P-1, control P, commanded P+1, sim state shifted with P
    cams = free_port_block(2)
    cfg = tmp_path / "daemon.yaml"
    cfg.write_text(f"cameras: [0]\ncamera_port_offset: {cams}\nrealtime_priority: 0\n")
    rec = tmp_path / "rec"
    log_path = tmp_path / "daemon.log"
    argv = [sys.executable, "-m", "oculus_server.cli", "--config", str(cfg), "--debug", "--no-dashboard",
            "--robot-port", str(port), "--recordings-dir", str(rec), "--record-on-start",
            "--duration", str(duration), "--instruction", INSTRUCTION, *extra]
    env = dict(os.environ, MUJOCO_GL="egl", PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    return proc, rec, log_path, port


@pytest.mark.slow
def test_drive_mode_with_a_still_operator_the_gripper_reaches_the_named_cube(tmp_path: Path) -> None:
    proc, rec, log_path, _ = _run_daemon(tmp_path, "--vr-source", "scripted:hold", "--assist", "color-reach",
                                         "--assist-mode", "drive", duration=22.0)
    try:
        assert proc.wait(120) == 0, log_path.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    (path,) = finished_files(rec)
    checked = validate_json_messages(path)
    assert checked[S.TOPIC_ASSIST_BLEND] > 200 and checked[S.TOPIC_ASSIST_ACTION] > 100
    with RecordingReader(path) as r:
        t, grasp = _grasp_points(r)
        cube = _cube(r, "red_cube")
        blends = [(log / 1e9, m) for _, log, _, _, m in r.messages([S.TOPIC_ASSIST_BLEND])]
        start = r.start_ns / 1e9
        events = [m["message"] for _, _, _, _, m in r.messages([S.TOPIC_EVENTS]) if m["kind"] == "assist"]
    dist = np.linalg.norm(grasp - cube, axis=1)
    assert dist[0] > 0.15  # it starts far from the cube (home pose)
    reached = np.flatnonzero(dist <= REACH_M)
    assert reached.size, f"closest approach {dist.min():.3f} m"
    t_reach = t[reached[0]] - start
    assert t_reach < 20.0, f"reached after {t_reach:.1f} s"
    print(f"reached the red cube within {REACH_M} m after {t_reach:.1f} s (closest {dist.min() * 100:.1f} cm)")
    # the recording shows the policy driving: α = 1 from its ramp until the reach
    driving = [m for tb, m in blends if tb <= t[reached[0]] and m["alpha"] == 1.0]
    assert len(driving) >= 5 and all(m["state"] == "on" and m["engaged"] for m in driving)
    assert any(m.startswith("assist on: the policy moves the arm") for m in events)


def _vla_server(port: int, data: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as logf:
        return subprocess.Popen(
            [sys.executable, "-m", "vla_server.cli", "serve", "--port", str(port), "--no-openpi", "--no-web",
             "--no-arena", "--data-dir", str(data), "--pin", "color-reach", "--log-format", "text"],
            cwd=ROOT, stdout=logf, stderr=logf, env=dict(os.environ, PYTHONUNBUFFERED="1"))


@pytest.mark.slow
def test_blend_is_recorded_the_operator_drives_and_a_killed_service_is_rejoined(tmp_path: Path) -> None:
    from oculus_server.assist.local_service import free_port
    from vla_server.auth.store import KeyStore
    from vla_server.config import load_config

    data, svc_log = tmp_path / "svc", tmp_path / "svc.log"
    key = KeyStore(load_config(None, {"server.data_dir": str(data)}, env={}).keys_db).create("daemon", "pro")[1]
    svc_port = free_port()
    service = _vla_server(svc_port, data, svc_log)
    second: subprocess.Popen | None = None
    url = f"ws://127.0.0.1:{svc_port}/v1/stream"
    proc, rec, log_path, _ = _run_daemon(tmp_path, "--vr-source", "scripted:circle", "--assist", "color-reach",
                                         "--assist-url", url, "--assist-key", key, duration=24.0)
    try:
        assert wait_for(lambda: bool(list(rec.glob("*.mcap.partial"))) or proc.poll() is not None, 90), \
            log_path.read_text()
        assert wait_for(lambda: "assist on: the policy moves the arm" in log_path.read_text()
                        or proc.poll() is not None, 30), log_path.read_text()[-3000:]
        assert proc.poll() is None, log_path.read_text()[-3000:]
        time.sleep(3.0)
        killed = time.time()
        service.send_signal(signal.SIGKILL)
        service.wait(5)
        time.sleep(3.0)  # operator only meanwhile
        restarted = time.time()
        second = _vla_server(svc_port, data, svc_log)
        assert proc.wait(120) == 0, log_path.read_text()[-4000:]
    finally:
        for p in (proc, service, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    (path,) = finished_files(rec)
    validate_json_messages(path)
    period = 1.0 / 20.0
    with RecordingReader(path) as r:
        blends = [m for _, _, _, _, m in r.messages([S.TOPIC_ASSIST_BLEND])]
        ee = np.array([[m.pose.position.x, m.pose.position.y, m.pose.position.z]
                       for _, _, _, _, m in r.messages([S.TOPIC_EE_POSE])])
        events = [(log / 1e9, m["message"]) for _, log, _, _, m in r.messages([S.TOPIC_EVENTS])
                  if m["kind"] == "assist"]

    def t(m: dict) -> float:
        return m["timestamp"]["sec"] + m["timestamp"]["nsec"] / 1e9

    # the blend is recorded: α at the default weight, a = 0.3 policy + 0.7 operator on the motion
    on = [m for m in blends if m["state"] == "on" and m["alpha"] == pytest.approx(0.3)]
    assert len(on) > 40
    for m in on:
        for name in S.ACTION_FIELDS[:6]:
            assert m["blended"][name] == pytest.approx(0.3 * m["policy"][name] + 0.7 * m["operator"][name], abs=1e-9)
        assert m["blended"]["gripper"] == m["operator"]["gripper"]  # never averaged
    # the operator still drives: the arm follows the 16 cm circle
    assert np.ptp(ee[:, 1]) > 0.08, np.ptp(ee, axis=0)
    # killed: operator only within 2 control periods, until the service is back
    reconnected = next((te for te, msg in events if msg.startswith("assist reconnected")), None)
    assert reconnected is not None, (events, svc_log.read_text()[-3000:], log_path.read_text()[-3000:])
    assert restarted < reconnected
    outage = [m for m in blends if killed + 2 * period < t(m) < reconnected]
    assert len(outage) > 40 and all(m["alpha"] == 0.0 for m in outage)
    assert any(msg.startswith("assist link lost") and killed <= te < killed + 1.0 for te, msg in events)
    after = [m for m in blends if t(m) > reconnected and m["state"] == "on"]
    assert after and max(m["alpha"] for m in after) == pytest.approx(0.3)  # blending again
