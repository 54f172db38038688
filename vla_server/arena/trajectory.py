"""An episode's trajectory: deterministic arrays (hashed) and their MCAP form with the teleop topics.

The arrays hold only what the simulation decides (no wall-clock times), so two runs of the same
episode give the same `Trajectory.sha256()`. The MCAP file is written by the recording format's
`EpisodeWriter` (`robot_formats.recording`, the teleop recorder's own) from `RecordTick`s, so it
has the same topics and schemas as a teleop recording and ``teleop-replay info / plot / export``
read it: ``/robot/ee_pose`` and ``/robot/joint_states``
at the video rate (30 Hz sim time), ``/robot/command``, ``/robot/ee_target`` and ``/action`` when
an action takes effect, ``/camera/front/image`` with what the policy saw, ``/events`` for the
episode's start and end. Message times are `time_base` (wall clock when the episode ran) plus
sim time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from frankateach.constants import SIM_CAMERAS
from frankateach.messages import CameraFrame, FrankaAction, FrankaState
from frankateach.sim.model import FRONT_CAMERA_FOVY, WRIST_CAMERA_FOVY
from robot_formats.recording.records import ControlMode, Event, RecordTick, RobotCommand, RobotObservation
from robot_formats.recording.scene import ScenePainter
from robot_formats.recording.writer import EpisodeWriter
from vla_server.arena.config import PHYSICS_HZ

_FOVY = {"front": FRONT_CAMERA_FOVY, "wrist": WRIST_CAMERA_FOVY}


@dataclass
class Trajectory:
    """Per-episode arrays (physics steps are absolute, from the scene's start).

    Observations (K = control steps): ``obs_step``, ``obs_tcp_pos`` (K, 3) m, ``obs_tcp_quat``
    (K, 4) xyzw, ``obs_gripper`` (K,), ``obs_joints`` (K, 7) rad, ``action`` (K, 7),
    ``delay_steps`` (K,) latency in physics steps.
    Applications (A): ``applied_step``, ``applied_obs_step``, ``applied_action`` (A, 7),
    ``target_pos`` (A, 3), ``target_quat`` (A, 4), ``target_gripper`` (A,).
    Samples at the video times (F): ``sample_step``, ``sample_qpos`` (F, nq).
    """

    obs_step: list[int] = field(default_factory=list)
    obs_tcp_pos: list[np.ndarray] = field(default_factory=list)
    obs_tcp_quat: list[np.ndarray] = field(default_factory=list)
    obs_gripper: list[float] = field(default_factory=list)
    obs_joints: list[np.ndarray] = field(default_factory=list)
    action: list[np.ndarray] = field(default_factory=list)
    delay_steps: list[int] = field(default_factory=list)
    applied_step: list[int] = field(default_factory=list)
    applied_obs_step: list[int] = field(default_factory=list)
    applied_action: list[np.ndarray] = field(default_factory=list)
    target_pos: list[np.ndarray] = field(default_factory=list)
    target_quat: list[np.ndarray] = field(default_factory=list)
    target_gripper: list[float] = field(default_factory=list)
    sample_step: list[int] = field(default_factory=list)
    sample_qpos: list[np.ndarray] = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field as a numpy array (int64 or float64), in a fixed order."""
        out: dict[str, np.ndarray] = {}
        for f in fields(self):
            values = getattr(self, f.name)
            dtype = np.int64 if f.name.endswith("step") or f.name == "delay_steps" else np.float64
            out[f.name] = np.asarray(values, dtype=dtype)
        return out

    def sha256(self) -> str:
        """Hash of every array's shape and bytes: equal hashes mean bit-identical trajectories."""
        h = hashlib.sha256()
        for name, arr in self.arrays().items():
            h.update(name.encode() + b"\0" + repr(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def to_npz(self, path: Path) -> None:
        np.savez_compressed(path, **self.arrays())  # type: ignore[arg-type]


def _state(qpos_pose: tuple[np.ndarray, np.ndarray, float, np.ndarray], t_wall: float) -> FrankaState:
    pos, quat, gripper, joints = qpos_pose
    return FrankaState(pos=pos, quat=quat, gripper=gripper, timestamp=t_wall, start_teleop=True, joint_positions=joints)


@dataclass
class McapSample:
    """One recording tick of an arena episode (see `write_mcap`).

    Attributes:
        step: physics step.
        tcp_pos, tcp_quat_xyzw, gripper, joints: measured robot state at that step.
        command: (seq, applied step, action (7,), target pos, target quat xyzw, gripper) of the
            action in effect, or None before the first.
        frames: camera name -> (frame seq, step, jpeg, width, height) taken since the previous tick.
    """

    step: int
    tcp_pos: np.ndarray
    tcp_quat_xyzw: np.ndarray
    gripper: float
    joints: np.ndarray
    command: tuple[int, int, np.ndarray, np.ndarray, np.ndarray, float] | None
    frames: dict[str, list[tuple[int, int, bytes, int, int]]] = field(default_factory=dict)


class SampleTicks:
    """`RecordTick`s from an episode's samples, in sim time: the MCAP file and the live view use it.

    Args:
        start_step: physics step of the episode's start (time zero).
        time_base: wall time (s) that sim time zero maps to.
    """

    def __init__(self, start_step: int, time_base: float) -> None:
        self.start_step = start_step
        self.time_base = time_base

    def wall(self, step: int) -> float:
        """The message time of physics step `step`, s (time base + sim time)."""
        return self.time_base + (step - self.start_step) / PHYSICS_HZ

    def mono(self, step: int) -> float:
        """Sim time of physics step `step` since the start, s."""
        return (step - self.start_step) / PHYSICS_HZ

    def tick(self, i: int, s: McapSample, events: Sequence[tuple[int, str, str, dict[str, Any]]] = ()) -> RecordTick:
        """Tick `i` of sample `s`, carrying `events` ((step, kind, message, data))."""
        t_wall = self.wall(s.step)
        robot = RobotObservation(
            _state((s.tcp_pos, s.tcp_quat_xyzw, s.gripper, s.joints), t_wall), t_recv=self.mono(s.step),
            t_recv_wall=t_wall, rtt_s=float("nan"),
        )
        cmd = None
        if s.command is not None:
            seq, applied, action, tpos, tquat, grip = s.command
            cmd = RobotCommand(
                seq=seq, created=self.mono(applied), action=action,
                target=FrankaAction(tpos, tquat, grip, False, self.wall(applied)),
                mode=ControlMode.REAL_TIME, engaged=True,
            )
        frames = {
            name: tuple(CameraFrame(SIM_CAMERAS.index(name) if name in SIM_CAMERAS else 0, name, fseq,
                                    self.wall(fstep), w, h, data) for (fseq, fstep, data, w, h) in fs)
            for name, fs in s.frames.items()
        }
        evs = tuple(Event(kind, msg, self.wall(st), data) for st, kind, msg, data in events)
        return RecordTick(
            seq=i, t_mono=self.mono(s.step), t_wall=t_wall, vr=None, robot=robot, command=cmd,
            mode=ControlMode.REAL_TIME, cameras=frames, events=evs,
        )


def write_mcap(
    path: Path,
    samples: list[McapSample],
    start_step: int,
    time_base: float,
    metadata: Mapping[str, Any],
    end_metadata: Mapping[str, Any],
    outcome: str,
    events: list[tuple[int, str, str, dict[str, Any]]] = (),  # type: ignore[assignment]
) -> Path:
    """Writes an arena episode as a teleop-format MCAP file.

    Args:
        path: ``*.mcap`` to create (must not exist).
        samples: the ticks, in step order.
        start_step: physics step of the episode's start (time zero).
        time_base: wall time (s) that sim time zero maps to.
        metadata, end_metadata: "recording_start" / "recording_end" fields.
        outcome: "success" or "failure" (the writer's outcome word).
        events: (step, kind, message, data) to write on /events and /log.
    """
    ticks = SampleTicks(start_step, time_base)
    cameras = {n: (0, 0, _FOVY.get(n, FRONT_CAMERA_FOVY)) for n in SIM_CAMERAS}
    sizes = {n: (w, h) for s in samples for n, fs in s.frames.items() for (_, _, _, w, h) in fs}
    cam_specs = {n: (w, h, cameras[n][2]) for n, (w, h) in sizes.items() if n in cameras}
    writer = EpisodeWriter(path, start_metadata=dict(metadata), cameras=cam_specs, compression="zstd",
                           scene=ScenePainter())
    try:
        pending_events = sorted(events, key=lambda e: e[0])
        ei = 0
        for i, s in enumerate(samples):
            evs = []
            while ei < len(pending_events) and (pending_events[ei][0] <= s.step or i == len(samples) - 1):
                evs.append(pending_events[ei])
                ei += 1
            writer.write(ticks.tick(i, s, evs))
        return writer.close(outcome, end_metadata)
    except BaseException:
        writer.abort("arena episode failed while writing its trajectory")
        raise
