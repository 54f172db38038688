"""The three command-path failures seen against a hostile robot server, as regression tests.

Each runs the whole `Daemon` in-process against a robot server on 127.0.0.1 whose backend reports
states of the test's choosing (`HostileBackend`) and that logs every action exactly as it arrived
on the wire, before the server's own clamp (`WireLogServer`). The episode is read back with the
official MCAP reader.

1. First states far outside the workspace box: the hold path used to send the measured pose
   unclamped (18 commands outside the box in 0.85 s, recorded on /robot/command too).
2. A 0.8 m jump of the measured state within one period: it used to be believed, and the next
   target went straight for the far corner of the box.
3. A link outage while moving, with the grip released during it: the targets extrapolated while
   the link failed (PREDICTIVE) became the held target and were sent when the link returned —
   the arm moved 6.4 cm with nobody holding the deadman.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from frankateach.constants import ROBOT_WORKSPACE_MAX, ROBOT_WORKSPACE_MIN
from oculus_server.daemon import Daemon
from oculus_server.vr import make_source
from robot_formats.recording.schemas import TOPIC_COMMAND, TOPIC_EVENTS, TOPIC_SAFETY
from tests.daemon_fakes import (
    ManualSource,
    daemon_config,
    finished_files,
    read_episode,
    wait_for,
)
from tests.robot_fakes import (
    HostileBackend,
    KinematicBackend,
    free_port_block,
    start_wire_log_server,
)

DOWN = (1.0, 0.0, 0.0, 0.0)
HZ = 40.0
STEP_M = 0.04 * 20.0 / HZ  # the gate's default step at 40 Hz


@pytest.fixture(autouse=True)
def _restore_switch_interval():
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def _inside(pos) -> bool:
    return bool(
        np.all(np.asarray(pos) >= ROBOT_WORKSPACE_MIN - 1e-9) and np.all(np.asarray(pos) <= ROBOT_WORKSPACE_MAX + 1e-9)
    )


def _run(daemon: Daemon, seconds: float) -> int:
    daemon.start()
    try:
        time.sleep(seconds)
    finally:
        daemon.stop_event.set()
        code = daemon.shutdown()
    assert code == 0, [f.error for f in daemon.supervisor.failures()]
    return code


def _wire_steps_within_limits(wire) -> float:
    """Largest step between consecutive wire targets, per control period between their making."""
    worst = 0.0
    for (_, a), (_, b) in itertools.pairwise(wire):
        periods = max(1, round((b.timestamp - a.timestamp) * HZ))  # the robot thread may skip some
        worst = max(worst, float(np.linalg.norm(np.asarray(b.pos) - np.asarray(a.pos))) / periods)
    return worst


def test_first_states_outside_the_box_send_nothing_outside_it(tmp_path: Path) -> None:
    port = free_port_block()
    backend = HostileBackend(lambda t, truth: ((3.0, -2.5, 2.0), DOWN) if t < 1.2 else None)
    server = start_wire_log_server(backend, port)
    cfg = daemon_config(tmp_path, port, control_hz=HZ)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    backend.t0 = time.monotonic()  # the script's clock starts with the daemon
    try:
        _run(daemon, 2.5)
    finally:
        server.stop()
    wire = server.actions()
    assert backend.lies > 0 and len(wire) > 10
    outside = [a.pos for _, a in wire if not _inside(a.pos)]
    assert outside == [], f"{len(outside)} commands outside the box reached the robot, e.g. {outside[:3]}"
    first = wire[0][1]
    np.testing.assert_allclose(first.pos, (0.45, 0.0, 0.3), atol=1e-9)  # the truth, held
    assert wire[0][0] - backend.t0 >= 1.2 - 0.05  # nothing while the states were absurd

    (path,) = finished_files(tmp_path)
    ep = read_episode(path)
    recorded = [m.body["position"] for m in ep.topic(TOPIC_COMMAND)]
    assert recorded and all(_inside(p) for p in recorded)
    safety = [m.body for m in ep.topic(TOPIC_SAFETY)]
    bad = [s for s in safety if s["kind"] == "implausible_state"]
    assert bad and "outside the workspace box" in bad[0]["message"] and bad[0]["command_seq"] == -1
    warnings = [m.body for m in ep.topic(TOPIC_EVENTS) if m.body["kind"] == "safety_warning"]
    assert any("not believed" in w["message"] for w in warnings)


def test_an_arm_parked_outside_the_box_is_not_pulled_in_by_more_than_a_step(tmp_path: Path) -> None:
    port = free_port_block()
    backend = KinematicBackend(pos=(0.9, 0.0, 0.3))  # 15 cm outside in x: believable, but out
    server = start_wire_log_server(backend, port)
    cfg = daemon_config(tmp_path, port, control_hz=HZ)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    try:
        _run(daemon, 1.5)
    finally:
        server.stop()
    assert server.actions() == []
    assert daemon.state.counters.snapshot()["safety_outside_box"] == 1
    assert "outside box" in daemon.state.safety.status().held


def test_a_jump_of_the_measured_state_is_not_followed(tmp_path: Path) -> None:
    start = (0.4, -0.2, 0.25)
    corner = (0.75, 0.4, 0.7)  # 0.83 m away
    port = free_port_block()
    backend = HostileBackend(lambda t, truth: (corner, DOWN) if 2.0 <= t < 2.6 else None, pos=start)
    server = start_wire_log_server(backend, port)
    cfg = daemon_config(tmp_path, port, control_hz=HZ)
    daemon = Daemon(cfg, make_source(cfg.vr_source))  # scripted circle, grip from 1 s
    backend.t0 = time.monotonic()
    try:
        _run(daemon, 3.5)
    finally:
        server.stop()
    wire = server.actions()
    assert backend.lies > 0 and len(wire) > 40
    far = max(float(np.linalg.norm(np.asarray(a.pos) - start)) for _, a in wire)
    print(f"farthest target from the start: {far * 100:.1f} cm; largest step per period "
          f"{_wire_steps_within_limits(wire) * 1000:.1f} mm")
    assert far < 0.2, "a target went toward the jumped state"  # the circle has an 8 cm radius
    assert _wire_steps_within_limits(wire) <= STEP_M + 1e-9
    during = [a for t, a in wire if 2.0 <= t - backend.t0 < 2.6]
    assert during == [] or max(float(np.linalg.norm(np.asarray(a.pos) - start)) for a in during) < 0.2
    assert daemon.state.counters.snapshot()["safety_implausible_state"] >= 1

    (path,) = finished_files(tmp_path)
    ep = read_episode(path)
    safety = [m.body for m in ep.topic(TOPIC_SAFETY)]
    assert any(s["kind"] == "implausible_state" and "jumped 0.8" in s["message"] for s in safety)
    assert any(s["kind"] == "state_plausible" for s in safety)  # the truth came back


def test_link_outage_with_the_grip_released_does_not_move_the_arm(tmp_path: Path) -> None:
    # Hand: still until 0.8 s, then moving 10 cm/s along the app's x (robot −y); grip held from
    # 0.5 s until 2.3 s. The robot server dies at 2.0 s (mid-motion) and returns at 3.0 s.
    def pose_at(t: float) -> np.ndarray:
        p = np.eye(4)
        p[0, 3] = 0.1 * max(0.0, t - 0.8)
        return p

    source = ManualSource(pose_at, lambda t: {"RG": 0.5 <= t < 2.3, "rightTrig": 0.0})
    port = free_port_block()
    backend = KinematicBackend()
    servers = [start_wire_log_server(backend, port)]
    cfg = daemon_config(tmp_path, port, control_hz=HZ, request_timeout_s=0.3, vr_source="manual")
    daemon = Daemon(cfg, source)
    daemon.start()
    try:
        t0 = time.monotonic()
        time.sleep(2.0)
        moved = float(np.linalg.norm(backend.pos - np.array([0.45, 0.0, 0.3])))
        assert moved > 0.05, f"the arm should be moving by now (moved {moved:.3f} m)"
        servers[0].stop()
        arm = backend.pos.copy()  # where the arm is: it gets nothing more
        time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
        assert not source.buttons_at(time.monotonic() - t0)["RG"]
        back = KinematicBackend(pos=tuple(arm))
        servers.append(start_wire_log_server(back, port))
        assert wait_for(lambda: daemon.state.robot.link().up, 5.0)
        time.sleep(1.0)
    finally:
        daemon.stop_event.set()
        code = daemon.shutdown()
        for s in servers:
            s.stop()
    assert code == 0, [f.error for f in daemon.supervisor.failures()]
    after = servers[1].actions()
    assert len(after) >= 10, "the restored link should carry hold commands"
    drift = max(float(np.linalg.norm(np.asarray(a.pos) - arm)) for _, a in after)
    print(f"commands after the outage: {len(after)}, farthest from the arm {drift * 1000:.3f} mm")
    assert drift < 1e-6, "the arm was sent somewhere it was not"
    assert all(not a.reset for _, a in after)
    np.testing.assert_allclose(back.pos, arm, atol=1e-9)  # the arm did not move
