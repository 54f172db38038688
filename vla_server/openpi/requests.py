"""One openpi request, frame to `Observation` and policy chunk to reply frame, with the checks and
error texts of every place that serves openpi connections: the service's endpoint
(`vla_server.openpi_endpoint`) and a model worker serving a handed-over connection
(`vla_server.workers.openpi_host`). Light on purpose (numpy, msgpack, the contract package): a
worker imports it.

An error is an `OpenPIRequestError` whose text goes to the client as one text frame, then a close
(`send_error`, in the numpy-free `vla_server.openpi.errors`, re-exported here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_formats.openpi_codec import OpenPICodecError, packb, unpackb
from robot_formats.openpi_request import ForwardKinematics, OpenPIObservationError, parse_request
from vla_server.openpi.errors import (
    CLOSE_INTERNAL_ERROR,
    MAX_REASON_BYTES,
    ClosableConnection,
    OpenPIRequestError,
    close_reason,
    error_frames,
    send_error,
)
from vla_server.policies.base import Observation

__all__ = ["CLOSE_INTERNAL_ERROR", "MAX_REASON_BYTES", "ClosableConnection", "OpenPIRequestError", "check_pixel_budget",
           "check_reply", "close_reason", "decode_message", "error_frames", "observation_from_request", "reply_frame",
           "send_error"]


def decode_message(data: str | bytes, max_message_bytes: int) -> dict[str, Any]:
    """The decoded request map of one WebSocket message.

    Raises:
        OpenPIRequestError: a text frame, a message over `max_message_bytes`, not msgpack-numpy, not a map.
    """
    if isinstance(data, str):
        raise OpenPIRequestError("expected a binary msgpack observation, got a text frame")
    if len(data) > max_message_bytes:
        raise OpenPIRequestError(f"observation of {len(data)} bytes exceeds the limit of {max_message_bytes}")
    try:
        obs = unpackb(data)
    except OpenPICodecError as exc:
        raise OpenPIRequestError(f"bad observation: {exc}") from exc
    if not isinstance(obs, dict):
        raise OpenPIRequestError(f"expected the observation as a msgpack map, got {type(obs).__name__}")
    return obs


def check_pixel_budget(obs: Observation, max_pixels: int) -> None:
    """Raises `OpenPIObservationError` when an image of `obs` holds more than `max_pixels` (w × h)."""
    for name, img in (("image", obs.image), ("wrist image", obs.wrist_image)):
        if img is not None and img.shape[0] * img.shape[1] > max_pixels:
            h, w = img.shape[:2]
            raise OpenPIObservationError(
                f"{name} is {w}x{h} = {w * h} px; this service takes at most {max_pixels} px per image "
                "(stream.max_frame_pixels)"
            )


def observation_from_request(request: Mapping[str, Any], *, fk: ForwardKinematics, max_pixels: int,
                             session: str, step: int) -> Observation:
    """The policy's `Observation` of a decoded request (native or DROID keys; joints through `fk`).

    Raises:
        OpenPIRequestError: ``bad observation: …`` (a missing or malformed key, an image over `max_pixels`).
    """
    try:
        req = parse_request(request, fk=fk)
        obs = Observation(image=req.image, instruction=req.instruction, robot_state=req.robot_state,
                          wrist_image=req.wrist_image, session=session, step=step)
        check_pixel_budget(obs, max_pixels)
    except OpenPIObservationError as exc:
        raise OpenPIRequestError(f"bad observation: {exc}") from None
    return obs


def check_reply(reply: object, model_id: str) -> dict[str, Any]:
    """Validates what a model answered and copies it (`reply_frame` adds ``server_timing``)."""
    if not isinstance(reply, Mapping):
        raise OpenPIRequestError(f"model {model_id!r} returned {type(reply).__name__}, expected a mapping")
    actions = reply.get("actions")
    if not isinstance(actions, np.ndarray) or actions.ndim != 2 or actions.dtype.kind not in "iuf":
        got = f"{type(actions).__name__} {getattr(actions, 'shape', '')}"
        raise OpenPIRequestError(f"model {model_id!r} returned actions {got}, expected an (H, D) numeric array")
    if not np.isfinite(actions).all():
        raise OpenPIRequestError(f"model {model_id!r} returned non-finite actions")
    return dict(reply)


def reply_frame(reply: dict[str, Any], model_id: str, infer_ms: float, prev_total_ms: float | None) -> bytes:
    """The reply message: `reply` plus ``server_timing`` (``infer_ms``; ``prev_total_ms``, the previous
    request's receive-to-sent time, from the second reply on), msgpack-numpy encoded.

    Raises:
        OpenPIRequestError: the reply cannot be encoded.
    """
    timing: dict[str, float] = {"infer_ms": infer_ms}
    if prev_total_ms is not None:
        timing["prev_total_ms"] = prev_total_ms
    reply["server_timing"] = timing
    try:
        return packb(reply)
    except OpenPICodecError as exc:
        raise OpenPIRequestError(f"model {model_id!r} reply cannot be encoded: {exc}") from None
