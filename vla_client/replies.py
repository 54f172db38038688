"""Parsing of `/v1/stream` server messages into the service's own message types, strictly: a
server that breaks the protocol gets a `ProtocolViolation` naming the field, never a crash."""

from __future__ import annotations

import math
from typing import Any

from robot_formats.stream.errors import InvalidJSON
from robot_formats.stream.messages import (
    ActionMessage,
    ConnectedMessage,
    ErrorMessage,
    ServerMessage,
    StatsMessage,
)
from robot_formats.stream.parse import json_object
from vla_client.errors import ProtocolViolation


def _num(d: dict[str, Any], key: str, kind: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ProtocolViolation(f"{kind}.{key}: expected a finite number, got {v!r}"[:200])
    return float(v)


def _int(d: dict[str, Any], key: str, kind: str) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProtocolViolation(f"{kind}.{key}: expected an integer, got {v!r}"[:200])
    return v


def _bool(d: dict[str, Any], key: str, kind: str) -> bool:
    v = d.get(key)
    if not isinstance(v, bool):
        raise ProtocolViolation(f"{kind}.{key}: expected true/false, got {v!r}"[:200])
    return v


def _str(d: dict[str, Any], key: str, kind: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise ProtocolViolation(f"{kind}.{key}: expected a string, got {v!r}"[:200])
    return v


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """One server text frame → `ConnectedMessage` | `ActionMessage` | `StatsMessage` | `ErrorMessage`.

    Raises:
        ProtocolViolation: not a JSON object, unknown type, a missing or mistyped field.
    """
    try:
        d = json_object(raw)
    except InvalidJSON as exc:
        raise ProtocolViolation(f"server message: {exc}") from None
    kind = d.get("type")
    if kind == "action":
        action = d.get("action")
        if not isinstance(action, list) or len(action) != 7:
            raise ProtocolViolation(f"action.action: expected a list of 7 numbers, got {action!r}"[:200])
        values = tuple(_num({"v": v}, "v", "action.action") for v in action)
        return ActionMessage(
            frame_id=_int(d, "frame_id", "action"),
            timestamp=_num(d, "timestamp", "action"),
            action=values,
            safety_score=_num(d, "safety_score", "action"),
            latency_ms=_num(d, "latency_ms", "action"),
            smoothed=_bool(d, "smoothed", "action"),
        )
    if kind == "error":
        return ErrorMessage(message=_str(d, "message", "error"))
    if kind == "stats":
        return StatsMessage(
            session_id=_str(d, "session_id", "stats"),
            runtime_seconds=_num(d, "runtime_seconds", "stats"),
            total_frames=_int(d, "total_frames", "stats"),
            dropped_frames=_int(d, "dropped_frames", "stats"),
            drop_rate_percent=_num(d, "drop_rate_percent", "stats"),
            target_fps=_num(d, "target_fps", "stats"),
            actual_fps=_num(d, "actual_fps", "stats"),
            avg_latency_ms=_num(d, "avg_latency_ms", "stats"),
            frame_queue_size=_int(d, "frame_queue_size", "stats"),
            action_queue_size=_int(d, "action_queue_size", "stats"),
        )
    if kind == "connected":
        cfg = d.get("config")
        if not isinstance(cfg, dict):
            raise ProtocolViolation(f"connected.config: expected an object, got {cfg!r}"[:200])
        return ConnectedMessage(
            session_id=_str(d, "session_id", "connected"),
            model=_str(cfg, "model", "connected.config"),
            target_fps=_num(cfg, "target_fps", "connected.config"),
            smoothing=_bool(cfg, "smoothing", "connected.config"),
            safety=_bool(cfg, "safety", "connected.config"),
        )
    raise ProtocolViolation(f"server sent unknown message type {kind!r}"[:200])
