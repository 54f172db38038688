"""Robot protocol messages and their codecs.

Content-compatible with NYU Franka-Teach: a control request is a `FrankaAction` (or the bytes
``b"get_state"``), the reply a `FrankaState`. Two codecs:

* `MsgpackCodec` (default): maps keyed by the field names, arrays as lists of floats, checked
  against an explicit schema. Decoding can never execute code.
* `PickleCodec` (compatibility): only to talk to an existing Franka-Teach server, which pickles
  its dataclasses. It unpickles through `RestrictedUnpickler`, which resolves nothing but these
  message classes and the numpy pieces needed to rebuild arrays; anything else is refused.

Frames and units: positions in metres and quaternions (x, y, z, w) are of the hand TCP in the robot
base frame; gripper -1 is open, +1 closed; timestamps are seconds (sender's clock).
"""

from __future__ import annotations

import io
import math
import pickle
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

import msgpack
import numpy as np

from frankateach.constants import GET_STATE, MAX_MESSAGE_BYTES
from frankateach.errors import ProtocolError, RobotServerError

# What a Franka-Teach server sends instead of a pickled state when it has none yet.
FRANKA_TEACH_STATE_ERROR = b"state_error"
QUAT_NORM_TOLERANCE = 1e-2  # |‖q‖ − 1| above this is rejected; within it q is renormalised


@dataclass(frozen=True)
class FrankaAction:
    """A Cartesian target for the hand.

    Attributes:
        pos: (3,) target position, metres, base frame.
        quat: (4,) target orientation, xyzw, unit norm.
        gripper: -1 open … +1 closed.
        reset: True asks the robot to return to its home pose (pos/quat ignored).
        timestamp: sender's time the command was made, seconds.
    """

    pos: np.ndarray
    quat: np.ndarray
    gripper: float
    reset: bool
    timestamp: float


@dataclass(frozen=True)
class FrankaState:
    """The robot's measured state.

    Attributes:
        pos: (3,) hand position, metres, base frame.
        quat: (4,) hand orientation, xyzw.
        gripper: -1 open … +1 closed (measured finger opening mapped onto that range).
        timestamp: time of measurement on the robot server's clock (`time.time()`), seconds.
        start_teleop: the robot server is ready to be teleoperated.
        joint_positions: (7,) arm joints, rad, real-Panda convention.
    """

    pos: np.ndarray
    quat: np.ndarray
    gripper: float
    timestamp: float
    start_teleop: bool = False
    joint_positions: np.ndarray = field(default_factory=lambda: np.zeros(7))


@dataclass(frozen=True)
class CameraFrame:
    """One JPEG frame as published on ``CAM_PORT_OFFSET + camera_id``.

    Attributes:
        camera_id: index of the camera on the robot server.
        name: camera name ("front", "wrist", ...).
        seq: per-camera frame counter (gaps mean dropped frames).
        timestamp: capture time on the server's clock, seconds.
        width, height: image size in pixels.
        jpeg: the encoded image.
    """

    camera_id: int
    name: str
    seq: int
    timestamp: float
    width: int
    height: int
    jpeg: bytes


Request = Union[FrankaAction, bytes]  # bytes is always GET_STATE


# ---------------------------------------------------------------------------------------------
# Validation shared by both codecs: turns loosely-typed decoded values into checked messages.
# ---------------------------------------------------------------------------------------------


def _vector(name: str, value: Any, n: int) -> np.ndarray:
    # Only real sequences: a 0-d array has __len__ but no length, a set has no order.
    if not isinstance(value, (list, tuple, np.ndarray)) or (
        isinstance(value, np.ndarray) and value.ndim != 1
    ):
        shape = f" of shape {value.shape}" if isinstance(value, np.ndarray) else ""
        raise ProtocolError(
            f"field '{name}': expected a list of {n} numbers, got {type(value).__name__}{shape}"
        )
    if len(value) != n:
        raise ProtocolError(f"field '{name}': expected {n} numbers, got {len(value)}")
    out = np.empty(n, dtype=np.float64)
    for i, v in enumerate(value):
        out[i] = _number(f"{name}[{i}]", v)
    return out


