"""`teleop-replay play` against a real RobotServer (ZMQ on loopback) with a small kinematic backend."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frankateach.client import RobotClient
from frankateach.errors import FrankaTeachError
from frankateach.messages import FrankaAction, FrankaState
from frankateach.server_base import RobotBackend, RobotServer
from oculus_server.recording.synthetic import write_synthetic
from oculus_server.replay.cli import main
from oculus_server.replay.play import ReplayGuard, play
from oculus_server.safety import SafetyConfig
from robot_formats.recording.episode import load_episode
from robot_formats.recording.errors import RecordingError

T0 = 1_750_000_000.0
HOME = np.array([0.45, 0.0, 0.4])
DOWN = np.array([1.0, 0.0, 0.0, 0.0])


class KinematicBackend(RobotBackend):
    """An arm that is wherever it was last told to be, plus a fixed measurement bias.

    Args:
        bias: added to the reported position, metres.
        refuse_every: every n-th action is refused with an error reply (0: never).
    """

    name = "kinematic"

    def __init__(self, bias: np.ndarray | None = None, refuse_every: int = 0) -> None:
        self.bias = np.zeros(3) if bias is None else np.asarray(bias, dtype=float)
        self.refuse_every = refuse_every
        self._lock = threading.Lock()
        self.pos, self.quat, self.gripper = HOME.copy(), DOWN.copy(), -1.0
        self.actions = 0
        self._target: FrankaAction | None = None

    def read_state(self) -> FrankaState:
        with self._lock:
            return FrankaState(self.pos + self.bias, self.quat.copy(), self.gripper, time.time(), True, np.zeros(7))

    def apply_action(self, action: FrankaAction) -> None:
        with self._lock:
            self.actions += 1
            if self.refuse_every and self.actions % self.refuse_every == 0:
                raise FrankaTeachError("refused for the test")
            self._target = action
            if action.reset:
                self.pos, self.quat = HOME.copy(), DOWN.copy()
            else:
                self.pos, self.quat = action.pos.copy(), action.quat.copy()
            self.gripper = action.gripper

    def commanded_state(self) -> FrankaState | None:
        t = self._target
        return None if t is None else FrankaState(t.pos, t.quat, t.gripper, time.time())


def _free_ports(n: int = 3) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def server_factory():
    servers: list[RobotServer] = []

    def make(backend: KinematicBackend) -> RobotServer:
        for _ in range(3):
            server = RobotServer(backend, host="127.0.0.1", ports=tuple(_free_ports()), state_hz=50.0)  # type: ignore[arg-type]
            try:
                server.start()
            except Exception:  # a port taken between the check and the bind: try others
                continue
            servers.append(server)
            return server
        raise RuntimeError("could not start the fake robot server")

    yield make
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("play") / "ep.mcap", seconds=3.0, cameras={}, t0_wall=T0)


def test_replay_follows_the_recording(recording: Path, server_factory) -> None:
    backend = KinematicBackend()
    server = server_factory(backend)
    ep = load_episode(recording, images=False)
    client = RobotClient("127.0.0.1", server.control_port, timeout_s=2.0)
    steps: list[tuple[int, int]] = []
    try:
        report = play(ep, client, speed=3.0, on_step=lambda a, b: steps.append((a, b)))
    finally:
        client.close()
    assert report.commands_total == report.commands_sent == 60 == steps[-1][0]
    assert report.errors == report.timeouts == 0
    assert report.approach_mm <= 5.0  # the kinematic arm reaches the first target at once
    assert report.wall_s == pytest.approx(report.recorded_span_s / 3.0, abs=0.5)
    # measured follows targets that lead the recorded measured pose by ~60 ms: a few mm
    assert report.rms_mm < 40.0 and report.max_mm >= report.rms_mm > 0.0
    assert np.allclose(backend.pos, ep.target_pos[-1])


def test_replay_reports_a_biased_robot(recording: Path, server_factory) -> None:
    server = server_factory(KinematicBackend(bias=np.array([0.0, 0.0, 0.1])))
    ep = load_episode(recording, images=False)
    client = RobotClient("127.0.0.1", server.control_port, timeout_s=2.0)
    try:
        # This arm teleports to each target and reports it 10 cm off: the first (held) command
        # moves it by the bias at once, a jump the state check would rightly not believe.
        report = play(ep, client, speed=4.0, approach_s=0.0, safety=SafetyConfig(max_state_speed_m_s=100.0))
    finally:
        client.close()
    assert report.withheld == 0 and report.interventions.get("hold_restore") == 1
    # The 100 mm bias dominates (plus the way back from the held, biased pose at the gate's speed).
    assert 70.0 < report.rms_mm < 150.0
    assert report.max_mm >= report.rms_mm


def test_replay_window_errors_and_cli(
    recording: Path, server_factory, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    server = server_factory(KinematicBackend(refuse_every=5))
    # This arm teleports to each target, at 4× the recorded speed: two replies that arrive close
    # together on a busy machine look faster than an arm turns, so the state check is widened
    # (through the command's own --config) as in the other tests with this arm.
    config = tmp_path / "replay.yaml"
    config.write_text("safety:\n  max_state_speed_m_s: 100.0\n  max_state_speed_rad_s: 100.0\n")
    # commands are made at tc = seq / 20 s and the first message is at -6 ms: [1 s, 2 s] holds seq 20 … 39
    rc = main(["play", str(recording), "--port", str(server.control_port), "--speed", "4", "--start", "1", "--end", "2",
               "--no-approach", "--json", "--config", str(config)])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["commands_total"] == report["commands_sent"] == 20
    assert report["errors"] == 4 and report["samples"] == 16


def test_replay_gives_up_on_a_silent_robot(recording: Path) -> None:
    ep = load_episode(recording, images=False)
    client = RobotClient("127.0.0.1", _free_ports(1)[0], timeout_s=0.05)
    try:
        with pytest.raises(FrankaTeachError, match="in a row failed"):
            play(ep, client, speed=10.0, approach_s=0.0)
    finally:
        client.close()
    with pytest.raises(RecordingError, match="no commands between"):
        play(ep, client, start_s=50.0)
    with pytest.raises(RecordingError, match="speed"):
        play(ep, client, speed=0.0)


# --- a recording is not trusted: replayed targets pass the live command path's checks -------------

BOX_LO, BOX_HI = np.array([0.2, -0.4, 0.05]), np.array([0.75, 0.4, 0.7])  # the default workspace box


def _inside_box(p: np.ndarray) -> bool:
    return bool(np.all(p >= BOX_LO - 1e-9) and np.all(p <= BOX_HI + 1e-9))


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.arccos(min(1.0, abs(float(np.dot(a, b))))))


class _WireServer(RobotServer):
    """Keeps every action as it arrived, before the server's own clamp."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.wire: list[FrankaAction] = []

    def handle(self, data: bytes) -> bytes:
        try:
            req = self.codec.decode_request(data)
        except FrankaTeachError:
            req = None
        if isinstance(req, FrankaAction):
            self.wire.append(req)
        return super().handle(data)


