"""Recording ticks → topic messages (what goes on which topic, with which times); no file I/O.

`TickMapper` turns each `RecordTick` and `Event` into encoded messages for the topics in
`robot_formats.recording.schemas`, skipping (and counting) malformed pieces, and keeps the
figures the ``recording_end`` record reports. See `schemas` for the per-message time rules.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from frankateach.messages import CameraFrame
from robot_formats.recording import encode as E
from robot_formats.recording import schemas as S
from robot_formats.recording.assist_topics import assist_messages
from robot_formats.recording.camera_mounts import CameraMount, camera_frame
from robot_formats.recording.encode import Message, finite_only
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.records import (
    LEFT_ANALOG,
    LEFT_BOOLS,
    RIGHT_ANALOG,
    RIGHT_BOOLS,
    Event,
    RecordTick,
    RobotCommand,
    RobotObservation,
    SafetyRecord,
    SentCommand,
    VRSample,
    analog_value,
)

log = logging.getLogger(__name__)

MCAP_CALIBRATION_PERIOD_S = 2.0  # /camera/<name>/calibration is repeated this often, s
MCAP_DEFAULT_CAMERA_FOVY_DEG = 45.0  # vertical field of view assumed for cameras not described (MuJoCo's default)
OUT_OF_ORDER_S = 1.0  # a measured state up to this much older than the last recorded one is skipped
CameraSpec = tuple[int, int, float]  # (width px, height px, vertical field of view degrees)

# Display-only placement of the headset frame in the world: OpenXR (x right, y up, z back) to a
# z-up world looking along +x, standing behind the robot. Recorded VR poses are never altered.
DEFAULT_WORLD_T_VR_HEAD = np.array(
    [[0.0, 0.0, -1.0, -0.6], [-1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.8], [0.0, 0.0, 0.0, 1.0]]
)


Transform = tuple[str, str, Any, Any]  # (parent frame, child frame, translation (3,), rotation xyzw (4,))


class ScenePainter(Protocol):
    """Draws the 3D scene of a tick (`robot_formats.recording.scene`): extra `/tf` frames (the
    arm's links) and messages such as ``/scene`` (foxglove.SceneUpdate). One per mapper."""

    def transforms(self, tick: RecordTick) -> list[Transform]:
        """Frames to add to this tick's `/tf`."""
        ...

    def messages(self, tick: RecordTick, tick_ns: int) -> list[Message]:
        """Messages of this tick (usually none; the scene about once a second)."""
        ...


def check_camera(name: str, spec: Any) -> CameraSpec:
    """Validates (width px, height px, vertical fov deg) of camera `name`.

    Raises:
        RecordingError: not three numbers describing a pinhole camera.
    """
    try:
        w, h, fov = spec
        E.pinhole(int(w), int(h), float(fov))
    except (TypeError, ValueError) as exc:
        raise RecordingError(
            f"camera {name!r}: expected (width px, height px, vertical fov deg), got {spec!r}: {exc}"
        ) from None
    return int(w), int(h), float(fov)


class TickMapper:
    """Maps one episode's ticks and events to messages. Single-threaded, one per episode.

    Args:
        cameras: camera name → (width px, height px, vertical fov deg) for the calibration topics;
            cameras not listed use their mount's field of view, else `MCAP_DEFAULT_CAMERA_FOVY_DEG`.
        camera_mounts: camera name → where it sits (its frame in `/tf`).
        policy_gains: gain name → value, shown on every /control/mode message.
        world_T_base: (4, 4) robot base pose in the world frame, metres (identity if None).
        world_T_vr_head: (4, 4) display placement of the VR headset frame in the world.
        scene: draws the 3D scene (link frames in `/tf`, ``/scene``); None: no scene.

    Raises:
        RecordingError: a bad camera description or pose matrix.
    """

    def __init__(
        self,
        cameras: Mapping[str, CameraSpec] | None = None,
        camera_mounts: Mapping[str, CameraMount] | None = None,
        policy_gains: Mapping[str, float] | None = None,
        world_T_base: np.ndarray | None = None,
        world_T_vr_head: np.ndarray | None = None,
        scene: ScenePainter | None = None,
    ) -> None:
        self._scene = scene
        self._cameras: dict[str, CameraSpec] = {n: check_camera(n, s) for n, s in (cameras or {}).items()}
        self._mounts = dict(camera_mounts or {})
        self._gains = {str(k): float(v) for k, v in (policy_gains or {}).items()}
        base = np.eye(4) if world_T_base is None else np.asarray(world_T_base, dtype=float)
        head = DEFAULT_WORLD_T_VR_HEAD if world_T_vr_head is None else np.asarray(world_T_vr_head, dtype=float)
        try:
            self._base_pose = E.pose_from_matrix(base)
            self._head_pose = E.pose_from_matrix(head)
        except ValueError as exc:
            raise RecordingError(f"bad world_T_base / world_T_vr_head: {exc}") from exc
        self._last_robot_key: tuple[float, float] | None = None
        self._prev_joints: tuple[float, tuple[str, ...], np.ndarray] | None = None
        self._last_cmd_seq: int | None = None
        self._last_vr_seq: int | None = None
        self._calib_due: dict[str, float] = {}
        self.first_tick_wall: float | None = None
        self.last_tick_wall: float | None = None
        self.last_tick_seq = -1
        self.encode_errors = 0
        self.errors: list[str] = []
        self.event_counts: dict[str, int] = {}
        self.last_rates: dict[str, dict[str, Any]] = {}
        self.last_counters: dict[str, float] = {}
        self.joints_missing = 0  # robot states without arm joint positions

    # -- figures -------------------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        """Wall time from the first to the last tick mapped, seconds."""
        if self.first_tick_wall is None or self.last_tick_wall is None:
            return 0.0
        return self.last_tick_wall - self.first_tick_wall

    def note_error(self, message: str) -> None:
        """Counts an error that did not come as an event (e.g. the write error that ended the file)."""
        self.errors.append(message)

    def end_metadata(self, outcome: str, messages: int, topic_counts: Mapping[str, int]) -> dict[str, Any]:
        """The computed ``recording_end`` fields (values not yet stringified)."""
        return {
            "outcome": outcome,
            "duration_s": round(self.duration_s, 3),
            "messages": messages,
            "topic_counts": dict(topic_counts),
            "achieved_rates": {k: v.get("achieved_hz") for k, v in self.last_rates.items()},
            "timing": self.last_rates,
            "counters": self.last_counters,
            "drops": {k: v for k, v in self.last_counters.items() if "drop" in k},
            "events": self.event_counts,
            "errors": len(self.errors),
            "last_error": self.errors[-1] if self.errors else "",
            "encode_errors": self.encode_errors,
            "joints_missing": self.joints_missing,
            "ticks_last_seq": self.last_tick_seq,
            "ended": datetime.now(UTC).isoformat(),
        }

    def _skip(self, what: str, exc: Exception) -> None:
        self.encode_errors += 1
        if self.encode_errors <= 10 or self.encode_errors % 1000 == 0:
            log.warning("recording: skipped malformed %s (%d so far): %s", what, self.encode_errors, exc)

    # -- ticks ---------------------------------------------------------------------------------
    def tick(self, tick: RecordTick) -> list[Message]:
        """Messages for one recording tick (malformed pieces are skipped and counted).

        Raises:
            RecordingError: `tick` is not a RecordTick.
        """
        if not isinstance(tick, RecordTick):
            raise RecordingError(f"expected a RecordTick, got {type(tick).__name__}")
        if not (math.isfinite(tick.t_wall) and math.isfinite(tick.t_mono) and tick.t_wall > 0):
            self._skip(
                "tick", ValueError(f"tick {tick.seq} has unusable times t_wall={tick.t_wall}, t_mono={tick.t_mono}")
            )
            return []
        if self.first_tick_wall is None:
            self.first_tick_wall = tick.t_wall
        self.last_tick_wall = tick.t_wall
        self.last_tick_seq = tick.seq
        tick_ns = E.to_ns(tick.t_wall)

        def wall(t_mono: float) -> float:  # a monotonic time of this tick's era on the wall clock
            return tick.t_wall + (t_mono - tick.t_mono)

        out: list[Message] = []
        out += self._robot(tick, wall)
        out += self._command(tick, tick_ns, wall)
        out += self._vr(tick, wall)
        out.append(self._tf(tick, tick_ns))
        out.append(self._mode(tick, tick_ns))
        for name, frames in tick.cameras.items():
            for frame in frames:
                out += self._frame(str(name), frame, tick_ns)
        for event in tick.events:
            out += self.event(event)
        for record in tick.safety:
            out.append(self._safety(record, tick_ns))
        if tick.rates or tick.counters:
            out.append(self._timing(tick, tick_ns))
        if tick.sim_state is not None:
            out.append(self._sim_state(tick, tick_ns))
        if self._scene is not None:
            out += self._scene.messages(tick, tick_ns)
        if tick.assist is not None:
            out += assist_messages(tick.assist, tick_ns)
        return out

    def _safety(self, record: SafetyRecord, tick_ns: int) -> Message:
        """``/safety``: one intervention of the command path, at the time it happened."""
        ns = E.to_ns(record.t_wall) or tick_ns
        body = E.safety_body(ns, record.kind, record.message, record.command_seq, record.source,
                             record.requested, record.sent, record.amount)
        return Message(S.TOPIC_SAFETY, E.dumps(body), ns, ns)

    def _sim_state(self, tick: RecordTick, tick_ns: int) -> Message:
        """``/sim/state``: logged at the tick, published at the simulator's own capture time."""
        st = tick.sim_state
        assert st is not None
        body = {"timestamp": E.time_json(tick_ns), "sim_time": st.sim_time, "physics_step": st.physics_step,
                "scene_hash": st.scene_hash, "blob": st.blob}
        return Message(S.TOPIC_SIM_STATE, E.dumps(body), tick_ns, E.to_ns(st.wall_time) or tick_ns, st.physics_step)

    def _robot(self, tick: RecordTick, wall: Callable[[float], float]) -> list[Message]:
        """Each measured state of the tick once, in order (`robot_states`, or else `robot`)."""
        states = (tick.robot,) if tick.robot_states is None else tick.robot_states
        out: list[Message] = []
        for obs in states:
            if obs is not None:
                out += self._robot_state(obs, tick, wall)
        return out

    def _robot_state(self, obs: RobotObservation, tick: RecordTick, wall: Callable[[float], float]) -> list[Message]:
        key = (obs.t_recv, obs.state.timestamp)
        last = self._last_robot_key
        if key == last or (last is not None and last[1] - OUT_OF_ORDER_S < obs.state.timestamp < last[1]):
            # Recorded already, or measured just before the last one recorded (a reply and the
            # feed overlap when the feed starts or stops); a larger step back is a clock step.
            return []
        self._last_robot_key = key
        st = obs.state
        log_ns = E.to_ns(obs.t_recv_wall) or E.to_ns(wall(obs.t_recv))
        meas_ns = E.to_ns(st.timestamp) or log_ns
        try:
            pos, quat = E.checked_pose(st.pos, st.quat)
            gripper = float(st.gripper)
            if not math.isfinite(gripper):
                raise ValueError(f"gripper {st.gripper!r} is not finite")
        except (TypeError, ValueError) as exc:
            self._skip("robot state", exc)
            return []
        joints = _arm_joints(getattr(st, "joint_positions", None))
        finger = S.FINGER_MAX_M * (1.0 - float(np.clip(gripper, -1.0, 1.0))) / 2.0
        if joints is None:
            self.joints_missing += 1
            names: tuple[str, ...] = S.FINGER_JOINT_NAMES
            q = np.array([finger, finger])
        else:
            names = S.JOINT_NAMES
            q = np.concatenate([joints, [finger, finger]])
        velocity: list[float] = []
        prev = self._prev_joints
        if prev is not None and prev[1] == names and st.timestamp > prev[0]:
            velocity = ((q - prev[2]) / (st.timestamp - prev[0])).tolist()
        self._prev_joints = (st.timestamp, names, q)
        joint_body = {
            "timestamp": E.time_json(meas_ns),
            "name": list(names),
            "position": q,
            "velocity": velocity,
            "gripper": gripper,
            "start_teleop": bool(st.start_teleop),
        }
        latency = finite_only({
            "timestamp": E.time_json(log_ns),
            "rtt_ms": obs.rtt_s * 1e3,
            "state_age_ms": (tick.t_mono - obs.t_recv) * 1e3,
            "transport_ms": (obs.t_recv_wall - st.timestamp) * 1e3,
        })
        return [
            Message(S.TOPIC_EE_POSE, E.pose_in_frame(meas_ns, S.FRAME_BASE, pos, quat), log_ns, meas_ns),
            Message(S.TOPIC_JOINT_STATES, E.dumps(joint_body), log_ns, meas_ns),
            Message(S.TOPIC_LATENCY, E.dumps(latency), log_ns, meas_ns),
        ]

    def _command(self, tick: RecordTick, tick_ns: int, wall: Callable[[float], float]) -> list[Message]:
        if tick.sent_commands is not None:
            return self.sent_commands(tick.sent_commands)
        cmd = tick.command
        if cmd is None or cmd.seq == self._last_cmd_seq:
            return []
        self._last_cmd_seq = cmd.seq
        made_ns = E.to_ns(wall(cmd.created)) or tick_ns
        return self._command_messages(cmd, made_ns, tick_ns, cmd.seq)

    def sent_commands(self, sent: tuple[SentCommand, ...] | list[SentCommand]) -> list[Message]:
        """The command topics for commands as they were sent: each once, in send order.

        Logged at the send time, published at the time the command was made, with the robot
        thread's send counter as the sequence (consecutive: a gap is a command not recorded).
        """
        out: list[Message] = []
        for s in sent:
            if not isinstance(s, SentCommand):
                self._skip("sent command", ValueError(f"expected a SentCommand, got {type(s).__name__}"))
                continue
            sent_ns = E.to_ns(s.t_sent_wall)
            if not sent_ns:
                self._skip("sent command", ValueError(f"command {s.send_seq} has no usable send time"))
                continue
            made_ns = E.to_ns(s.t_sent_wall - (s.t_sent - s.command.created)) or sent_ns
            extra = {"send_seq": s.send_seq, "age_ms": (s.t_sent - s.command.created) * 1e3}
            out += self._command_messages(s.command, made_ns, sent_ns, s.send_seq, extra)
        return out

    def _command_messages(self, cmd: RobotCommand, made_ns: int, log_ns: int, sequence: int,
                          extra: Mapping[str, Any] | None = None) -> list[Message]:
        """/robot/ee_target (unless a reset), /robot/command and /action for one command."""
        target = cmd.target
        try:
            pos, quat = E.checked_pose(target.pos, target.quat)
            action = np.asarray(cmd.action, dtype=float).reshape(-1)
            if action.shape != (7,) or not np.all(np.isfinite(action)):
                raise ValueError(f"expected a finite 7-D action, got {action}")
            gripper = float(target.gripper)
            if not math.isfinite(gripper):
                raise ValueError(f"gripper {target.gripper!r} is not finite")
        except (TypeError, ValueError) as exc:
            self._skip("command", exc)
            return []
        out: list[Message] = []
        if not target.reset:
            out.append(Message(S.TOPIC_EE_TARGET, E.pose_in_frame(made_ns, S.FRAME_BASE, pos, quat), log_ns, made_ns,
                               sequence))
        body = {
            "timestamp": E.time_json(made_ns),
            "seq": cmd.seq,
            "position": pos,
            "orientation": quat,
            "gripper": gripper,
            "reset": bool(target.reset),
            "mode": cmd.mode.value,
            "engaged": bool(cmd.engaged),
            "vr_seq": cmd.vr_seq,
            **(extra or {}),
        }
        out.append(Message(S.TOPIC_COMMAND, E.dumps(finite_only(body)), log_ns, made_ns, sequence))
        act = {"timestamp": E.time_json(made_ns), "seq": cmd.seq, **dict(zip(S.ACTION_FIELDS, action.tolist()))}
        out.append(Message(S.TOPIC_ACTION, E.dumps(act), log_ns, made_ns, sequence))
        return out

    def _vr(self, tick: RecordTick, wall: Callable[[float], float]) -> list[Message]:
        vr = tick.vr
        if vr is None or vr.seq == self._last_vr_seq:
            return []
        self._last_vr_seq = vr.seq
        ns = E.to_ns(wall(vr.t_recv))
        out: list[Message] = []
        for side in ("r", "l"):
            pose = vr.poses.get(side)
            if pose is None:
                continue
            try:
                pos, quat = E.pose_from_matrix(pose)
            except ValueError as exc:
                self._skip(f"VR {side} pose", exc)
                continue
            out.append(Message(S.TOPIC_VR_POSE[side], E.pose_in_frame(ns, S.FRAME_VR_HEAD, pos, quat), ns, ns, vr.seq))
        out.append(Message(S.TOPIC_VR_BUTTONS, E.dumps(_buttons_body(vr, ns)), ns, ns, vr.seq))
        return out

    def _tf(self, tick: RecordTick, tick_ns: int) -> Message:
        tfs: list[tuple[str, str, Any, Any]] = [
            (S.FRAME_WORLD, S.FRAME_BASE, *self._base_pose),
            (S.FRAME_WORLD, S.FRAME_VR_HEAD, *self._head_pose),
        ]
        if tick.robot is not None:
            try:
                tfs.append((S.FRAME_BASE, S.FRAME_EE, *E.checked_pose(tick.robot.state.pos, tick.robot.state.quat)))
            except (TypeError, ValueError):
                pass  # counted when the state itself was written
        if tick.command is not None and not tick.command.target.reset:
            try:
                tfs.append(
                    (
                        S.FRAME_BASE,
                        S.FRAME_EE_TARGET,
                        *E.checked_pose(tick.command.target.pos, tick.command.target.quat),
                    )
                )
            except (TypeError, ValueError):
                pass
        if tick.vr is not None:
            for side, frame in S.FRAME_VR.items():
                pose = tick.vr.poses.get(side)
                if pose is not None:
                    try:
                        tfs.append((S.FRAME_VR_HEAD, frame, *E.pose_from_matrix(pose)))
                    except ValueError:
                        pass
        for name, mount in self._mounts.items():
            parent = S.FRAME_BASE if mount.parent == "robot_base" else S.FRAME_EE
            tfs.append((parent, camera_frame(name), mount.position, mount.orientation))
        if self._scene is not None:
            tfs += self._scene.transforms(tick)
        return Message(S.TOPIC_TF, E.frame_transforms(tick_ns, tfs), tick_ns, tick_ns, tick.seq)

    def _mode(self, tick: RecordTick, tick_ns: int) -> Message:
        cmd = tick.command
        body: dict[str, Any] = {
            "timestamp": E.time_json(tick_ns),
            "mode": tick.mode.value,
            "predictive": tick.mode.value == "PREDICTIVE",
            "engaged": bool(cmd.engaged) if cmd is not None else False,
            "command_seq": cmd.seq if cmd is not None else -1,
            "vr_seq": tick.vr.seq if tick.vr is not None else -1,
            "vr_to_command_ms": (cmd.created - cmd.vr_t_recv) * 1e3 if cmd is not None else None,
            "gains": [{"name": k, "value": v} for k, v in self._gains.items()],
        }
        return Message(S.TOPIC_MODE, E.dumps(finite_only(body)), tick_ns, tick_ns, tick.seq)

    def _frame(self, name: str, frame: CameraFrame, tick_ns: int) -> list[Message]:
        if not isinstance(frame, CameraFrame) or not frame.jpeg:
            self._skip(f"camera {name} frame", ValueError("not a CameraFrame with JPEG bytes"))
            return []
        if name not in self._cameras:
            mount = self._mounts.get(name)
            fov = mount.fovy_deg if mount is not None and mount.fovy_deg else MCAP_DEFAULT_CAMERA_FOVY_DEG
            try:
                self._cameras[name] = check_camera(name, (frame.width, frame.height, fov))
            except RecordingError as exc:
                self._skip(f"camera {name} frame", exc)
                return []
        capture_ns = E.to_ns(frame.timestamp) or tick_ns
        frame_id = camera_frame(name)
        out: list[Message] = []
        t = tick_ns / E.NS_PER_S
        if t >= self._calib_due.get(name, -math.inf):
            w, h, fov = self._cameras[name]
            out.append(
                Message(
                    S.camera_calibration_topic(name),
                    E.camera_calibration(capture_ns, frame_id, w, h, fov),
                    tick_ns,
                    capture_ns,
                )
            )
            self._calib_due[name] = t + MCAP_CALIBRATION_PERIOD_S
        out.append(
            Message(
                S.camera_image_topic(name),
                E.compressed_image(capture_ns, frame_id, frame.jpeg),
                tick_ns,
                capture_ns,
                frame.seq,
            )
        )
        return out

    def _timing(self, tick: RecordTick, tick_ns: int) -> Message:
        loops: dict[str, dict[str, Any]] = {}
        for name, snap in tick.rates.items():
            loops[str(name)] = finite_only({
                "target_hz": snap.target_hz,
                "achieved_hz": snap.achieved_hz,
                "ticks": snap.ticks,
                "missed": snap.missed,
                "late": snap.late,
                "jitter_p50_ms": snap.jitter_p50_ms,
                "jitter_p99_ms": snap.jitter_p99_ms,
                "jitter_max_ms": snap.jitter_max_ms,
                "work_p99_ms": snap.work_p99_ms,
                "run_hz": snap.run_hz,
                "run_jitter_p99_ms": snap.run_jitter_p99_ms,
                "run_jitter_max_ms": snap.run_jitter_max_ms,
            })
        if loops:
            self.last_rates = loops
        counters = {str(k): float(v) for k, v in tick.counters.items() if _finite_number(v)}
        if counters:
            self.last_counters = counters
        body = {
            "timestamp": E.time_json(tick_ns),
            "loops": [{"name": name, **fig} for name, fig in loops.items()],
            "counters": [{"name": k, "value": v} for k, v in counters.items()],
        }
        return Message(S.TOPIC_TIMING, E.dumps(body), tick_ns, tick_ns)

    # -- events --------------------------------------------------------------------------------
    def event(self, event: Event) -> list[Message]:
        """The /events (JSON) and /log (foxglove.Log) messages of one event.

        Raises:
            RecordingError: `event` is not an Event.
        """
        if not isinstance(event, Event):
            raise RecordingError(f"expected an Event, got {type(event).__name__}")
        ns = E.to_ns(event.t_wall) or E.to_ns(time.time())
        self.event_counts[event.kind] = self.event_counts.get(event.kind, 0) + 1
        if "error" in event.kind:
            self.errors.append(f"{event.kind}: {event.message}")
        body = {"timestamp": E.time_json(ns), "kind": event.kind, "message": event.message, "data": dict(event.data)}
        return [
            Message(S.TOPIC_EVENTS, E.dumps(body), ns, ns),
            Message(S.TOPIC_LOG, E.log_message(ns, event.kind, event.message), ns, ns),
        ]


def _finite_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.number)) and math.isfinite(float(v))