def _number(name: str, value: Any) -> float:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"field '{name}': expected a number, got {type(value).__name__}")
    try:
        f = float(value)
    except OverflowError:  # a Python int beyond float range (only a pickle can carry one)
        raise ProtocolError(
            f"field '{name}': expected a finite number, got an int too large for a float"
        ) from None
    if not math.isfinite(f):
        raise ProtocolError(f"field '{name}': expected a finite number, got {f}")
    return f


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, np.bool_):
        value = bool(value)
    if not isinstance(value, bool):
        raise ProtocolError(f"field '{name}': expected a bool, got {type(value).__name__}")
    return value


def _unit_quat(name: str, value: Any) -> np.ndarray:
    q = _vector(name, value, 4)
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > QUAT_NORM_TOLERANCE:
        raise ProtocolError(f"field '{name}': expected a unit quaternion (xyzw), got norm {norm:.6g}")
    return q / norm


def _gripper(value: Any) -> float:
    g = _number("gripper", value)
    if not -1.0 <= g <= 1.0:
        raise ProtocolError(f"field 'gripper': expected a value in [-1, 1], got {g}")
    return g


def _check_keys(kind: str, fields: dict, required: set[str], optional: set[str] = frozenset()) -> None:
    keys = set(fields)
    missing = required - keys
    unknown = keys - required - optional
    if missing or unknown:
        raise ProtocolError(
            f"{kind}: expected fields {sorted(required | optional)}, "
            f"missing {sorted(missing)}, unknown {sorted(map(str, unknown))}"
        )


def validate_action(fields: dict) -> FrankaAction:
    """Checks a field map and returns a `FrankaAction`; raises `ProtocolError` on any violation."""
    _check_keys("FrankaAction", fields, {"pos", "quat", "gripper", "reset", "timestamp"})
    return FrankaAction(
        pos=_vector("pos", fields["pos"], 3),
        quat=_unit_quat("quat", fields["quat"]),
        gripper=_gripper(fields["gripper"]),
        reset=_flag("reset", fields["reset"]),
        timestamp=_number("timestamp", fields["timestamp"]),
    )


def validate_state(fields: dict) -> FrankaState:
    """Checks a field map and returns a `FrankaState`; raises `ProtocolError` on any violation."""
    _check_keys(
        "FrankaState",
        fields,
        {"pos", "quat", "gripper", "timestamp"},
        {"start_teleop", "joint_positions"},
    )
    joints = fields.get("joint_positions")
    return FrankaState(
        pos=_vector("pos", fields["pos"], 3),
        quat=_unit_quat("quat", fields["quat"]),
        gripper=_gripper(fields["gripper"]),
        timestamp=_number("timestamp", fields["timestamp"]),
        start_teleop=_flag("start_teleop", fields.get("start_teleop", False)),
        joint_positions=np.zeros(7) if joints is None else _vector("joint_positions", joints, 7),
    )


def _fields(msg: FrankaAction | FrankaState) -> dict[str, Any]:
    if isinstance(msg, FrankaAction):
        return {
            "pos": [float(x) for x in msg.pos],
            "quat": [float(x) for x in msg.quat],
            "gripper": float(msg.gripper),
            "reset": bool(msg.reset),
            "timestamp": float(msg.timestamp),
        }
    return {
        "pos": [float(x) for x in msg.pos],
        "quat": [float(x) for x in msg.quat],
        "gripper": float(msg.gripper),
        "timestamp": float(msg.timestamp),
        "start_teleop": bool(msg.start_teleop),
        "joint_positions": [float(x) for x in msg.joint_positions],
    }


def _preview(data: bytes, limit: int = 24) -> str:
    """A short, printable description of raw bytes for error messages."""
    head = bytes(data[:limit])
    return f"{len(data)} bytes {head!r}{'...' if len(data) > limit else ''}"


