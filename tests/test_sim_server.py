"""The simulator served over real ZMQ sockets on 127.0.0.1 (in-process and as `frankateach-sim`)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time

import msgpack
import numpy as np
import pytest
import zmq
from PIL import Image

from frankateach.background import thread_nices
from frankateach.client import RobotClient
from frankateach.constants import GET_STATE, HOME_JOINTS, SIM_CAMERAS
from frankateach.errors import FrankaTeachError, ProtocolError, RobotServerError
from frankateach.messages import (
    FrankaAction,
    MsgpackCodec,
    PickleCodec,
    decode_camera_frame,
)
from frankateach.network import ReqClient, Subscriber
from frankateach.sim.cameras import gl_candidates, rendering_available
from frankateach.sim.server import SimServer, find_free_ports, main, start_sim_server

HOST = "127.0.0.1"


@pytest.fixture
def sim() -> SimServer:
    server = start_sim_server(HOST)
    yield server
    server.stop()


def _wait_until(pred, timeout_s: float, period_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(period_s)
    return pred()


def _action(pos: np.ndarray, quat: np.ndarray, gripper: float = -1.0) -> FrankaAction:
    return FrankaAction(np.asarray(pos, float), np.asarray(quat, float), gripper, False, time.time())


def test_get_state_round_trip(sim: SimServer) -> None:
    client = RobotClient(HOST, sim.ports.control)
    try:
        before = time.time()
        state = client.get_state()
        assert state.start_teleop
        assert abs(state.timestamp - before) < 1.0
        np.testing.assert_allclose(state.joint_positions, HOME_JOINTS, atol=0.01)
        assert 0.45 <= state.pos[0] <= 0.55 and state.gripper == pytest.approx(-1.0, abs=0.05)
        assert np.linalg.norm(state.quat) == pytest.approx(1.0)
        time.sleep(0.1)
        later = client.get_state()
        assert later.timestamp > state.timestamp  # the physics thread keeps refreshing it
    finally:
        client.close()


def test_an_action_moves_the_arm_and_is_published(sim: SimServer) -> None:
    client = RobotClient(HOST, sim.ports.control)
    commanded = Subscriber(HOST, sim.ports.commanded)
    states = Subscriber(HOST, sim.ports.state)
    try:
        home = client.get_state()
        target = home.pos + np.array([0.05, -0.05, 0.05])
        time.sleep(0.2)  # let the SUB sockets connect before the commanded message goes out
        client.send(_action(target, home.quat))
        assert _wait_until(lambda: np.linalg.norm(client.get_state().pos - target) < 0.005, 10.0)
        msg = commanded.recv(2.0)
        assert msg is not None
        np.testing.assert_allclose(MsgpackCodec().decode_reply(msg).pos, target, atol=1e-9)
        pub = states.recv(2.0)
        assert pub is not None
        assert np.linalg.norm(MsgpackCodec().decode_reply(pub).pos - target) < 0.005
    finally:
        client.close()
        commanded.close()
        states.close()


def test_bad_messages_get_error_replies_and_the_arm_holds(sim: SimServer) -> None:
    client = RobotClient(HOST, sim.ports.control)
    raw = ReqClient(HOST, sim.ports.control)
    try:
        home = client.get_state()
        target = home.pos + np.array([0.0, 0.08, -0.05])
        client.send(_action(target, home.quat))
        assert _wait_until(lambda: np.linalg.norm(client.get_state().pos - target) < 0.005, 10.0)
        errors_before = sim.server.errors
        nan_action = msgpack.packb({"pos": [float("nan"), 0.0, 0.0], "quat": [0, 0, 0, 1],
                                    "gripper": 0.0, "reset": False, "timestamp": 0.0})
        for bad in [b"\x00not msgpack", nan_action, msgpack.packb([1, 2, 3]), b"x" * 70000]:
            with pytest.raises(RobotServerError):
                MsgpackCodec().decode_reply(raw.request(bad))
        assert sim.server.errors == errors_before + 4
        time.sleep(0.5)
        state = client.get_state()  # the server still answers, and the arm held its target
        assert np.linalg.norm(state.pos - target) < 0.005
        assert sim.backend.running
    finally:
        client.close()
        raw.close()


def test_pickle_codec() -> None:
    sim = start_sim_server(HOST, codec="pickle")
    client = RobotClient(HOST, sim.ports.control, codec=PickleCodec())
    try:
        home = client.get_state()
        target = home.pos + np.array([0.0, 0.0, 0.05])
        reply = client.send(_action(target, home.quat))
        assert reply.start_teleop
        assert _wait_until(lambda: np.linalg.norm(client.get_state().pos - target) < 0.005, 10.0)
        wrong = RobotClient(HOST, sim.ports.control)  # a msgpack client cannot talk to it
        try:
            with pytest.raises((RobotServerError, ProtocolError)):
                wrong.send(_action(target, home.quat))
        finally:
            wrong.close()
        assert client.get_state().start_teleop
    finally:
        client.close()
        sim.stop()


def _mean_action_rtt(port: int, n: int = 10) -> float:
    client = RobotClient(HOST, port)
    try:
        home = client.get_state()
        rtts = []
        for _ in range(n):
            t0 = time.monotonic()
            client.send(_action(home.pos, home.quat))
            rtts.append(time.monotonic() - t0)
        return float(np.median(rtts))
    finally:
        client.close()


@pytest.mark.slow
def test_latency_emulation() -> None:
    fast = start_sim_server(HOST)
    try:
        baseline = _mean_action_rtt(fast.ports.control)
    finally:
        fast.stop()
    slow = start_sim_server(HOST, latency_ms=100.0)
    try:
        delayed = _mean_action_rtt(slow.ports.control)
        t0 = time.monotonic()
        RobotClient(HOST, slow.ports.control).get_state()  # state queries are not delayed
        assert time.monotonic() - t0 < 0.09
    finally:
        slow.stop()
    assert 0.090 <= delayed - baseline <= 0.110, (delayed, baseline)


def _renderer_usable() -> tuple[bool, str]:
    reasons = []
    for backend in gl_candidates():
        ok, why = rendering_available(backend)
        if ok:
            return True, ""
        reasons.append(why)
    return False, "; ".join(reasons)


@pytest.mark.slow
def test_camera_frames_decode_to_the_configured_size() -> None:
    usable, why = _renderer_usable()
    if not usable:
        pytest.skip(f"no offscreen OpenGL on this machine: {why}")
    base = os.getpriority(os.PRIO_PROCESS, 0)
    sim = start_sim_server(HOST, cameras=True, camera_width=160, camera_height=120,
                           camera_fps=15.0, require_cameras=True, camera_nice=base + 3)
    subs = [Subscriber(HOST, sim.ports.camera_offset + i) for i in range(len(SIM_CAMERAS))]
    try:
        # The renderer gives way (camera_nice): every thread of it (Mesa may put its own helper
        # threads even lower, at 19); the simulator's priority is unchanged.
        assert sim.cameras is not None and sim.cameras.pid is not None
        nices = thread_nices(sim.cameras.pid)
        assert nices[sim.cameras.pid] == base + 3 and min(nices.values()) == base + 3, nices
        assert os.getpriority(os.PRIO_PROCESS, 0) == base
        for i, sub in enumerate(subs):
            data = sub.recv(20.0)
            assert data is not None, f"no frame from camera {i}"
            frame = decode_camera_frame(data)
            assert (frame.camera_id, frame.name) == (i, SIM_CAMERAS[i])
            assert (frame.width, frame.height) == (160, 120)
            image = np.asarray(Image.open(io.BytesIO(frame.jpeg)).convert("RGB"))
            assert image.shape == (120, 160, 3)
            assert image.std() > 10  # a real picture, not a blank buffer
            nxt = decode_camera_frame(sub.recv(5.0))
            assert nxt.seq > frame.seq
        assert _wait_until(lambda: min(sim.cameras.fps().values()) > 0, 5.0)
        client = RobotClient(HOST, sim.ports.control)
        assert client.get_state().start_teleop
        client.close()
    finally:
        for sub in subs:
            sub.close()
        sim.stop()
    assert sim.cameras is not None and not sim.cameras.alive


@pytest.mark.slow
def test_server_runs_without_cameras_when_rendering_fails() -> None:
    sim = start_sim_server(HOST, cameras=True, gl_backends=["no-such-gl"])
    try:
        assert sim.cameras is None
        assert "no-such-gl" in sim.camera_error
        client = RobotClient(HOST, sim.ports.control)
        assert client.get_state().start_teleop
        client.close()
        assert "cameras: off" in sim.status_line()
    finally:
        sim.stop()


@pytest.mark.slow
def test_a_taken_camera_port_disables_cameras_with_the_reason() -> None:
    ports = find_free_ports(HOST)
    blocker = zmq.Context.instance().socket(zmq.PUB)
    blocker.bind(f"tcp://{HOST}:{ports.camera_offset + 1}")
    try:
        sim = start_sim_server(HOST, ports=ports, cameras=True)
        try:
            assert sim.cameras is None
            assert str(ports.camera_offset + 1) in sim.camera_error
            client = RobotClient(HOST, ports.control)
            assert client.get_state().start_teleop
            client.close()
        finally:
            sim.stop()
        with pytest.raises(FrankaTeachError, match="camera"):
            start_sim_server(HOST, ports=ports, cameras=True, require_cameras=True)
    finally:
        blocker.close(linger=0)


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--latency-ms", "-5"], ["--codec", "json"], ["--camera-fps", "0"],
                 ["--control-port", "70000"], ["--camera-nice", "20"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "--latency-ms must be >= 0" in capsys.readouterr().err


@pytest.mark.slow
def test_frankateach_sim_process_serves_and_stops_on_sigterm() -> None:
    ports = find_free_ports(HOST)
    cmd = [
        sys.executable, "-m", "frankateach.sim.server", "--no-cameras", "--status-period", "0.5",
        "--duration", "60", "--control-port", str(ports.control), "--state-port", str(ports.state),
        "--commanded-port", str(ports.commanded), "--camera-port-offset", str(ports.camera_offset),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        assert _wait_until(lambda: any("frankateach-sim ready" in ln for ln in lines), 60.0), lines
        client = RobotClient(HOST, ports.control)
        state = client.get_state()
        client.close()
        np.testing.assert_allclose(state.joint_positions, HOME_JOINTS, atol=0.01)
        assert _wait_until(lambda: any("alive:" in ln and "rtf=" in ln for ln in lines), 10.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15.0) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5.0)
    assert any("frankateach-sim stopped" in ln for ln in lines), lines


def test_raw_get_state_request(sim: SimServer) -> None:
    raw = ReqClient(HOST, sim.ports.control)
    try:
        state = MsgpackCodec().decode_reply(raw.request(GET_STATE))
        assert state.start_teleop and state.joint_positions.shape == (7,)
    finally:
        raw.close()
