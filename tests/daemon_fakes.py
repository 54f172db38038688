"""Helpers for the daemon's end-to-end tests: a state-logging robot, a failing VR source, file reading."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory as ProtobufDecoderFactory

from frankateach.messages import FrankaState
from oculus_server.config import DaemonConfig
from oculus_server.vr.source import SourceState, SourceStatus, VRSample, VRSource
from tests.robot_fakes import KinematicBackend, free_port_block


class LoggingBackend(KinematicBackend):
    """A `KinematicBackend` that remembers every state it reported (pos, timestamp)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reported: list[FrankaState] = []
        self._log_lock = threading.Lock()

    def read_state(self) -> FrankaState:
        state = super().read_state()
        with self._log_lock:
            self.reported.append(state)
        return state

    def reported_states(self) -> list[FrankaState]:
        with self._log_lock:
            return list(self.reported)


class FailingSource(VRSource):
    """Wraps a source; `poll()` raises `RuntimeError(message)` once `fail_after_s` have passed."""

    def __init__(self, inner: VRSource, fail_after_s: float, message: str = "headset exploded") -> None:
        self.inner = inner
        self.name = f"failing({inner.name})"
        self.fail_after_s = fail_after_s
        self.message = message
        self.samples = 0
        self.closed = False
        self._t0: float | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        self.inner.start()

    def poll(self) -> VRSample | None:
        assert self._t0 is not None
        if time.monotonic() - self._t0 >= self.fail_after_s:
            raise RuntimeError(self.message)
        sample = self.inner.poll()
        if sample is not None:
            self.samples += 1
        return sample

    def status(self) -> SourceStatus:
        return self.inner.status()

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class ManualSource(VRSource):
    """A VR source driven by functions of time: `pose_at(t)` (4, 4) and `buttons_at(t)`.

    `t` is seconds since `start()` (the VR thread's start); every poll is a new sample.
    """

    name = "manual"

    def __init__(self, pose_at: Callable[[float], Any], buttons_at: Callable[[float], dict]) -> None:
        self.pose_at = pose_at
        self.buttons_at = buttons_at
        self.seq = -1
        self.t0: float | None = None

    def start(self) -> None:
        self.t0 = time.monotonic()

    def poll(self) -> VRSample | None:
        assert self.t0 is not None
        now = time.monotonic()
        self.seq += 1
        t = now - self.t0
        return VRSample({"r": self.pose_at(t)}, self.buttons_at(t), now, self.seq)

    def status(self) -> SourceStatus:
        return SourceStatus(SourceState.CONNECTED, samples=self.seq + 1)


def daemon_config(recordings_dir: Path, robot_port: int, **changes: Any) -> DaemonConfig:
    """A test config: scripted circle, no cameras, no dashboard, no real-time scheduling."""
    base: dict[str, Any] = dict(
        record_on_start=True,
        vr_source="scripted:circle",
        cameras=(),
        robot_host="127.0.0.1",
        robot_port=robot_port,
        recordings_dir=str(recordings_dir),
        duration=None,
        dashboard=False,
        realtime_priority=0,
        request_timeout_s=0.5,
    )
    base.update(changes)
    return DaemonConfig(**base)


def threads(pid: int | str = "self") -> list[tuple[str, int]]:
    """(kernel name, thread id) of each thread of process `pid` (`/proc/PID/task/*/comm`); a thread
    that ends meanwhile is left out."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out.append(((task / "comm").read_text().strip(), int(task.name)))
        except OSError:
            pass
    return out


def wait_for(pred: Callable[[], bool], timeout_s: float, period_s: float = 0.02) -> bool:
    """Polls `pred` until it is true or `timeout_s` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(period_s)
    return bool(pred())


def child_of_a_killed_parent(script: str, cwd: Path) -> int:
    """Runs `script` (it starts a helper process and prints its pid) in a Python of its own,
    SIGKILLs that parent once the pid is printed, and returns the helper's pid."""
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=cwd, stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        return int(line)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)


def record_debug_episode(tmp: Path, seconds: float = 3.5) -> Path:
    """Runs `oculus-server --debug` (MuJoCo Panda, scripted circle, no cameras, free ports) in `tmp`,
    recording from the start; stops it with SIGTERM after `seconds` of recording and returns the
    finished file (with ``/sim/state``)."""
    port = free_port_block(4) + 1  # sim: state P-1, control P, commanded P+1, sim state P+2
    cfg = tmp / "daemon.yaml"
    cfg.write_text("cameras: []\nrealtime_priority: 0\n")
    rec = tmp / "rec"
    argv = [sys.executable, "-m", "oculus_server.cli", "--config", str(cfg), "--debug", "--vr-source",
            "scripted:circle", "--no-dashboard", "--no-sim-cameras", "--sim-latency-ms", "0", "--robot-port",
            str(port), "--recordings-dir", str(rec), "--record-on-start"]
    with open(tmp / "daemon.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=tmp, env=dict(os.environ, MUJOCO_GL="egl"),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        try:
            assert wait_for(lambda: bool(list(rec.glob("*.mcap.partial"))) or proc.poll() is not None, 60, 0.1)
            time.sleep(seconds)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0, (tmp / "daemon.log").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    (path,) = finished_files(rec)
    return path


@dataclass
class Message:
    """One decoded message of a recording."""

    topic: str
    log_ns: int
    publish_ns: int
    sequence: int
    body: Any


@dataclass
class Episode:
    """A finished recording read back with the official `mcap` reader."""

    path: Path
    has_summary: bool
    metadata: dict[str, dict[str, str]]
    messages: list[Message] = field(default_factory=list)

    def topic(self, name: str) -> list[Message]:
        return [m for m in self.messages if m.topic == name]


def read_episode(path: Path) -> Episode:
    """Reads every message (JSON as dicts, protobuf as Foxglove objects), the summary and metadata."""
    proto = ProtobufDecoderFactory()
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
        out = Episode(Path(path), summary is not None and summary.statistics is not None, metadata)
        decoders: dict[int, Callable[[bytes], Any] | None] = {}
        for schema, channel, msg in reader.iter_messages(log_time_order=False):
            if channel.id not in decoders:
                if channel.message_encoding == "json":
                    decoders[channel.id] = json.loads
                else:
                    decoders[channel.id] = proto.decoder_for(channel.message_encoding, schema)
            dec = decoders[channel.id]
            body = dec(msg.data) if dec is not None else msg.data
            out.messages.append(Message(channel.topic, msg.log_time, msg.publish_time, msg.sequence, body))
    return out


def finished_files(recordings_dir: Path) -> list[Path]:
    """Finalized episodes (success/ and failure/), sorted by name."""
    d = Path(recordings_dir)
    return sorted([*d.glob("success/*.mcap"), *d.glob("failure/*.mcap")])