def _check_size(data: bytes) -> None:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")


# ---------------------------------------------------------------------------------------------
# Codecs
# ---------------------------------------------------------------------------------------------


class Codec(Protocol):
    """Turns protocol messages into bytes and back, validating everything it decodes."""

    name: str

    def encode(self, msg: FrankaAction | FrankaState) -> bytes: ...

    def encode_error(self, message: str) -> bytes: ...

    def decode_request(self, data: bytes) -> Request: ...

    def decode_reply(self, data: bytes) -> FrankaState: ...


class MsgpackCodec:
    """The default codec: msgpack maps keyed by field name, schema-checked on decode."""

    name = "msgpack"

    def encode(self, msg: FrankaAction | FrankaState) -> bytes:
        return msgpack.packb(_fields(msg), use_bin_type=True)

    def encode_error(self, message: str) -> bytes:
        return msgpack.packb({"error": str(message)}, use_bin_type=True)

    def _load(self, data: bytes, expected: str) -> Any:
        _check_size(data)
        try:
            return msgpack.unpackb(
                bytes(data), raw=False, strict_map_key=True
            )
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise ProtocolError(
                f"not a msgpack message: expected {expected}, got {_preview(data)} "
                f"({exc.__class__.__name__}: {exc})"
            ) from None

    def decode_request(self, data: bytes) -> Request:
        if bytes(data) == GET_STATE:
            return GET_STATE
        obj = self._load(data, "a FrankaAction map or b'get_state'")
        if not isinstance(obj, dict):
            raise ProtocolError(
                f"request: expected a FrankaAction map or b'get_state', got {type(obj).__name__}"
            )
        return validate_action(obj)

    def decode_reply(self, data: bytes) -> FrankaState:
        obj = self._load(data, "a FrankaState map or an error map")
        if isinstance(obj, dict) and set(obj) == {"error"}:
            raise RobotServerError(f"robot server replied with an error: {obj['error']}")
        if not isinstance(obj, dict):
            raise ProtocolError(f"reply: expected a FrankaState map, got {type(obj).__name__}")
        return validate_state(obj)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can only build the protocol's message classes and numpy arrays."""

    MESSAGES = {"FrankaAction": FrankaAction, "FrankaState": FrankaState}
    NUMPY = {
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "scalar"),
        # Pickle protocol 5 (`protocol=-1`, what Franka-Teach uses) rebuilds arrays this way.
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if module == "frankateach.messages" and name in self.MESSAGES:
            return self.MESSAGES[name]
        if (module, name) in self.NUMPY:
            return _numpy_attr(module, name)
        if (module, name) == ("_codecs", "encode"):
            # Protocols 0-2 store array bytes as latin-1 text re-encoded on load.
            return _latin1_encode
        raise ProtocolError(f"pickle: refusing to load {module}.{name} (only protocol messages)")


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as old pickle protocols call it, limited to the latin-1 byte round trip."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise ProtocolError(f"pickle: refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


