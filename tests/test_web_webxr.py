"""The WebXR page in headless Chromium, with Meta's WebXR emulation runtime (IWER, npm ``iwer``,
installed by tools/install_iwer.sh into .cache/iwer) standing in for the headset.

The controllers follow the scripted pick-and-place through IWER's API; the daemon's samples must
equal what the scripted source gives for the same trajectory (poses within 1 mm / 0.5°, buttons
identical); closing the page is a link loss; and ``./run_server.sh --debug --vr-source webxr``
prints the URL whose page drives the simulated arm through the pick-and-place.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from oculus_server.vr.scripted import ScriptedSource
from oculus_server.vr.source import SourceState, VRSample
from oculus_server.vr.trajectories import make_pose
from oculus_server.vr.webxr import WebXRSource
from oculus_server.vr.webxr_frames import app_to_grip, matrix_to_quat_pos
from robot_formats.rotations import rot_x, rot_y
from tests.web_browser import browser_missing, make_driver, page_errors, wait_for

ROOT = Path(__file__).resolve().parent.parent
IWER = ROOT / ".cache" / "iwer" / "node_modules" / "iwer" / "build" / "iwer.module.js"
POS_TOL_M = 0.001
ROT_TOL_DEG = 0.5
# The head somewhere in the room, turned and tilted: poses must come out relative to it.
HEAD = make_pose(rot_y(math.radians(25)) @ rot_x(math.radians(-10)), np.array([0.2, 1.6, -0.3]))

_why = browser_missing() or (None if IWER.is_file() else f"{IWER} missing: run tools/install_iwer.sh")
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")

# app button -> (IWER button id, analog?) per side; RThU/LThU: the thumb rests on the thumbrest when False
_BUTTONS = {
    "r": {"rightTrig": "trigger", "rightGrip": "squeeze", "A": "a-button", "B": "b-button", "RJ": "thumbstick"},
    "l": {"leftTrig": "trigger", "leftGrip": "squeeze", "X": "x-button", "Y": "y-button", "LJ": "thumbstick"},
}
_THUMB_UP = {"r": "RThU", "l": "LThU"}
_STICK = {"r": "rightJS", "l": "leftJS"}


def iwer_step(sample: VRSample, head: np.ndarray = HEAD) -> dict[str, Any]:
    """What `__xrEmu.apply` needs to put the emulated headset where `sample` says (grip poses in the room)."""
    hq, hp = matrix_to_quat_pos(head)
    step: dict[str, Any] = {"head": [hp, hq]}
    for side, pose in sample.poses.items():
        q, p = matrix_to_quat_pos(head @ app_to_grip(pose))
        b = sample.buttons
        buttons = {iwer_id: [float(b[name]), False] for name, iwer_id in _BUTTONS[side].items()}
        buttons["thumbrest"] = [0.0, not b[_THUMB_UP[side]]]
        x, y = b[_STICK[side]]  # type: ignore[misc]
        step[side] = {"p": p, "q": q, "buttons": buttons, "stick": [x, -y]}
    return step


def rotation_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def open_page(driver: Any, url: str) -> None:
    page_errors(driver)
    driver.get(url)
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready") == "true", what="page ready")
    wait_for(lambda: driver.execute_script("return document.body.dataset.link") == "connected", what="WebSocket")
    driver.find_element("id", "enter-vr").click()
    wait_for(lambda: driver.execute_script("return document.body.dataset.session") == "immersive-vr",
             what="immersive-vr session")


@pytest.fixture
def driver():
    d = make_driver(800, 600)
    yield d
    d.quit()


def test_samples_equal_the_scripted_source_and_closing_the_page_is_a_link_loss(driver: Any) -> None:
    source = WebXRSource(port=0, emulate=IWER)
    source.start()
    try:
        open_page(driver, source.url)
        clock = [0.0]
        scripted = ScriptedSource("pick_place", rate_hz=100.0, clock=lambda: clock[0])
        scripted.start()
        # rest, A pressed, grip pressed, moving, trigger half / fully closed, carrying, opening, B, A
        times = [0.0, 0.4, 1.0, 1.8, 3.5, 4.5, 4.6, 5.0, 7.0, 9.9, 12.0, 14.0, 14.5, 15.0]
        for t in times:
            clock[0] = t
            expected = scripted.poll()
            assert expected is not None
            driver.execute_script("window.__xrEmu.apply(arguments[0])", iwer_step(expected))
            target = source.status().samples + 3  # frames made after the step was applied
            assert wait_for(lambda n=target: source.status().samples >= n, 10), "no frames from the page"
            got = source.poll()
            assert got is not None
            for side in ("r", "l"):
                err_m = np.linalg.norm(got.poses[side][:3, 3] - expected.poses[side][:3, 3])
                err_deg = rotation_deg(got.poses[side], expected.poses[side])
                assert err_m <= POS_TOL_M and err_deg <= ROT_TOL_DEG, (t, side, err_m, err_deg)
            assert dict(got.buttons) == dict(expected.buttons), t
        assert source.status().state is SourceState.CONNECTED
        # nothing malformed; on a loaded machine a frame may arrive > 100 ms late and is dropped
        assert set(source.status().reject_reasons) <= {"late"}, source.status().reject_reasons
        assert page_errors(driver) == []

        driver.get("about:blank")  # the operator closes the page
        assert wait_for(lambda: source.status().state is SourceState.DISCONNECTED, 10)
        source.poll()
        time.sleep(0.3)
        assert source.poll() is None  # nothing arrives any more: the policy's link-loss hold takes over
    finally:
        source.close()


def _cube_positions(blob: str | bytes) -> dict[str, np.ndarray]:
    """Cube positions (base frame, m) in a recorded simulator state, via the simulator's own model."""
    from frankateach.sim import state_blob
    from frankateach.sim.backend import SimBackend
    from frankateach.sim.model import CUBES, build_model

    backend = SimBackend(build_model(cameras=False))
    state_blob.restore(backend, state_blob.decode(blob))
    return {name: np.asarray(backend.body_position(name)) for name in CUBES}


