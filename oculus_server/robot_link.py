"""`RobotLink`: the health of the robot connection (robot thread → control thread, dashboard).

A daemon-internal value (never recorded); the recorded values live in `robot_formats.recording.records`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RobotLink:
    """Health of the robot connection.

    Attributes:
        up: the last request got a valid reply.
        rtt_last_s, rtt_mean_s, rtt_p95_s: round-trip figures, seconds.
        failures: consecutive failed requests.
        timeouts, errors: totals since start.
        last_error: text of the last failure.
        epoch: 0 before the first reply, then +1 for the first reply after each outage.
    """

    up: bool = False
    rtt_last_s: float = float("nan")
    rtt_mean_s: float = float("nan")
    rtt_p95_s: float = float("nan")
    failures: int = 0
    timeouts: int = 0
    errors: int = 0
    last_error: str = ""
    epoch: int = 0
