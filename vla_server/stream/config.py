"""`StreamConfig`: limits and defaults of `/v1/stream` sessions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from robot_formats.stream.limits import DEFAULT_MAX_MESSAGE_BYTES, MAX_IMAGE_SIDE_PX
from vla_server.constants import (
    DEFAULT_AUTH_TIMEOUT_S,
    DEFAULT_QUEUE_MAX_SIZE,
    DEFAULT_SMOOTHING_ALPHA,
    MAX_FRAME_PIXELS,
    OUTBOX_MAX_SIZE,
)
from vla_server.stream.safety_limits import SafetyLimits


@dataclass(frozen=True)
class StreamConfig:
    """Session settings.

    Attributes:
        max_message_bytes: a client message above this gets `error` (the session lives on).
        queue_max_size: frames held while the model is busy (``INFERENCE_QUEUE_MAX_SIZE``).
        auth_timeout_s: a connection without a valid `auth` is closed (4002) after this.
        default_smoothing_alpha: EMA α when `auth` asks for smoothing without `smoothing_alpha`.
        max_image_side: decoded frames larger than this many px on a side are refused.
        max_frame_pixels: decoded-pixel budget of one image (width × height, read from the JPEG
            header before anything decodes it); a larger frame gets an `error` and never reaches
            the model. Default: what the catalog's models need (1280 × 960).
        outbox_max_size: server messages waiting for a slow client; the oldest action goes first.
        safety: limits of the safety score.
    """

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    queue_max_size: int = DEFAULT_QUEUE_MAX_SIZE
    auth_timeout_s: float = DEFAULT_AUTH_TIMEOUT_S
    default_smoothing_alpha: float = DEFAULT_SMOOTHING_ALPHA
    max_image_side: int = MAX_IMAGE_SIDE_PX
    max_frame_pixels: int = MAX_FRAME_PIXELS
    outbox_max_size: int = OUTBOX_MAX_SIZE
    safety: SafetyLimits = field(default_factory=SafetyLimits)

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "queue_max_size", "max_image_side", "max_frame_pixels",
                     "outbox_max_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"stream.{name}: expected an integer >= 1, got {v!r}")
        if self.max_message_bytes < 1024:
            raise ValueError(f"stream.max_message_bytes: expected >= 1024, got {self.max_message_bytes}")
        if not (
            isinstance(self.auth_timeout_s, (int, float))
            and math.isfinite(self.auth_timeout_s)
            and self.auth_timeout_s > 0
        ):
            raise ValueError(f"stream.auth_timeout_s: expected > 0 s, got {self.auth_timeout_s!r}")
        a = self.default_smoothing_alpha
        if not (isinstance(a, (int, float)) and 0.0 < a <= 1.0):
            raise ValueError(f"stream.default_smoothing_alpha: expected 0 < alpha <= 1, got {a!r}")