def _arm_joints(value: Any) -> np.ndarray | None:
    """(7,) arm joint positions, or None when the server did not report them (absent or NaN)."""
    if value is None:
        return None
    try:
        joints = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None
    if joints.shape != (7,) or not np.all(np.isfinite(joints)):
        return None
    return joints


def _buttons_body(vr: VRSample, ns: int) -> dict[str, Any]:
    sides: dict[str, dict[str, Any]] = {}
    for side, prefix, analog in (("right", "right", RIGHT_ANALOG), ("left", "left", LEFT_ANALOG)):
        out: dict[str, Any] = {}
        trig, grip = analog
        js = f"{prefix}JS"
        for key, value in vr.buttons.items():
            if key == trig:
                out["trigger"] = _analog(value)
            elif key == grip:
                out["grip"] = _analog(value)
            elif key == js:
                try:
                    x, y = value  # type: ignore[misc]
                    out["joystick_x"], out["joystick_y"] = float(x), float(y)
                except (TypeError, ValueError):
                    pass
            elif key in _SIDE_OF and _SIDE_OF[key] == side:
                out[key] = bool(value)
        out = finite_only(out)
        if out:
            sides[side] = out
    return {"timestamp": E.time_json(ns), "seq": vr.seq, **sides}


def _analog(value: Any) -> float | None:
    try:
        return analog_value(value)
    except ValueError:
        return None


_SIDE_OF = {**{k: "right" for k in RIGHT_BOOLS}, **{k: "left" for k in LEFT_BOOLS}}

