"""Validation shared by every codec: loosely-typed decoded fields in, checked records out.

Everything a peer sends passes through `validate_action` / `validate_state`, which raise
`ProtocolError` with a message naming the field, what was expected and what came.

Accepted beyond our own messages, for Franka-Teach peers:

* a reset (``reset=True``) whatever its pose fields hold (NYU's operator sends
  ``quat=zeros(4)``): the pose is ignored, replaced by a neutral one when it is not valid;
* Labelbox's extra fields: ``joint_positions`` (None or 7 numbers) and ``control_mode``
  (only "CARTESIAN" is served) on actions, ``joint_positions`` / ``joint_velocities`` (None or
  7 numbers) on states.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from frankateach.constants import MAX_MESSAGE_BYTES
from frankateach.errors import ProtocolError
from frankateach.records import N_JOINTS, FrankaAction, FrankaState, missing_joints

QUAT_NORM_TOLERANCE = 1e-2  # |‖q‖ − 1| above this is rejected; within it q is renormalised
CARTESIAN = "CARTESIAN"  # the only Labelbox control_mode this server executes
RESET_POS = np.zeros(3)  # pose given to a reset action whose own pose fields are not valid
RESET_QUAT = np.array([0.0, 0.0, 0.0, 1.0])


def vector(name: str, value: Any, n: int) -> np.ndarray:
    """Checks a list of `n` finite numbers; returns it as a float64 array."""
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
        out[i] = number(f"{name}[{i}]", v)
    return out


def number(name: str, value: Any) -> float:
    """Checks one finite real number (bool refused); returns it as a float."""
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


def flag(name: str, value: Any) -> bool:
    """Checks a bool (numpy bools accepted)."""
    if isinstance(value, np.bool_):
        value = bool(value)
    if not isinstance(value, bool):
        raise ProtocolError(f"field '{name}': expected a bool, got {type(value).__name__}")
    return value


def unit_quat(name: str, value: Any) -> np.ndarray:
    """Checks an xyzw quaternion of norm 1 ± QUAT_NORM_TOLERANCE; returns it renormalised."""
    q = vector(name, value, 4)
    norm = math.hypot(*(float(v) for v in q))  # no overflow for huge components (the norm is said as it is)
    if abs(norm - 1.0) > QUAT_NORM_TOLERANCE:
        raise ProtocolError(f"field '{name}': expected a unit quaternion (xyzw), got norm {norm:.6g}")
    return q / norm


def gripper(value: Any) -> float:
    """Checks a gripper command/state in [-1, 1]."""
    g = number("gripper", value)
    if not -1.0 <= g <= 1.0:
        raise ProtocolError(f"field 'gripper': expected a value in [-1, 1], got {g}")
    return g


def optional_joints(name: str, value: Any) -> np.ndarray:
    """None (not reported) -> all-NaN; otherwise 7 finite numbers."""
    return missing_joints() if value is None else vector(name, value, N_JOINTS)


def check_keys(kind: str, fields: dict, required: set[str], optional: frozenset[str] = frozenset()) -> None:
    """Refuses a field map with missing or unknown keys, listing both."""
    keys = set(fields)
    missing = required - keys
    unknown = keys - required - optional
    if missing or unknown:
        raise ProtocolError(
            f"{kind}: expected fields {sorted(required | optional)}, "
            f"missing {sorted(missing)}, unknown {sorted(map(str, unknown))}"
        )


ACTION_FIELDS = {"pos", "quat", "gripper", "reset", "timestamp"}
ACTION_OPTIONAL = frozenset({"joint_positions", "control_mode"})  # Labelbox's fork
STATE_FIELDS = {"pos", "quat", "gripper", "timestamp"}
STATE_OPTIONAL = frozenset({"start_teleop", "joint_positions", "joint_velocities"})


def _reset_pose(fields: dict) -> tuple[np.ndarray, np.ndarray]:
    """The pose of a reset action: its own if valid, else the neutral one (it is ignored)."""
    try:
        return vector("pos", fields["pos"], 3), unit_quat("quat", fields["quat"])
    except ProtocolError:
        return RESET_POS.copy(), RESET_QUAT.copy()


def validate_action(fields: dict) -> FrankaAction:
    """Checks a field map and returns a `FrankaAction`; raises `ProtocolError` on any violation."""
    check_keys("FrankaAction", fields, ACTION_FIELDS, ACTION_OPTIONAL)
    mode = fields.get("control_mode", CARTESIAN)
    if mode != CARTESIAN:
        raise ProtocolError(
            f"field 'control_mode': only {CARTESIAN!r} is served, got {mode!r}"
        )
    if fields.get("joint_positions") is not None:
        raise ProtocolError("field 'joint_positions': joint-space commands are not served (expected None)")
    reset = flag("reset", fields["reset"])
    if reset:
        pos, quat = _reset_pose(fields)
    else:
        pos, quat = vector("pos", fields["pos"], 3), unit_quat("quat", fields["quat"])
    return FrankaAction(
        pos=pos,
        quat=quat,
        gripper=gripper(fields["gripper"]),
        reset=reset,
        timestamp=number("timestamp", fields["timestamp"]),
    )


def validate_state(fields: dict) -> FrankaState:
    """Checks a field map and returns a `FrankaState`; raises `ProtocolError` on any violation.

    Joint positions that are absent or None are recorded as missing (NaN), never as zeros.
    """
    check_keys("FrankaState", fields, STATE_FIELDS, STATE_OPTIONAL)
    if fields.get("joint_velocities") is not None:
        vector("joint_velocities", fields["joint_velocities"], N_JOINTS)  # checked, not kept
    return FrankaState(
        pos=vector("pos", fields["pos"], 3),
        quat=unit_quat("quat", fields["quat"]),
        gripper=gripper(fields["gripper"]),
        timestamp=number("timestamp", fields["timestamp"]),
        start_teleop=flag("start_teleop", fields.get("start_teleop", False)),
        joint_positions=optional_joints("joint_positions", fields.get("joint_positions")),
    )


def action_fields(msg: FrankaAction) -> dict[str, Any]:
    """The wire fields of an action (plain Python numbers and lists)."""
    return {
        "pos": [float(x) for x in msg.pos],
        "quat": [float(x) for x in msg.quat],
        "gripper": float(msg.gripper),
        "reset": bool(msg.reset),
        "timestamp": float(msg.timestamp),
    }


def state_fields(msg: FrankaState) -> dict[str, Any]:
    """The wire fields of a state; ``joint_positions`` only when the robot reported them."""
    out: dict[str, Any] = {
        "pos": [float(x) for x in msg.pos],
        "quat": [float(x) for x in msg.quat],
        "gripper": float(msg.gripper),
        "timestamp": float(msg.timestamp),
        "start_teleop": bool(msg.start_teleop),
    }
    if msg.has_joint_positions:
        out["joint_positions"] = [float(x) for x in msg.joint_positions]
    return out


def preview(data: bytes, limit: int = 24) -> str:
    """A short, printable description of raw bytes for error messages."""
    head = bytes(data[:limit])
    return f"{len(data)} bytes {head!r}{'...' if len(data) > limit else ''}"


def check_size(data: bytes, limit: int = MAX_MESSAGE_BYTES) -> None:
    """Refuses non-bytes and messages over `limit` bytes, before anything is decoded."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    if len(data) > limit:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the {limit}-byte limit")