def _numpy_attr(module: str, name: str) -> Any:
    """Resolves a numpy internal under its numpy-2 name first, then its numpy-1 name."""
    from importlib import import_module

    tail = module.split(".", 2)[-1]  # "multiarray" or "numpy"
    candidates = [module] if module == "numpy" else [f"numpy._core.{tail}", f"numpy.core.{tail}"]
    for mod in candidates:
        try:
            return getattr(import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise ProtocolError(f"pickle: numpy has no {module}.{name}")


class PickleCodec:
    """Compatibility codec for an existing Franka-Teach server (pickled dataclasses).

    Decoding goes through `RestrictedUnpickler` and then the same schema checks as msgpack.
    """

    name = "pickle"

    def encode(self, msg: FrankaAction | FrankaState) -> bytes:
        return pickle.dumps(msg, protocol=4)

    def encode_error(self, message: str) -> bytes:
        return pickle.dumps({"error": str(message)}, protocol=4)

    def _load(self, data: bytes, expected: str) -> Any:
        _check_size(data)
        try:
            return RestrictedUnpickler(io.BytesIO(bytes(data))).load()
        except ProtocolError:
            raise
        except Exception as exc:
            raise ProtocolError(
                f"not a valid pickle message: expected {expected}, got {_preview(data)} "
                f"({exc.__class__.__name__}: {exc})"
            ) from None

    @staticmethod
    def _as_fields(obj: Any, cls: type) -> dict:
        if isinstance(obj, cls):
            return dict(vars(obj))
        raise ProtocolError(f"expected a pickled {cls.__name__}, got {type(obj).__name__}")

    def decode_request(self, data: bytes) -> Request:
        if bytes(data) == GET_STATE:
            return GET_STATE
        obj = self._load(data, "a pickled FrankaAction or b'get_state'")
        return validate_action(self._as_fields(obj, FrankaAction))

    def decode_reply(self, data: bytes) -> FrankaState:
        if bytes(data) == FRANKA_TEACH_STATE_ERROR:
            raise RobotServerError(
                "robot server replied b'state_error': it has no robot state yet "
                "(is the arm connected?)"
            )
        obj = self._load(data, "a pickled FrankaState or an error map")
        if isinstance(obj, dict) and set(obj) == {"error"}:
            raise RobotServerError(f"robot server replied with an error: {obj['error']}")
        return validate_state(self._as_fields(obj, FrankaState))


CODECS: dict[str, type] = {"msgpack": MsgpackCodec, "pickle": PickleCodec}


def make_codec(name: str) -> Codec:
    """Returns the codec called `name` ("msgpack" or "pickle")."""
    try:
        return CODECS[name]()
    except KeyError:
        raise ProtocolError(f"unknown codec {name!r}: expected one of {sorted(CODECS)}") from None


# ---------------------------------------------------------------------------------------------
# Camera frames (always msgpack: one self-describing map per ZMQ message, so SUB can conflate)
# ---------------------------------------------------------------------------------------------

MAX_CAMERA_FRAME_BYTES = 16 * 1024 * 1024


def encode_camera_frame(frame: CameraFrame) -> bytes:
    """Encodes a camera frame as one msgpack map (JPEG kept as binary)."""
    return msgpack.packb(
        {
            "camera_id": int(frame.camera_id),
            "name": frame.name,
            "seq": int(frame.seq),
            "timestamp": float(frame.timestamp),
            "width": int(frame.width),
            "height": int(frame.height),
            "jpeg": bytes(frame.jpeg),
        },
        use_bin_type=True,
    )


def decode_camera_frame(data: bytes) -> CameraFrame:
    """Decodes and checks a camera frame; raises `ProtocolError` on anything unexpected."""
    if len(data) > MAX_CAMERA_FRAME_BYTES:
        raise ProtocolError(f"camera frame of {len(data)} bytes exceeds {MAX_CAMERA_FRAME_BYTES}")
    try:
        obj = msgpack.unpackb(bytes(data), raw=False)
    except Exception as exc:
        raise ProtocolError(f"camera frame: not msgpack: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"camera frame: expected a map, got {type(obj).__name__}")
    _check_keys("CameraFrame", obj, {"camera_id", "name", "seq", "timestamp", "width", "height", "jpeg"})
    ints = {k: obj[k] for k in ("camera_id", "seq", "width", "height")}
    for k, v in ints.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ProtocolError(f"camera frame field '{k}': expected a non-negative int, got {v!r}")
    if not isinstance(obj["name"], str) or not isinstance(obj["jpeg"], bytes):
        raise ProtocolError("camera frame: 'name' must be str and 'jpeg' bytes")
    return CameraFrame(
        camera_id=obj["camera_id"],
        name=obj["name"],
        seq=obj["seq"],
        timestamp=_number("timestamp", obj["timestamp"]),
        width=obj["width"],
        height=obj["height"],
        jpeg=obj["jpeg"],
    )
