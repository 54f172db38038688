"""`EpisodeWriter`: streams RecordTicks into one crash-safe, Foxglove-native MCAP file.

The file is written as ``NAME.mcap.partial``, flushed (chunk closed, `fsync`) at least every
`flush_period_s`, and renamed to ``NAME.mcap`` only once its summary is written, so a crash loses
at most the last flush period and the leftover ``.partial`` can be rebuilt with `recover`.
See `oculus_server.recording.schemas` for the topics.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from mcap.writer import CompressionType, IndexType, Writer

from frankateach import constants as C
from frankateach.messages import CameraFrame
from oculus_server.errors import RecordingError
from oculus_server.recording import encode as E
from oculus_server.recording import schemas as S
from oculus_server.recording.sink import DurableFile, Opener, fsync_dir, open_exclusive
from oculus_server.types import LEFT_ANALOG, LEFT_BOOLS, RIGHT_ANALOG, RIGHT_BOOLS, Event, RecordTick, VRSample

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
WRITER_NAME = "oculus_server.recording"
COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
_OUTCOME = re.compile(r"^[a-z][a-z0-9_-]*$")
CameraSpec = tuple[int, int, float]  # (width px, height px, vertical field of view degrees)

# Display-only placement of the headset frame in the world: OpenXR (x right, y up, z back) to a
# z-up world looking along +x, standing behind the robot. Recorded VR poses are never altered.
DEFAULT_WORLD_T_VR_HEAD = np.array(
    [[0.0, 0.0, -1.0, -0.6], [-1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.8], [0.0, 0.0, 0.0, 1.0]]
)


def partial_path(final_path: Path) -> Path:
    """Returns the in-progress name of `final_path` (``NAME.mcap`` → ``NAME.mcap.partial``)."""
    return final_path.with_name(final_path.name + PARTIAL_SUFFIX)


def as_str_map(values: Mapping[str, Any], what: str) -> dict[str, str]:
    """Returns MCAP metadata (str → str); non-string values are JSON-encoded.

    Raises:
        RecordingError: a key is not a string.
    """
    out: dict[str, str] = {}
    for k, v in values.items():
        if not isinstance(k, str):
            raise RecordingError(f"{what}: metadata keys must be strings, got {k!r}")
        out[k] = v if isinstance(v, str) else json.dumps(E.jsonable(v), separators=(",", ":"))
    return out


@dataclass
class _Channel:
    id: int
    count: int = 0
    sequence: int = 0  # per-topic counter for topics without a source counter


class EpisodeWriter:
    """Writes one episode. Single-threaded: only the daemon's MCAP-writer thread may call it.

    Args:
        final_path: where the finished recording goes (``*.mcap``); must not exist yet.
        start_metadata: "recording_start" metadata (operator, task, robot, config, versions,
            rates …); values that are not strings are JSON-encoded.
        cameras: camera name → (width px, height px, vertical fov deg) for the calibration
            topics; cameras not listed are inferred from their frames with
            `MCAP_DEFAULT_CAMERA_FOVY_DEG`.
        attachments: (name, media type, bytes) to embed, e.g. ("panda.xml", "application/xml", …).
        flush_period_s: close the chunk and fsync at least this often.
        compression: chunk compression, "zstd", "lz4" or "none".
        chunk_size: a chunk is also closed when it grows past this many bytes.
        policy_gains: shown on every /control/mode message.
        world_T_base: (4, 4) robot base pose in the world frame, metres (identity if None).
        world_T_vr_head: (4, 4) display placement of the VR headset frame in the world.
        opener: opens the partial file for writing (hook for tests; default refuses to overwrite).

    Raises:
        RecordingError: the file exists already or cannot be created.
    """

    def __init__(
        self,
        final_path: Path | str,
        start_metadata: Mapping[str, Any],
        cameras: Mapping[str, CameraSpec] | None = None,
        attachments: Sequence[tuple[str, str, bytes]] = (),
        flush_period_s: float = C.MCAP_FLUSH_PERIOD_S,
        compression: str = C.MCAP_COMPRESSION,
        chunk_size: int = C.MCAP_CHUNK_SIZE,
        policy_gains: Mapping[str, float] | None = None,
        world_T_base: np.ndarray | None = None,
        world_T_vr_head: np.ndarray | None = None,
        opener: Opener = open_exclusive,
    ) -> None:
        self.final_path = Path(final_path)
        if self.final_path.suffix != ".mcap":
            raise RecordingError(f"recording path must end in .mcap, got {self.final_path}")
        if self.final_path.exists():
            raise RecordingError(f"recording {self.final_path} already exists; refusing to overwrite it")
        if compression not in COMPRESSIONS:
            raise RecordingError(f"unknown compression {compression!r}: expected one of {sorted(COMPRESSIONS)}")
        if not flush_period_s > 0:
            raise RecordingError(f"flush period must be > 0 s, got {flush_period_s}")
        self.flush_period_s = float(flush_period_s)
        self._cameras: dict[str, CameraSpec] = {}
        for name, spec in (cameras or {}).items():
            self._cameras[name] = self._check_camera(name, spec)
        self._gains = {str(k): float(v) for k, v in (policy_gains or {}).items()}
        base = np.eye(4) if world_T_base is None else np.asarray(world_T_base, dtype=float)
        head = DEFAULT_WORLD_T_VR_HEAD if world_T_vr_head is None else np.asarray(world_T_vr_head, dtype=float)
        try:
            self._base_pose = E.pose_from_matrix(base)
            self._head_pose = E.pose_from_matrix(head)
        except ValueError as exc:
            raise RecordingError(f"bad world_T_base / world_T_vr_head: {exc}") from exc
        start = as_str_map(start_metadata, "start_metadata")

        self._path = partial_path(self.final_path)
        self._file = DurableFile(self._path, opener)
        self._writer = Writer(
            self._file,  # type: ignore[arg-type]  # a write/tell/flush stream is all it needs
            chunk_size=chunk_size,
            compression=COMPRESSIONS[compression],
            index_types=IndexType.ALL,
            enable_crcs=True,
        )
        self._channels: dict[str, _Channel] = {}
        self._schema_ids: dict[str, int] = {}
        self._closed = False
        self._messages = 0
        self._encode_errors = 0
        self._first_tick_wall: float | None = None
        self._last_tick_wall: float | None = None
        self._last_flush = time.monotonic()
        self.flushes = 0
        self.last_flushed_tick_seq = -1
        self._last_tick_seq = -1
        self._last_robot_key: tuple[float, float] | None = None
        self._prev_joints: tuple[float, np.ndarray] | None = None
        self._last_cmd_seq: int | None = None
        self._last_vr_seq: int | None = None
        self._calib_due: dict[str, float] = {}
        self._last_rates: dict[str, Any] = {}
        self._last_counters: dict[str, float] = {}
        self._errors: list[str] = []
        self._event_counts: dict[str, int] = {}
        self._created_wall = time.time()

        meta = {
            **start,
            "writer": WRITER_NAME,
            "schema_version": S.SCHEMA_VERSION,
            "flush_period_s": repr(self.flush_period_s),
            "compression": compression,
            "created": datetime.fromtimestamp(self._created_wall, timezone.utc).isoformat(),
        }
        try:
            self._writer.start(profile="", library=f"{WRITER_NAME} (mcap-python)")
            self._writer.add_metadata("recording_start", meta)
            now_ns = E.to_ns(self._created_wall)
            for name, media_type, data in attachments:
                self._writer.add_attachment(now_ns, now_ns, str(name), str(media_type), bytes(data))
            for spec in S.FIXED_TOPICS:
                self._register(spec)
            self._sync()
        except RecordingError:
            self._file.close_quietly()
            self._path.unlink(missing_ok=True)  # ours (created exclusively) and holds no data yet
            raise

    # -- properties -----------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The file being written (the ``.partial`` until `close`, then the final file)."""
        return self._path

    @property
    def messages(self) -> int:
        """Messages written so far."""
        return self._messages

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the OS so far (the open chunk is not included until it is flushed)."""
        return self._file.bytes_written

    @property
    def duration_s(self) -> float:
        """Wall time from the first to the last tick written, seconds."""
        if self._first_tick_wall is None or self._last_tick_wall is None:
            return 0.0
        return self._last_tick_wall - self._first_tick_wall

    @property
    def topic_counts(self) -> dict[str, int]:
        """Messages written per topic (topics with none are left out)."""
        return {t: c.count for t, c in self._channels.items() if c.count}

    @property
    def encode_errors(self) -> int:
        """Messages skipped because their content was malformed (logged)."""
        return self._encode_errors

    # -- registration ---------------------------------------------------------------------------
    @staticmethod
    def _check_camera(name: str, spec: Any) -> CameraSpec:
        try:
            w, h, fov = spec
            E.pinhole(int(w), int(h), float(fov))
        except (TypeError, ValueError) as exc:
            raise RecordingError(
                f"camera {name!r}: expected (width px, height px, vertical fov deg), got {spec!r}: {exc}"
            ) from None
        return int(w), int(h), float(fov)

    def _register(self, spec: S.TopicSpec) -> _Channel:
        schema_id = self._schema_ids.get(spec.schema)
        if schema_id is None:
            name, encoding, data = S.schema_record(spec.schema)
            schema_id = self._writer.register_schema(name=name, encoding=encoding, data=data)
            self._schema_ids[spec.schema] = schema_id
        cid = self._writer.register_channel(spec.topic, spec.encoding, schema_id)
        channel = _Channel(cid)
        self._channels[spec.topic] = channel
        return channel

    def _camera_channels(self, name: str) -> None:
        if S.camera_image_topic(name) not in self._channels:
            for spec in S.camera_topics(name):
                self._register(spec)

    # -- writing --------------------------------------------------------------------------------
    def _add(self, topic: str, data: bytes, log_ns: int, publish_ns: int, sequence: int | None = None) -> None:
        channel = self._channels[topic]
        if sequence is None:
            sequence = channel.sequence
        channel.sequence += 1
        channel.count += 1
        self._messages += 1
        self._writer.add_message(channel.id, log_ns, data, publish_ns or log_ns, sequence & 0xFFFFFFFF)

    def _skip(self, what: str, exc: Exception) -> None:
        self._encode_errors += 1
        if self._encode_errors <= 10 or self._encode_errors % 1000 == 0:
            log.warning("recording %s: skipped malformed %s (%d so far): %s", self._path.name, what, self._encode_errors, exc)

    def _check_open(self) -> None:
        if self._closed:
            raise RecordingError(f"recording {self._path} is closed")
        if self._file.failed is not None:
            raise RecordingError(f"recording {self._path} failed earlier: {self._file.failed}")

    def write(self, tick: RecordTick) -> None:
        """Writes everything in one recording tick; flushes when the flush period is due.

        Malformed pieces (a non-4×4 pose, NaN targets) are skipped and counted, never fatal.

        Raises:
            RecordingError: the file cannot be written (disk full, permissions …); the caller
                stops this recording and calls `abort()`.
        """
        self._check_open()
        if not isinstance(tick, RecordTick):
            raise RecordingError(f"expected a RecordTick, got {type(tick).__name__}")
        if not (math.isfinite(tick.t_wall) and math.isfinite(tick.t_mono) and tick.t_wall > 0):
            self._skip("tick", ValueError(f"tick {tick.seq} has unusable times t_wall={tick.t_wall}, t_mono={tick.t_mono}"))
            return
        if self._first_tick_wall is None:
            self._first_tick_wall = tick.t_wall
        self._last_tick_wall = tick.t_wall
        self._last_tick_seq = tick.seq
        tick_ns = E.to_ns(tick.t_wall)

        def wall(t_mono: float) -> float:  # a monotonic time of this tick's era on the wall clock
            return tick.t_wall + (t_mono - tick.t_mono)

        self._write_robot(tick, wall)
        self._write_command(tick, tick_ns, wall)
        self._write_vr(tick, wall)
        self._write_tf(tick, tick_ns)
        self._write_mode(tick, tick_ns, wall)
        for name, frames in tick.cameras.items():
            for frame in frames:
                self._write_frame(str(name), frame, tick_ns)
        for event in tick.events:
            self.write_event(event)
        for record in tick.safety:
            ns = E.to_ns(record.t_wall) or tick_ns
            body = E.safety_body(ns, record.kind, record.message, record.command_seq, record.source,
                                 record.requested, record.sent, record.amount)
            self._add(S.TOPIC_SAFETY, E.dumps(body), ns, ns)
        if tick.rates or tick.counters:
            self._write_timing(tick, tick_ns)
        if time.monotonic() - self._last_flush >= self.flush_period_s:
            self.flush()

    def _write_robot(self, tick: RecordTick, wall: Any) -> None:
        obs = tick.robot
        if obs is None:
            return
        key = (obs.t_recv, obs.state.timestamp)
        if key == self._last_robot_key:
            return
        self._last_robot_key = key
        st = obs.state
        log_ns = E.to_ns(obs.t_recv_wall) or E.to_ns(wall(obs.t_recv))
        meas_ns = E.to_ns(st.timestamp) or log_ns
        try:
            pos, quat = E.checked_pose(st.pos, st.quat)
            joints = np.asarray(st.joint_positions, dtype=float).reshape(-1)
            if joints.shape != (7,):
                raise ValueError(f"expected 7 joint positions, got {joints.shape}")
        except ValueError as exc:
            self._skip("robot state", exc)
            return
        finger = S.FINGER_MAX_M * (1.0 - float(np.clip(st.gripper, -1.0, 1.0))) / 2.0
        q = np.concatenate([joints, [finger, finger]])
        velocity: list[float] = []
        if self._prev_joints is not None and st.timestamp > self._prev_joints[0]:
            velocity = ((q - self._prev_joints[1]) / (st.timestamp - self._prev_joints[0])).tolist()
        self._prev_joints = (st.timestamp, q)
        self._add(S.TOPIC_EE_POSE, E.pose_in_frame(log_ns, S.FRAME_BASE, pos, quat), log_ns, meas_ns)
        self._add(
            S.TOPIC_JOINT_STATES,
            E.dumps(
                {
                    "timestamp": E.time_json(meas_ns),
                    "name": S.JOINT_NAMES,
                    "position": q,
                    "velocity": velocity,
                    "gripper": float(st.gripper),
                    "start_teleop": bool(st.start_teleop),
                }
            ),
            log_ns,
            meas_ns,
        )
        self._add(
            S.TOPIC_LATENCY,
            E.dumps(
                {
                    "timestamp": E.time_json(log_ns),
                    "rtt_ms": obs.rtt_s * 1e3,
                    "state_age_ms": (tick.t_mono - obs.t_recv) * 1e3,
                    "transport_ms": (obs.t_recv_wall - st.timestamp) * 1e3,
                }
            ),
            log_ns,
            meas_ns,
        )

    def _write_command(self, tick: RecordTick, tick_ns: int, wall: Any) -> None:
        cmd = tick.command
        if cmd is None or cmd.seq == self._last_cmd_seq:
            return
        self._last_cmd_seq = cmd.seq
        made_ns = E.to_ns(wall(cmd.created)) or tick_ns
        target = cmd.target
        try:
            pos, quat = E.checked_pose(target.pos, target.quat)
            action = np.asarray(cmd.action, dtype=float).reshape(-1)
            if action.shape != (7,):
                raise ValueError(f"expected a 7-D action, got shape {action.shape}")
        except ValueError as exc:
            self._skip("command", exc)
            return
        if not target.reset:
            self._add(S.TOPIC_EE_TARGET, E.pose_in_frame(tick_ns, S.FRAME_BASE, pos, quat), tick_ns, made_ns, cmd.seq)
        self._add(
            S.TOPIC_COMMAND,
            E.dumps(
                {
                    "timestamp": E.time_json(made_ns),
                    "seq": cmd.seq,
                    "position": pos,
                    "orientation": quat,
                    "gripper": float(target.gripper),
                    "reset": bool(target.reset),
                    "mode": cmd.mode.value,
                    "engaged": bool(cmd.engaged),
                    "vr_seq": cmd.vr_seq,
                }
            ),
            tick_ns,
            made_ns,
            cmd.seq,
        )
        body = {"timestamp": E.time_json(made_ns), "seq": cmd.seq}
        body.update(zip(S.ACTION_FIELDS, action.tolist()))
        self._add(S.TOPIC_ACTION, E.dumps(body), tick_ns, made_ns, cmd.seq)

    def _write_vr(self, tick: RecordTick, wall: Any) -> None:
        vr = tick.vr
        if vr is None or vr.seq == self._last_vr_seq:
            return
        self._last_vr_seq = vr.seq
        ns = E.to_ns(wall(vr.t_recv))
        for side in ("r", "l"):
            pose = vr.poses.get(side)
            if pose is None:
                continue
            try:
                pos, quat = E.pose_from_matrix(pose)
            except ValueError as exc:
                self._skip(f"VR {side} pose", exc)
                continue
            self._add(S.TOPIC_VR_POSE[side], E.pose_in_frame(ns, S.FRAME_VR_HEAD, pos, quat), ns, ns, vr.seq)
        self._add(S.TOPIC_VR_BUTTONS, E.dumps(_buttons_body(vr, ns)), ns, ns, vr.seq)

    def _write_tf(self, tick: RecordTick, tick_ns: int) -> None:
        tfs: list[tuple[str, str, Any, Any]] = [
            (S.FRAME_WORLD, S.FRAME_BASE, *self._base_pose),
            (S.FRAME_WORLD, S.FRAME_VR_HEAD, *self._head_pose),
        ]
        if tick.robot is not None:
            try:
                tfs.append((S.FRAME_BASE, S.FRAME_EE, *E.checked_pose(tick.robot.state.pos, tick.robot.state.quat)))
            except ValueError:
                pass  # counted when the state itself was written
        if tick.command is not None and not tick.command.target.reset:
            try:
                tfs.append((S.FRAME_BASE, S.FRAME_EE_TARGET, *E.checked_pose(tick.command.target.pos, tick.command.target.quat)))
            except ValueError:
                pass
        if tick.vr is not None:
            for side, frame in S.FRAME_VR.items():
                pose = tick.vr.poses.get(side)
                if pose is not None:
                    try:
                        tfs.append((S.FRAME_VR_HEAD, frame, *E.pose_from_matrix(pose)))
                    except ValueError:
                        pass
        self._add(S.TOPIC_TF, E.frame_transforms(tick_ns, tfs), tick_ns, tick_ns, tick.seq)

    def _write_mode(self, tick: RecordTick, tick_ns: int, wall: Any) -> None:
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
        self._add(S.TOPIC_MODE, E.dumps(body), tick_ns, tick_ns, tick.seq)

    def _write_frame(self, name: str, frame: CameraFrame, tick_ns: int) -> None:
        if not isinstance(frame, CameraFrame) or not frame.jpeg:
            self._skip(f"camera {name} frame", ValueError("not a CameraFrame with JPEG bytes"))
            return
        self._camera_channels(name)
        if name not in self._cameras:
            try:
                self._cameras[name] = self._check_camera(name, (frame.width, frame.height, C.MCAP_DEFAULT_CAMERA_FOVY_DEG))
            except RecordingError as exc:
                self._skip(f"camera {name} frame", exc)
                return
        capture_ns = E.to_ns(frame.timestamp) or tick_ns
        frame_id = f"camera_{name}"
        t = tick_ns / E.NS_PER_S
        if t >= self._calib_due.get(name, -math.inf):
            w, h, fov = self._cameras[name]
            self._add(S.camera_calibration_topic(name), E.camera_calibration(capture_ns, frame_id, w, h, fov), tick_ns, capture_ns)
            self._calib_due[name] = t + C.MCAP_CALIBRATION_PERIOD_S
        self._add(S.camera_image_topic(name), E.compressed_image(capture_ns, frame_id, frame.jpeg), tick_ns, capture_ns, frame.seq)

    def _write_timing(self, tick: RecordTick, tick_ns: int) -> None:
        loops: dict[str, dict[str, Any]] = {}
        for name, snap in tick.rates.items():
            loops[str(name)] = {
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
            }
        if loops:
            self._last_rates = loops
        if tick.counters:
            self._last_counters = {str(k): float(v) for k, v in tick.counters.items()}
        body = {
            "timestamp": E.time_json(tick_ns),
            "loops": [{"name": name, **fig} for name, fig in loops.items()],
            "counters": [{"name": str(k), "value": v} for k, v in tick.counters.items()],
        }
        self._add(S.TOPIC_TIMING, E.dumps(body), tick_ns, tick_ns)

    def write_event(self, event: Event) -> None:
        """Writes one event on /events (JSON) and /log (foxglove.Log).

        Raises:
            RecordingError: the file cannot be written.
        """
        self._check_open()
        if not isinstance(event, Event):
            raise RecordingError(f"expected an Event, got {type(event).__name__}")
        ns = E.to_ns(event.t_wall) or E.to_ns(time.time())
        self._event_counts[event.kind] = self._event_counts.get(event.kind, 0) + 1
        if "error" in event.kind:
            self._errors.append(f"{event.kind}: {event.message}")
        body = {"timestamp": E.time_json(ns), "kind": event.kind, "message": event.message, "data": dict(event.data)}
        self._add(S.TOPIC_EVENTS, E.dumps(body), ns, ns)
        self._add(S.TOPIC_LOG, E.log_message(ns, event.kind, event.message), ns, ns)

    # -- durability -----------------------------------------------------------------------------
    def _sync(self) -> None:
        self._writer.flush()
        self._file.sync()
        self._last_flush = time.monotonic()
        self.flushes += 1
        self.last_flushed_tick_seq = self._last_tick_seq

    def flush(self) -> None:
        """Closes the open chunk and fsyncs now (also done automatically every flush period).

        Raises:
            RecordingError: the file cannot be written.
        """
        self._check_open()
        self._sync()

    # -- ending ---------------------------------------------------------------------------------
    def _end_metadata(self, outcome: str, extra: Mapping[str, Any]) -> dict[str, str]:
        drops = {k: v for k, v in self._last_counters.items() if "drop" in k}
        meta: dict[str, Any] = {
            "outcome": outcome,
            "duration_s": round(self.duration_s, 3),
            "messages": self._messages,
            "topic_counts": self.topic_counts,
            "achieved_rates": {k: v.get("achieved_hz") for k, v in self._last_rates.items()},
            "timing": self._last_rates,
            "counters": self._last_counters,
            "drops": drops,
            "events": self._event_counts,
            "errors": len(self._errors),
            "last_error": self._errors[-1] if self._errors else "",
            "encode_errors": self._encode_errors,
            "ticks_last_seq": self._last_tick_seq,
            "ended": datetime.now(timezone.utc).isoformat(),
        }
        meta.update(extra)
        return as_str_map(meta, "end_metadata")

    def close(self, outcome: str, end_metadata: Mapping[str, Any] | None = None) -> Path:
        """Finishes the file (end metadata, summary, index), fsyncs and renames it to its final name.

        Args:
            outcome: "success", "failure", "shutdown", … (lower-case word).
            end_metadata: extra "recording_end" fields; they override the computed ones.

        Returns:
            The final path (``NAME.mcap``).

        Raises:
            RecordingError: bad outcome, or the file cannot be written (then call `abort()`).
        """
        self._check_open()
        if not isinstance(outcome, str) or not _OUTCOME.match(outcome):
            raise RecordingError(f"outcome must be a lower-case word like 'success' or 'failure', got {outcome!r}")
        meta = self._end_metadata(outcome, end_metadata or {})
        try:
            self._sync()  # every message is on disk before the end record claims completeness
            self._writer.add_metadata("recording_end", meta)
            self._writer.finish()
            self._file.sync()
            self._file.close()
        except RecordingError as exc:
            kept = self.abort(str(exc))  # salvage in place: cut the damaged tail, add a summary
            where = f"what was written is kept in {kept}" if kept else f"{self._path} is left for `teleop-replay recover`"
            raise RecordingError(f"could not close {self.final_path.name}: {exc}; {where}") from exc
        self._closed = True
        if self.final_path.exists():
            raise RecordingError(f"{self.final_path} appeared while recording; the recording stays at {self._path}")
        try:
            os.replace(self._path, self.final_path)
        except OSError as exc:
            raise RecordingError(f"cannot rename {self._path} to {self.final_path}: {exc}") from exc
        fsync_dir(self.final_path.parent)
        self._path = self.final_path
        log.info("recording %s closed (%s): %d messages, %.1f s", self.final_path.name, outcome, self._messages, self.duration_s)
        return self.final_path

    def abort(self, reason: str = "") -> Path | None:
        """Ends a recording that cannot go on (e.g. after a write error) and keeps what it can.

        The file is cut after its last complete chunk and given a summary in place (needs only
        a few kB, so it works on a full disk), then renamed to its final name.

        Returns:
            The final path, or None if even that failed (the ``.partial`` is left for `recover`).
        """
        if self._closed:
            return self._path if self._path == self.final_path else None
        self._closed = True
        if self._file.failed is None:
            try:
                self._sync()  # keep everything written so far if the file is still healthy
            except RecordingError as exc:
                reason = reason or str(exc)
        self._file.close_quietly()
        from oculus_server.recording.recover import finalize_partial  # local: recover imports writer

        end = self._end_metadata("aborted", {"reason": reason or (self._file.failed or "aborted")})
        try:
            report = finalize_partial(self._path, self.final_path, end)
        except RecordingError as exc:
            log.error("recording %s could not be finalized (%s); run `teleop-replay recover %s`", self._path, exc, self._path)
            return None
        self._path = self.final_path
        log.warning("recording %s aborted: kept %d messages", self.final_path.name, report.messages_recovered)
        return self.final_path


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
        if out:
            sides[side] = out
    return {"timestamp": E.time_json(ns), "seq": vr.seq, **sides}


def _analog(value: Any) -> float | None:
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


_SIDE_OF = {**{k: "right" for k in RIGHT_BOOLS}, **{k: "left" for k in LEFT_BOOLS}}
