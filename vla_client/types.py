"""What the VLA clients hand to their users, defined once for both wire formats and the daemon."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ClientState = Literal["idle", "connecting", "connected", "reconnecting", "closed"]


@dataclass(frozen=True)
class ReceivedAction:
    """One action as the client received (or, for openpi chunks, scheduled) it.

    Attributes:
        frame_id: the frame (observation) it answers; for blended openpi chunks the newest one.
        timestamp: when the server produced it (stream) or it was emitted (openpi), unix s.
        action: (7,) float64, see `robot_formats.action_space` (base frame, [−1, 1], gripper last).
        safety_score: 0..1 from the service; openpi servers score nothing: 1.0 (the daemon's
            command gate still applies).
        latency_ms: the service's frame→action latency (stream), or the age of the observation
            behind this action when emitted (openpi).
        smoothed: EMA applied by the service (stream), or more than one chunk blended (openpi).
        received_at: client monotonic clock when it reached the client (stream) or was emitted, s.
        rtt_ms: client-measured frame-sent → action-received time, ms, when known.
        session_number: the client's session the frame was sent in (1 = the first; each
            reconnect opens the next); with `frame_id` it names the frame `send_frame` returned
            that id for (stream frame ids restart at 0 in each session).
    """

    frame_id: int
    timestamp: float
    action: np.ndarray
    safety_score: float
    latency_ms: float
    smoothed: bool
    received_at: float
    rtt_ms: float | None = None
    session_number: int = 0


@dataclass(frozen=True)
class ClientStats:
    """Client-side counters (the server's view is `get_stats()`)."""

    state: ClientState
    frames_sent: int = 0
    frames_dropped: int = 0  # replaced by a newer frame before it was sent (openpi: one in flight)
    actions_received: int = 0
    actions_dropped: int = 0  # overflowed the client's action queue unread
    server_errors: int = 0
    protocol_violations: int = 0
    reconnects: int = 0
    rtt_ms_p50: float | None = None
    rtt_ms_p95: float | None = None
    last_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