@pytest.mark.slow
def test_run_server_prints_the_url_and_the_page_drives_the_simulated_arm(driver: Any, tmp_path: Path) -> None:
    from tests.daemon_fakes import finished_files, read_episode
    from tests.robot_fakes import free_port_block

    port = free_port_block(3) + 1
    cfg = tmp_path / "daemon.yaml"
    cfg.write_text("cameras: []\nrealtime_priority: 0\n")
    rec = tmp_path / "rec"
    log_path = tmp_path / "daemon.log"
    argv = [str(ROOT / "run_server.sh"), "--debug", "--vr-source", f"webxr@port=0,emulate={IWER}",
            "--config", str(cfg), "--no-dashboard", "--no-sim-cameras", "--sim-latency-ms", "0",
            "--robot-port", str(port), "--recordings-dir", str(rec)]
    env = dict(os.environ, MUJOCO_GL="egl", PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    try:
        url_re = re.compile(r"open (http://localhost:\d+/\?token=[\w-]+) in the headset's browser")
        m = wait_for(lambda: url_re.search(log_path.read_text(errors="replace")), 90, what="the URL in the log")
        open_page(driver, m.group(1))

        clock = [0.0]
        scripted = ScriptedSource("pick_place", rate_hz=100.0, clock=lambda: clock[0])
        scripted.start()
        steps = []
        for k in range(int(15.1 * 100) + 1):
            clock[0] = k / 100
            s = scripted.poll()
            assert s is not None
            steps.append(iwer_step(s))
        driver.execute_script("window.__xrEmu.play(arguments[0], 10)", steps)
        seen = set()
        while driver.execute_script("return window.__xrEmu.playing"):
            seen.add((driver.execute_script("return document.body.dataset.arm"),
                      driver.execute_script("return document.body.dataset.recording")))
            assert proc.poll() is None, log_path.read_text(errors="replace")
            time.sleep(0.1)
        assert ("engaged", "true") in seen and ("holding", "true") in seen, seen  # the page showed the daemon's view
        assert wait_for(lambda: finished_files(rec), 20), log_path.read_text(errors="replace")
        episode = read_episode(finished_files(rec)[0])
        assert "success" in str(finished_files(rec)[0])  # B marked it
        states = episode.topic("/sim/state")
        assert len(states) >= 5
        first, last = _cube_positions(states[0].body["blob"]), _cube_positions(states[-1].body["blob"])
        red, blue = last["red_cube"], last["blue_cube"]
        print(f"red cube {np.round(first['red_cube'], 3)} -> {np.round(red, 3)}; blue at {np.round(blue, 3)}")
        assert np.linalg.norm(red[:2] - blue[:2]) < 0.015, "the red cube is not stacked on the blue one"
        assert red[2] > blue[2] + 0.03

        driver.get("about:blank")  # closing the page: the daemon reports the link loss and keeps running
        assert wait_for(lambda: "WebXR: page closed the connection" in log_path.read_text(errors="replace"), 10)
        assert proc.poll() is None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    assert proc.returncode == 0, log_path.read_text(errors="replace")[-3000:]
