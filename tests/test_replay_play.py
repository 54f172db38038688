"""`teleop-replay play` against a real RobotServer (ZMQ on loopback) with a small kinematic backend."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from frankateach.client import RobotClient
from frankateach.errors import FrankaTeachError
from frankateach.messages import FrankaAction, FrankaState
from frankateach.server_base import RobotBackend, RobotServer
from oculus_server.errors import RecordingError
from oculus_server.recording.synthetic import write_synthetic
from oculus_server.replay.cli import main
from oculus_server.replay.episode import load_episode
from oculus_server.replay.play import play

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

    def __init__(self, bias: np.ndarray = np.zeros(3), refuse_every: int = 0) -> None:
        self.bias = np.asarray(bias, dtype=float)
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
        report = play(ep, client, speed=4.0, approach_s=0.0)
    finally:
        client.close()
    assert 70.0 < report.rms_mm < 130.0  # the 100 mm bias dominates
    assert report.max_mm >= report.rms_mm


def test_replay_window_errors_and_cli(recording: Path, server_factory, capsys: pytest.CaptureFixture) -> None:
    server = server_factory(KinematicBackend(refuse_every=5))
    # commands are made at tc = seq / 20 s and the first message is at -6 ms: [1 s, 2 s] holds seq 20 … 39
    rc = main(["play", str(recording), "--port", str(server.control_port), "--speed", "4", "--start", "1", "--end", "2",
               "--no-approach", "--json"])
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
