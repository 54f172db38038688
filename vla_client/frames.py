"""Client-side message building for `/v1/stream`: images → JPEG data URLs, robot state checked
with the service's own parser, the JSON texts of ``auth``/``frame``/``stats``/``close``."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from robot_formats.image import JPEG_PREFIX, encode_jpeg_data_url
from robot_formats.robot_state import RobotStateIn
from robot_formats.stream.errors import ProtocolError
from robot_formats.stream.parse import parse_client_message, parse_robot_state

RobotStateLike = RobotStateIn | Mapping[str, Any]
"""``{"pose": [6], "velocity": [6] (optional), "gripper": -1..1 (optional)}`` or a `RobotStateIn`."""
ImageLike = np.ndarray | bytes


@dataclass(frozen=True)
class SessionConfig:
    """What `connect` asked for; kept to re-authenticate after a reconnect."""

    model: str
    robot_type: str = "franka_panda"
    target_fps: float = 10.0
    enable_smoothing: bool = True
    enable_safety: bool = True
    smoothing_alpha: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model: expected a model id, got {self.model!r}")
        if not (isinstance(self.target_fps, (int, float)) and 0 < float(self.target_fps) <= 1000):
            raise ValueError(f"target_fps: expected 0 < fps <= 1000 Hz, got {self.target_fps!r}")
        if self.smoothing_alpha is not None and not 0 < self.smoothing_alpha <= 1:
            raise ValueError(f"smoothing_alpha: expected 0 < alpha <= 1, got {self.smoothing_alpha!r}")


def auth_text(api_key: str, cfg: SessionConfig) -> str:
    """The ``auth`` message."""
    msg: dict[str, Any] = {"type": "auth", "api_key": api_key, **asdict(cfg)}
    if cfg.smoothing_alpha is None:
        del msg["smoothing_alpha"]
    return json.dumps(msg, separators=(",", ":"))


def image_data_url(image: ImageLike, jpeg_quality: int = 85) -> str:
    """(H, W, 3) uint8 RGB array, or JPEG bytes, → ``data:image/jpeg;base64,...``.

    Raises:
        ValueError: not an (H, W, 3) uint8 array, or bytes that are not a JPEG.
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data.startswith(b"\xff\xd8"):
            raise ValueError(f"image bytes: expected JPEG data (starting ff d8), got {data[:4].hex()!r}")
        return JPEG_PREFIX + base64.b64encode(data).decode("ascii")
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"image: expected an (H, W, 3) uint8 RGB array or JPEG bytes, got {arr.dtype} {arr.shape}")
    return encode_jpeg_data_url(arr, quality=jpeg_quality)


def robot_state_dict(state: RobotStateLike | None) -> dict[str, Any] | None:
    """Checks a robot state as the service will (6 finite pose values, ...) and returns its JSON form.

    Raises:
        ValueError: naming the bad field (the service's `InvalidField`).
    """
    if state is None:
        return None
    if isinstance(state, RobotStateIn):
        d: dict[str, Any] = {"pose": [float(v) for v in state.pose]}
        if state.velocity is not None:
            d["velocity"] = [float(v) for v in state.velocity]
        if state.gripper is not None:
            d["gripper"] = float(state.gripper)
        state = d
    plain = {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in dict(state).items()}
    if "pose" in plain and isinstance(plain["pose"], tuple):
        plain["pose"] = list(plain["pose"])
    if "velocity" in plain and isinstance(plain["velocity"], tuple):
        plain["velocity"] = list(plain["velocity"])
    parsed = parse_robot_state(plain, "robot_state")
    out: dict[str, Any] = {"pose": list(parsed.pose)}
    if parsed.velocity is not None:
        out["velocity"] = list(parsed.velocity)
    if parsed.gripper is not None:
        out["gripper"] = parsed.gripper
    return out


def frame_text(
    image: ImageLike, instruction: str, robot_state: RobotStateLike | None = None, jpeg_quality: int = 85
) -> str:
    """The ``frame`` message (encodes the image; call it off the event loop for big frames).

    The text is checked with the protocol's own parser at its default limits, so a service with
    those limits accepts every frame sent and numbers them as the client counts them (`send_frame`'s
    frame id).

    Raises:
        ValueError: a bad image, instruction or state, or a message the service would refuse.
    """
    if not isinstance(instruction, str):
        raise TypeError(f"instruction: expected a string, got {type(instruction).__name__}")
    msg: dict[str, Any] = {"type": "frame", "image": image_data_url(image, jpeg_quality), "instruction": instruction}
    state = robot_state_dict(robot_state)
    if state is not None:
        msg["robot_state"] = state
    text = json.dumps(msg, separators=(",", ":"), allow_nan=False)
    try:
        parse_client_message(text)
    except ProtocolError as exc:
        raise ValueError(f"the service would refuse this frame: {exc}") from None
    return text


STATS_TEXT = '{"type":"stats"}'
CLOSE_TEXT = '{"type":"close"}'
