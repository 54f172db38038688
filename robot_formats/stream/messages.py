"""The `/v1/stream` message types, defined once (the server, tests, benchmarks and clients share them).

Client → server: `AuthMessage`, `FrameMessage`, `StatsRequest`, `CloseRequest` (parsed by
`robot_formats.stream.parse`). Server → client: `ConnectedMessage`, `ActionMessage`,
`StatsMessage`, `ErrorMessage`, each with `to_dict()` giving exactly the documented JSON object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from robot_formats.robot_state import RobotStateIn

# ---- client -> server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthMessage:
    """``{"type":"auth", ...}``: opens the session.

    Attributes:
        api_key: the client's key (never logged).
        model: catalog id of the model to stream to.
        robot_type: only ``"franka_panda"`` is supported.
        target_fps: frames per second the client intends to send; more are dropped (Hz).
        enable_smoothing: EMA over the returned actions.
        enable_safety: compute `safety_score` (1.0 is sent when disabled).
        smoothing_alpha: EMA weight of the newest action, 0 < α ≤ 1, or None for the default.
    """

    api_key: str
    model: str
    robot_type: str
    target_fps: float
    enable_smoothing: bool
    enable_safety: bool
    smoothing_alpha: float | None = None


@dataclass(frozen=True)
class FrameMessage:
    """``{"type":"frame", ...}`` after the cheap checks; the JPEG is decoded later (`decode_jpeg`).

    Attributes:
        jpeg: the image's JPEG bytes (header already checked).
        width, height: image size from the JPEG header, px.
        instruction: natural-language task.
        robot_state: measured state (finite values), or None.
        wrist_jpeg: optional wrist-camera JPEG bytes (extension: ``"wrist_image"`` data URL).
    """

    jpeg: bytes
    width: int
    height: int
    instruction: str
    robot_state: RobotStateIn | None = None
    wrist_jpeg: bytes | None = None


@dataclass(frozen=True)
class StatsRequest:
    """``{"type":"stats"}``: asks for a `StatsMessage`."""


@dataclass(frozen=True)
class CloseRequest:
    """``{"type":"close"}``: the client ends the session (close code 1000)."""


ClientMessage = AuthMessage | FrameMessage | StatsRequest | CloseRequest

# ---- server -> client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectedMessage:
    """Sent once after a successful `auth`."""

    session_id: str
    model: str
    target_fps: float
    smoothing: bool
    safety: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "connected",
            "session_id": self.session_id,
            "status": "ready",
            "config": {
                "model": self.model,
                "target_fps": self.target_fps,
                "smoothing": self.smoothing,
                "safety": self.safety,
            },
        }


@dataclass(frozen=True)
class ActionMessage:
    """One action per processed frame.

    Attributes:
        frame_id: index of the frame among the session's valid frames (0-based).
        timestamp: when the action was produced, unix s.
        action: 7 values (see `robot_formats.action_space`), finite, within [−1, 1].
        safety_score: 0..1 (see `vla_server.stream.safety`).
        latency_ms: from the frame's arrival at the service to this message being ready.
        smoothed: whether the EMA was applied.
    """

    frame_id: int
    timestamp: float
    action: tuple[float, ...]
    safety_score: float
    latency_ms: float
    smoothed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "action",
            "frame_id": self.frame_id,
            "timestamp": self.timestamp,
            "action": list(self.action),
            "safety_score": self.safety_score,
            "latency_ms": self.latency_ms,
            "smoothed": self.smoothed,
        }


@dataclass(frozen=True)
class StatsMessage:
    """Session statistics (reply to `StatsRequest`); drop counts include every reason."""

    session_id: str
    runtime_seconds: float
    total_frames: int
    dropped_frames: int
    drop_rate_percent: float
    target_fps: float
    actual_fps: float
    avg_latency_ms: float
    frame_queue_size: int
    action_queue_size: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": "stats", **{k: getattr(self, k) for k in self.__dataclass_fields__}}


@dataclass(frozen=True)
class ErrorMessage:
    """A bad input or a failure; the session stays usable unless a close follows."""

    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "error", "message": self.message}


ServerMessage = ConnectedMessage | ActionMessage | StatsMessage | ErrorMessage


def encode_server_message(msg: ServerMessage) -> str:
    """Compact JSON text of a server message (NaN/inf refused: the values are finite by contract)."""
    return json.dumps(msg.to_dict(), separators=(",", ":"), allow_nan=False)
