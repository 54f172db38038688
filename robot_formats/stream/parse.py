"""Strict parsing of client messages: one text frame → one typed message, or a `ProtocolError`
whose text says which field was wrong, what was expected and what came.

Unknown fields are refused (a typo such as ``targetFps`` would otherwise be silently ignored).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from robot_formats.image import parse_data_url, probe_jpeg
from robot_formats.robot_state import RobotStateIn
from robot_formats.stream.errors import (
    InvalidField,
    InvalidJSON,
    MessageTooLarge,
    UnknownMessageType,
)
from robot_formats.stream.limits import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_IMAGE_SIDE_PX,
    MAX_INSTRUCTION_CHARS,
    MIN_TARGET_FPS,
)
from robot_formats.stream.messages import (
    AuthMessage,
    ClientMessage,
    CloseRequest,
    FrameMessage,
    StatsRequest,
)

CLIENT_TYPES = ("auth", "frame", "stats", "close")
MAX_TARGET_FPS = 1000.0  # sanity bound of the field itself; tiers allow far less


@dataclass(frozen=True)
class ParseLimits:
    """Limits applied while parsing (bytes, px, characters)."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_image_side: int = MAX_IMAGE_SIDE_PX
    max_instruction_chars: int = MAX_INSTRUCTION_CHARS


def json_object(raw: str | bytes) -> dict[str, Any]:
    """The JSON object in one websocket text frame (either direction of /v1/stream).

    Raises:
        InvalidJSON: a binary frame, text that is not JSON, or JSON that is not an object.
    """
    if not isinstance(raw, str):
        raise InvalidJSON("expected a JSON text frame, got a binary frame")
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidJSON(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidJSON(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def parse_client_message(raw: str | bytes, limits: ParseLimits = ParseLimits()) -> ClientMessage:
    """Parses one websocket message.

    Args:
        raw: the frame's payload: `str` for a text frame, `bytes` for a binary one (refused).
        limits: size limits.

    Raises:
        ProtocolError: a subclass naming the problem.
    """
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > limits.max_message_bytes:
        raise MessageTooLarge(f"message is {size} bytes; the limit is {limits.max_message_bytes} bytes")
    obj = json_object(raw)
    kind = obj.get("type")
    if kind is None:
        raise UnknownMessageType(f"missing field 'type'; expected one of {list(CLIENT_TYPES)}")
    if kind not in CLIENT_TYPES:
        raise UnknownMessageType(f"unknown message type {kind!r}; expected one of {list(CLIENT_TYPES)}")
    if kind == "auth":
        return _parse_auth(obj)
    if kind == "frame":
        return _parse_frame(obj, limits)
    _check_keys(obj, kind, required=("type",), optional=())
    return StatsRequest() if kind == "stats" else CloseRequest()


def _parse_auth(obj: Mapping[str, Any]) -> AuthMessage:
    _check_keys(
        obj,
        "auth",
        required=("type", "api_key", "model", "robot_type", "target_fps", "enable_smoothing", "enable_safety"),
        optional=("smoothing_alpha",),
    )
    alpha = obj.get("smoothing_alpha")
    if alpha is not None:
        alpha = _number(alpha, "auth.smoothing_alpha")
        if not 0.0 < alpha <= 1.0:
            raise InvalidField(f"auth.smoothing_alpha: expected 0 < alpha <= 1, got {alpha}")
    fps = _number(obj["target_fps"], "auth.target_fps")
    if not MIN_TARGET_FPS <= fps <= MAX_TARGET_FPS:
        raise InvalidField(f"auth.target_fps: expected {MIN_TARGET_FPS}..{MAX_TARGET_FPS} Hz, got {fps}")
    return AuthMessage(
        api_key=_string(obj["api_key"], "auth.api_key", max_len=512, non_empty=True),
        model=_string(obj["model"], "auth.model", max_len=200, non_empty=True),
        robot_type=_string(obj["robot_type"], "auth.robot_type", max_len=100, non_empty=True),
        target_fps=fps,
        enable_smoothing=_boolean(obj["enable_smoothing"], "auth.enable_smoothing"),
        enable_safety=_boolean(obj["enable_safety"], "auth.enable_safety"),
        smoothing_alpha=alpha,
    )


def _parse_frame(obj: Mapping[str, Any], limits: ParseLimits) -> FrameMessage:
    _check_keys(obj, "frame", required=("type", "image", "instruction"), optional=("robot_state", "wrist_image"))
    instruction = _string(obj["instruction"], "frame.instruction", max_len=limits.max_instruction_chars)
    state = obj.get("robot_state")
    robot_state = None if state is None else parse_robot_state(state, "frame.robot_state")
    jpeg = parse_data_url(obj["image"], "frame.image")
    width, height = probe_jpeg(jpeg, "frame.image", limits.max_image_side)
    wrist = obj.get("wrist_image")
    wrist_jpeg = None
    if wrist is not None:
        wrist_jpeg = parse_data_url(wrist, "frame.wrist_image")
        probe_jpeg(wrist_jpeg, "frame.wrist_image", limits.max_image_side)
    return FrameMessage(jpeg, width, height, instruction, robot_state, wrist_jpeg)


def parse_robot_state(obj: object, path: str) -> RobotStateIn:
    """``{"pose":[6], "velocity":[6] (optional), "gripper": -1..1 (optional)}`` → `RobotStateIn`."""
    if not isinstance(obj, dict):
        raise InvalidField(f"{path}: expected an object with 'pose' (and 'velocity'), got {type(obj).__name__}")
    _check_keys(obj, path, required=("pose",), optional=("velocity", "gripper"))
    pose = _vector(obj["pose"], f"{path}.pose", 6)
    vel = obj.get("velocity")
    velocity = None if vel is None else _vector(vel, f"{path}.velocity", 6)
    grip = obj.get("gripper")
    gripper = None
    if grip is not None:
        gripper = _number(grip, f"{path}.gripper")
        if not -1.0 <= gripper <= 1.0:
            raise InvalidField(f"{path}.gripper: expected -1 (open) .. 1 (closed), got {gripper}")
    return RobotStateIn(pose=pose, velocity=velocity, gripper=gripper)  # type: ignore[arg-type]


# ---- field helpers ------------------------------------------------------------------------------


def _check_keys(obj: Mapping[str, Any], where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    missing = [k for k in required if k not in obj]
    if missing:
        raise InvalidField(f"{where}: missing required field(s) {missing}")
    unknown = sorted(set(obj) - set(required) - set(optional))
    if unknown:
        raise InvalidField(f"{where}: unknown field(s) {unknown}; allowed: {sorted(required + optional)}")


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidField(f"{path}: expected a number, got {type(value).__name__} {_short(value)}")
    f = float(value)
    if not math.isfinite(f):
        raise InvalidField(f"{path}: expected a finite number, got {f}")
    return f


def _boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidField(f"{path}: expected true or false, got {type(value).__name__} {_short(value)}")
    return value


def _string(value: object, path: str, max_len: int, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidField(f"{path}: expected a string, got {type(value).__name__} {_short(value)}")
    if non_empty and not value:
        raise InvalidField(f"{path}: expected a non-empty string")
    if len(value) > max_len:
        raise InvalidField(f"{path}: expected at most {max_len} characters, got {len(value)}")
    return value


def _vector(value: object, path: str, n: int) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != n:
        got = f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__
        raise InvalidField(f"{path}: expected a list of {n} numbers, got {got}")
    return tuple(_number(v, f"{path}[{i}]") for i, v in enumerate(value))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