def test_replay_of_a_tampered_recording_sends_only_what_live_control_could(recording: Path) -> None:
    ep = load_episode(recording, images=False)
    ep.target_pos[10] = (3.0, -2.5, 2.0)  # far outside the box
    ep.target_pos[20:30] += (0.0, 0.5, 0.0)  # a 0.5 m jump held for ten commands
    ep.target_pos[35] = (np.nan, 0.0, 0.3)  # not finite
    ep.target_quat[40] = 0.0  # no orientation at all
    ep.target_gripper[45] = np.inf
    ports = _free_ports()
    server = _WireServer(KinematicBackend(), host="127.0.0.1", ports=tuple(ports), state_hz=50.0)  # type: ignore[arg-type]
    server.start()
    client = RobotClient("127.0.0.1", ports[0], timeout_s=2.0)
    speed = 2.0
    try:
        report = play(ep, client, speed=speed, approach_s=0.0)
    finally:
        client.close()
        server.stop()
    wire = server.wire
    print(f"replay of a tampered recording: {report.describe()}")
    assert len(wire) == report.commands_sent == report.commands_total == 60
    step_m, step_rad = SafetyConfig().step_limits(20.0 * speed)  # synthetic: 20 Hz commands, replayed at 2x
    for prev, cur in zip(wire, wire[1:], strict=False):
        for a in (prev, cur):
            assert np.all(np.isfinite(a.pos)) and np.all(np.isfinite(a.quat)) and np.isfinite(a.gripper)
            assert _inside_box(np.asarray(a.pos)) and abs(np.linalg.norm(a.quat) - 1.0) < 1e-9
            assert -1.0 <= a.gripper <= 1.0
        assert np.linalg.norm(np.subtract(cur.pos, prev.pos)) <= step_m + 1e-9
        assert _angle(np.asarray(cur.quat), np.asarray(prev.quat)) <= step_rad + 1e-6
    for kind in ("hold_restore", "box", "step_pos", "refused_nonfinite", "refused_quat", "gripper"):
        assert report.interventions.get(kind, 0) >= 1, (kind, report.interventions)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    targets=st.lists(
        st.tuples(
            st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=3, max_size=3),
            st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=4, max_size=4),
            st.floats(allow_nan=True, allow_infinity=True, width=32),
            st.booleans(),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_replay_guard_never_lets_out_what_the_gate_would_not(targets) -> None:
    """Any target sequence, on an arm that goes where it is told: every command that leaves is
    finite, inside the box, unit, and within one step of the previous one."""
    t = [0.0]
    guard = ReplayGuard(None, 20.0, clock=lambda: t[0])
    step_m, step_rad = SafetyConfig().step_limits(20.0)
    arm = FrankaState(HOME.copy(), DOWN.copy(), -1.0, 1.0)
    guard.observe(arm)
    prev: FrankaAction | None = None
    for pos, quat, grip, reset in targets:
        t[0] += 0.05
        out = guard.admit(FrankaAction(np.array(pos, float), np.array(quat, float), grip, reset, 0.0))
        if out is None:
            continue
        p, q = np.asarray(out.pos), np.asarray(out.quat)
        assert np.all(np.isfinite(p)) and np.all(np.isfinite(q)) and -1.0 <= out.gripper <= 1.0
        assert _inside_box(p) and abs(np.linalg.norm(q) - 1.0) < 1e-9
        if prev is not None and not prev.reset:
            assert np.linalg.norm(p - prev.pos) <= step_m + 1e-9
            assert _angle(q, np.asarray(prev.quat)) <= step_rad + 1e-6
        prev = out
        if not out.reset:
            arm = FrankaState(p.copy(), q.copy(), out.gripper, 1.0 + t[0])
        guard.observe(arm)


def test_replay_cli_takes_the_safety_section_of_a_daemon_config(recording: Path, tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "narrow.yaml"
    cfg.write_text("safety:\n  workspace_min: [0.2, -0.01, 0.05]\n  workspace_max: [0.75, 0.01, 0.7]\n")
    ports = _free_ports()
    server = _WireServer(KinematicBackend(), host="127.0.0.1", ports=tuple(ports), state_hz=50.0)  # type: ignore[arg-type]
    server.start()
    try:
        rc = main(["play", str(recording), "--port", str(ports[0]), "--speed", "4", "--no-approach", "--json",
                   "--config", str(cfg)])
    finally:
        server.stop()
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["interventions"]["box"] > 0
    assert server.wire and all(abs(a.pos[1]) <= 0.01 + 1e-9 for a in server.wire)
    bad = tmp_path / "bad.yaml"
    bad.write_text("safety:\n  max_step_m: fast\n")
    assert main(["play", str(recording), "--port", str(ports[0]), "--config", str(bad)]) == 1
    assert "max_step_m" in capsys.readouterr().err
