"""A recording loaded into arrays: the common input of export, plot and play.

Times are wall-clock seconds (Unix epoch) unless named ``*_rel``; positions metres in the robot
base frame; quaternions xyzw; gripper −1 open … +1 closed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_formats.recording import schemas as S
from robot_formats.recording.camera_mounts import CameraMount, camera_mounts_from_dict
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.reader import RecordingReader

Progress = Callable[[int, int], None]  # (done, total) messages


@dataclass
class CameraStream:
    """One camera's frames in recorded order.

    Attributes:
        log_t: (F,) when the daemon recorded each frame (tick wall time), s.
        capture_t: (F,) capture time on the camera server's clock, s.
        seq: (F,) camera frame counters.
        jpeg: the encoded frames (empty when loaded without images).
    """

    name: str
    log_t: np.ndarray
    capture_t: np.ndarray
    seq: np.ndarray
    jpeg: list[bytes]
    width: int = 0
    height: int = 0
    intrinsics: np.ndarray | None = None  # (3, 3) K of the recorded calibration, pixels


@dataclass
class Episode:
    """Everything `export`, `plot` and `play` need from one recording."""

    path: Path
    metadata: dict[str, dict[str, str]]
    t0: float  # first message log time, s
    tick_t: np.ndarray  # (N,) recording tick wall times (/control/mode)
    tick_seq: np.ndarray
    tick_predictive: np.ndarray  # (N,) bool
    tick_engaged: np.ndarray  # (N,) bool
    robot_t: np.ndarray  # (M,) receive wall time of each measured state
    robot_meas_t: np.ndarray  # (M,) measurement time (robot server clock)
    ee_pos: np.ndarray  # (M, 3)
    ee_quat: np.ndarray  # (M, 4)
    gripper: np.ndarray  # (M,)
    joints: np.ndarray  # (M, 7) rad; NaN where the robot server did not report them
    cmd_t: np.ndarray  # (K,) tick wall time each command was recorded
    cmd_made_t: np.ndarray  # (K,) when it was made (wall)
    cmd_seq: np.ndarray
    target_pos: np.ndarray  # (K, 3)
    target_quat: np.ndarray  # (K, 4)
    target_gripper: np.ndarray  # (K,)
    target_reset: np.ndarray  # (K,) bool
    action_t: np.ndarray  # (A,)
    action: np.ndarray  # (A, 7) policy action
    vr_t: np.ndarray  # (V,)
    vr_right_grip: np.ndarray
    vr_right_trigger: np.ndarray
    vr_left_grip: np.ndarray
    vr_left_trigger: np.ndarray
    latency_t: np.ndarray
    rtt_ms: np.ndarray
    state_age_ms: np.ndarray
    timing_t: np.ndarray  # (R,)
    loop_hz: dict[str, np.ndarray]  # loop name -> (R,) achieved Hz (NaN where absent)
    loop_jitter_p99_ms: dict[str, np.ndarray]
    counters: dict[str, np.ndarray]
    events: list[tuple[float, str, str, dict[str, Any]]]  # (wall t, kind, message, data)
    cameras: dict[str, CameraStream] = field(default_factory=dict)
    joint_vel: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))  # (M, 7) rad/s as recorded; NaN if unknown
    transport_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (L,) measurement -> receipt, ms

    @property
    def task(self) -> str:
        """The task / instruction from the start metadata ("" if none)."""
        start = self.metadata.get("recording_start", {})
        for key in ("task", "instruction", "language_instruction"):
            if start.get(key):
                return start[key]
        return ""

    @property
    def outcome(self) -> str:
        return self.metadata.get("recording_end", {}).get("outcome", "unknown")

    def record_hz(self) -> float:
        """The recording tick rate: from the start metadata if given, else the median tick period."""
        start = self.metadata.get("recording_start", {})
        candidates = [start.get(k, "") for k in ("record_hz", "record_freq")]
        match = re.search(r"record=([0-9.]+)", start.get("rates_hz", ""))  # the daemon's "vr=50 … record=40"
        if match:
            candidates.append(match.group(1))
        for text in candidates:
            try:
                hz = float(text)
            except ValueError:
                continue
            if hz > 0:
                return hz
        if self.tick_t.size >= 2:
            dt = np.diff(self.tick_t)
            dt = dt[dt > 0]
            if dt.size:
                return float(round(1.0 / float(np.median(dt)), 3))
        raise RecordingError(f"{self.path}: cannot tell the recording rate (fewer than two ticks)")


def hold_index(src_t: np.ndarray, query_t: np.ndarray) -> np.ndarray:
    """For each query time, the index of the newest source sample at or before it (−1 if none)."""
    if src_t.size == 0:
        return np.full(query_t.shape, -1, dtype=np.int64)
    return np.searchsorted(src_t, query_t, side="right").astype(np.int64) - 1


def _arr(values: list[Any], shape: tuple[int, ...] = (), dtype: Any = float) -> np.ndarray:
    if not values:
        return np.zeros((0, *shape), dtype=dtype)
    return np.asarray(values, dtype=dtype).reshape((-1, *shape))


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def load_episode(path: Path | str, images: bool = True, progress: Progress | None = None) -> Episode:
    """Reads a finished recording into an `Episode`.

    Args:
        path: the ``.mcap`` file.
        images: keep camera JPEGs (needed for video export); times are always kept.
        progress: called as progress(done, total) every few hundred messages.

    Raises:
        RecordingError: not a finished recording.
    """
    path = Path(path)
    L: dict[str, list[Any]] = {k: [] for k in (
        "tick_t", "tick_seq", "tick_pred", "tick_eng", "robot_t", "robot_meas_t", "ee_pos", "ee_quat",
        "gripper", "joints", "cmd_t", "cmd_made_t", "cmd_seq", "tpos", "tquat", "tgrip", "treset",
        "action_t", "action", "vr_t", "rg", "rt", "lg", "lt", "lat_t", "rtt", "age", "transport", "timing_t",
        "joint_vel")}
    timing_rows: list[dict[str, Any]] = []
    events: list[tuple[float, str, str, dict[str, Any]]] = []
    cams: dict[str, dict[str, Any]] = {}
    with RecordingReader(path) as r:
        meta = r.metadata()
        total = r.message_count
        t0 = r.start_ns / 1e9
        wanted = [t for t in r.channels() if images or S.camera_name_from_topic(t) is None]
        if not images:  # frame times come from the index; the JPEGs are never decoded
            for topic, ix in r.index(sequences=True).items():
                name = S.camera_name_from_topic(topic)
                if name is not None and ix.count:
                    order = np.argsort(ix.log_ns, kind="stable")
                    cams.setdefault(name, {"log_t": [], "capture_t": [], "seq": [], "jpeg": [], "size": None}).update(
                        log_t=list(ix.log_ns[order] / 1e9),
                        capture_t=list(ix.publish_ns[order] / 1e9),
                        seq=list(ix.sequence[order]),
                    )
        for n, (topic, log_ns, pub_ns, _seq, m) in enumerate(r.messages(wanted)):
            if progress is not None and n % 500 == 0:
                progress(n, total)
            t = log_ns / 1e9
            if topic == S.TOPIC_MODE:
                L["tick_t"].append(t)
                L["tick_seq"].append(_seq)
                L["tick_pred"].append(bool(m.get("predictive")))
                L["tick_eng"].append(bool(m.get("engaged")))
            elif topic == S.TOPIC_EE_POSE:
                p, o = m.pose.position, m.pose.orientation
                L["robot_t"].append(t)
                L["robot_meas_t"].append(pub_ns / 1e9)
                L["ee_pos"].append((p.x, p.y, p.z))
                L["ee_quat"].append((o.x, o.y, o.z, o.w))
            elif topic == S.TOPIC_JOINT_STATES:
                # By name: a server without arm joints records only the fingers (missing, not 0).
                names = list(m.get("name") or S.JOINT_NAMES)
                pos = dict(zip(names, m.get("position") or []))
                vel = dict(zip(names, m.get("velocity") or []))
                L["joints"].append([_num(pos.get(n)) for n in S.ARM_JOINT_NAMES])
                L["joint_vel"].append([_num(vel.get(n)) for n in S.ARM_JOINT_NAMES])
                L["gripper"].append(_num(m.get("gripper")))
            elif topic == S.TOPIC_COMMAND:
                L["cmd_t"].append(t)
                L["cmd_made_t"].append(pub_ns / 1e9)
                L["cmd_seq"].append(int(m.get("seq", -1)))
                L["tpos"].append(m["position"])
                L["tquat"].append(m["orientation"])
                L["tgrip"].append(_num(m.get("gripper")))
                L["treset"].append(bool(m.get("reset")))
            elif topic == S.TOPIC_ACTION:
                L["action_t"].append(t)
                L["action"].append([_num(m.get(k)) for k in S.ACTION_FIELDS])
            elif topic == S.TOPIC_VR_BUTTONS:
                right, left = m.get("right") or {}, m.get("left") or {}
                L["vr_t"].append(t)
                L["rg"].append(_num(right.get("grip")))
                L["rt"].append(_num(right.get("trigger")))
                L["lg"].append(_num(left.get("grip")))
                L["lt"].append(_num(left.get("trigger")))
            elif topic == S.TOPIC_LATENCY:
                L["lat_t"].append(t)
                L["rtt"].append(_num(m.get("rtt_ms")))
                L["age"].append(_num(m.get("state_age_ms")))
                L["transport"].append(_num(m.get("transport_ms")))
            elif topic == S.TOPIC_TIMING:
                L["timing_t"].append(t)
                timing_rows.append(m)
            elif topic == S.TOPIC_EVENTS:
                events.append((t, str(m.get("kind", "")), str(m.get("message", "")), dict(m.get("data") or {})))
            else:
                name = S.camera_name_from_topic(topic)
                if name is not None:
                    c = cams.setdefault(name, {"log_t": [], "capture_t": [], "seq": [], "jpeg": [], "size": None})
                    c["log_t"].append(t)
                    c["capture_t"].append(pub_ns / 1e9)
                    c["seq"].append(_seq)
                    if images:
                        c["jpeg"].append(bytes(m.data))
                elif topic.endswith("/calibration"):
                    cam = topic.split("/")[2]
                    c = cams.setdefault(cam, {"log_t": [], "capture_t": [], "seq": [], "jpeg": [], "size": None})
                    c["size"] = (m.width, m.height)
                    c["K"] = np.asarray(list(m.K), dtype=float).reshape(3, 3) if len(m.K) == 9 else None
        if progress is not None:
            progress(total, total)
    if len(L["joints"]) != len(L["robot_t"]):
        raise RecordingError(f"{path}: {len(L['robot_t'])} ee poses but {len(L['joints'])} joint states")
    loop_rows = [{str(x.get("name")): x for x in row.get("loops") or []} for row in timing_rows]
    counter_rows = [{str(x.get("name")): x.get("value") for x in row.get("counters") or []} for row in timing_rows]
    loops = sorted({name for row in loop_rows for name in row})
    cnames = sorted({name for row in counter_rows for name in row})
    loop_hz = {k: np.array([_num(row.get(k, {}).get("achieved_hz")) for row in loop_rows]) for k in loops}
    loop_jit = {k: np.array([_num(row.get(k, {}).get("jitter_p99_ms")) for row in loop_rows]) for k in loops}
    counters = {k: np.array([_num(row.get(k)) for row in counter_rows]) for k in cnames}
    cameras = {}
    for name, c in cams.items():
        size = c["size"] or (0, 0)
        cameras[name] = CameraStream(
            name,
            _arr(c["log_t"]),
            _arr(c["capture_t"]),
            _arr(c["seq"], dtype=np.int64),
            c["jpeg"],
            int(size[0]),
            int(size[1]),
            c.get("K"),
        )
    return Episode(
        path=path, metadata=meta, t0=t0,
        tick_t=_arr(L["tick_t"]), tick_seq=_arr(L["tick_seq"], dtype=np.int64),
        tick_predictive=_arr(L["tick_pred"], dtype=bool), tick_engaged=_arr(L["tick_eng"], dtype=bool),
        robot_t=_arr(L["robot_t"]), robot_meas_t=_arr(L["robot_meas_t"]), ee_pos=_arr(L["ee_pos"], (3,)),
        ee_quat=_arr(L["ee_quat"], (4,)), gripper=_arr(L["gripper"]), joints=_arr(L["joints"], (7,)),
        cmd_t=_arr(L["cmd_t"]), cmd_made_t=_arr(L["cmd_made_t"]), cmd_seq=_arr(L["cmd_seq"], dtype=np.int64),
        target_pos=_arr(L["tpos"], (3,)), target_quat=_arr(L["tquat"], (4,)), target_gripper=_arr(L["tgrip"]),
        target_reset=_arr(L["treset"], dtype=bool), action_t=_arr(L["action_t"]), action=_arr(L["action"], (7,)),
        vr_t=_arr(L["vr_t"]), vr_right_grip=_arr(L["rg"]), vr_right_trigger=_arr(L["rt"]),
        vr_left_grip=_arr(L["lg"]), vr_left_trigger=_arr(L["lt"]),
        latency_t=_arr(L["lat_t"]), rtt_ms=_arr(L["rtt"]), state_age_ms=_arr(L["age"]),
        timing_t=_arr(L["timing_t"]), loop_hz=loop_hz, loop_jitter_p99_ms=loop_jit, counters=counters,
        events=events, cameras=cameras, joint_vel=_arr(L["joint_vel"], (7,)), transport_ms=_arr(L["transport"]),
    )


def camera_mounts(ep: Episode) -> dict[str, CameraMount]:
    """The camera mounts stored in the start metadata (empty for recordings without them).

    Raises:
        RecordingError: the stored mounts are malformed.
    """
    text = ep.metadata.get("recording_start", {}).get("cameras")
    if not text:
        return {}
    try:
        return camera_mounts_from_dict(json.loads(text))
    except ValueError as exc:
        raise RecordingError(f"{ep.path}: bad camera mounts in the metadata: {exc}") from None


def metadata_json(ep: Episode) -> str:
    """All metadata records as one JSON string (for HDF5 attributes and LeRobot info)."""
    return json.dumps(ep.metadata, sort_keys=True)
