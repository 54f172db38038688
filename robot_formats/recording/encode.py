"""Small encoders: times, poses and the Foxglove protobuf / JSON message bodies.

Units: times in integer nanoseconds since the Unix epoch, positions in metres, quaternions xyzw.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from foxglove_schemas_protobuf.CameraCalibration_pb2 import CameraCalibration
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.FrameTransform_pb2 import FrameTransform
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.Log_pb2 import Log
from foxglove_schemas_protobuf.PoseInFrame_pb2 import PoseInFrame

from robot_formats.rotations import quat_from_matrix

NS_PER_S = 1_000_000_000
Vector = Sequence[float] | np.ndarray  # a position (3,) or quaternion (4,)


class Message(NamedTuple):
    """One message to write: topic, encoded body, log time ns, publish time ns, sequence."""

    topic: str
    data: bytes
    log_ns: int
    publish_ns: int
    sequence: int | None = None


def finite_only(body: Mapping[str, Any]) -> dict[str, Any]:
    """Drops top-level numbers that are NaN/inf/None: a missing value is absent, never null."""
    out: dict[str, Any] = {}
    for k, v in body.items():
        if v is None:
            continue
        if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
            continue
        out[k] = v
    return out


def to_ns(t_s: float) -> int:
    """Returns `t_s` (seconds) as integer nanoseconds, clamped at 0 (MCAP times are unsigned)."""
    if not math.isfinite(t_s) or t_s <= 0:
        return 0
    return round(t_s * NS_PER_S)


def time_json(ns: int) -> dict[str, int]:
    """Returns a Foxglove JSON time {"sec", "nsec"} for `ns`."""
    return {"sec": ns // NS_PER_S, "nsec": ns % NS_PER_S}


def jsonable(value: Any) -> Any:
    """Returns `value` with numpy types made plain and NaN/inf made None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Encodes a message body as strict compact JSON (NaN → null)."""
    return json.dumps(jsonable(obj), separators=(",", ":"), allow_nan=False).encode()


def pose_from_matrix(transform: Any) -> tuple[np.ndarray, np.ndarray]:
    """Splits a (4, 4) homogeneous transform into (position (3,), quaternion xyzw (4,), w ≥ 0).

    Raises:
        ValueError: not a finite (4, 4) array, or no rotation can be read from it.
    """
    t = np.asarray(transform, dtype=float)
    if t.shape != (4, 4):
        raise ValueError(f"expected a (4, 4) pose matrix, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("pose matrix has non-finite entries")
    quat = np.array(quat_from_matrix(t.tolist(), w_positive=True))
    if not np.all(np.isfinite(quat)):
        raise ValueError(f"pose matrix has no rotation block: {t[:3, :3].tolist()}")
    return t[:3, 3].copy(), quat


def checked_pose(pos: Any, quat: Any) -> tuple[np.ndarray, np.ndarray]:
    """Returns (pos (3,), unit quat xyzw (4,)) as float arrays.

    Raises:
        ValueError: wrong sizes, non-finite values or a zero quaternion.
    """
    p = np.asarray(pos, dtype=float).reshape(-1)
    q = np.asarray(quat, dtype=float).reshape(-1)
    if p.shape != (3,) or q.shape != (4,):
        raise ValueError(f"expected a (3,) position and (4,) xyzw quaternion, got {p.shape} and {q.shape}")
    norm = float(np.linalg.norm(q))
    if not (np.all(np.isfinite(p)) and math.isfinite(norm) and norm > 1e-9):
        raise ValueError(f"non-finite position or degenerate quaternion: {p}, {q}")
    return p, q / norm


def _set_time(field: Any, ns: int) -> None:
    field.seconds = ns // NS_PER_S
    field.nanos = ns % NS_PER_S


def _set_pose(pose: Any, pos: Vector, quat: Vector) -> None:
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in pos)
    o = pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in quat)


def pose_in_frame(ns: int, frame_id: str, pos: Vector, quat: Vector) -> bytes:
    """Encodes a foxglove.PoseInFrame."""
    msg = PoseInFrame(frame_id=frame_id)
    _set_time(msg.timestamp, ns)
    _set_pose(msg.pose, pos, quat)
    return msg.SerializeToString()


def frame_transforms(ns: int, transforms: Iterable[tuple[str, str, Vector, Vector]]) -> bytes:
    """Encodes a foxglove.FrameTransforms from (parent, child, translation, rotation xyzw) tuples."""
    msg = FrameTransforms()
    for parent, child, pos, quat in transforms:
        tf: FrameTransform = msg.transforms.add()
        _set_time(tf.timestamp, ns)
        tf.parent_frame_id = parent
        tf.child_frame_id = child
        tf.translation.x, tf.translation.y, tf.translation.z = (float(v) for v in pos)
        tf.rotation.x, tf.rotation.y, tf.rotation.z, tf.rotation.w = (float(v) for v in quat)
    return msg.SerializeToString()


def compressed_image(ns: int, frame_id: str, jpeg: bytes) -> bytes:
    """Encodes a foxglove.CompressedImage holding a JPEG."""
    msg = CompressedImage(frame_id=frame_id, data=bytes(jpeg), format="jpeg")
    _set_time(msg.timestamp, ns)
    return msg.SerializeToString()


def pinhole(width: int, height: int, fovy_deg: float) -> tuple[float, float, float, float]:
    """Returns (fx, fy, cx, cy), pixels, of an ideal pinhole camera with square pixels.

    Args:
        width, height: image size, pixels.
        fovy_deg: vertical field of view, degrees (MuJoCo's `fovy`).
    """
    if not (width > 0 and height > 0 and 0.0 < fovy_deg < 180.0):
        raise ValueError(f"expected a positive image size and 0 < fovy < 180°, got {width}×{height}, {fovy_deg}°")
    f = (height / 2.0) / math.tan(math.radians(fovy_deg) / 2.0)
    return f, f, width / 2.0, height / 2.0


def camera_calibration(ns: int, frame_id: str, width: int, height: int, fovy_deg: float) -> bytes:
    """Encodes a distortion-free foxglove.CameraCalibration from the vertical field of view."""
    fx, fy, cx, cy = pinhole(width, height, fovy_deg)
    msg = CameraCalibration(
        frame_id=frame_id,
        width=int(width),
        height=int(height),
        distortion_model="plumb_bob",
        D=[0.0] * 5,
        K=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
        R=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        P=[fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    )
    _set_time(msg.timestamp, ns)
    return msg.SerializeToString()


def log_message(ns: int, kind: str, text: str) -> bytes:
    """Encodes a foxglove.Log; kinds containing "error" are ERROR, "warn" WARNING, else INFO."""
    level = Log.ERROR if "error" in kind else Log.WARNING if "warn" in kind else Log.INFO
    msg = Log(level=level, message=text, name=kind)
    _set_time(msg.timestamp, ns)
    return msg.SerializeToString()


def safety_body(ns: int, kind: str, message: str, command_seq: int, source: str,
                requested: Sequence[float], sent: Sequence[float], amount: float) -> dict[str, Any]:
    """The JSON body of one `/safety` message (teleop.Safety); non-finite numbers are left out."""
    def vec(v: Sequence[float]) -> list[float]:
        out = [float(x) for x in v]
        return out if all(math.isfinite(x) for x in out) else []

    return {
        "timestamp": time_json(ns),
        "kind": str(kind),
        "message": str(message),
        "command_seq": int(command_seq),
        "source": str(source),
        "requested": vec(requested),
        "sent": vec(sent),
        "amount": float(amount) if math.isfinite(amount) else 0.0,
    }
