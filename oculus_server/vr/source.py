"""The VR input interface: a `VRSource` yields `VRSample`s.

Poses are exactly what the headset app reports: 4×4 homogeneous transforms of each controller
relative to the *headset* (``head⁻¹ · hand``), metres, in the app's (OpenXR-style, y-up) frame.
Moving the head therefore moves the pose; the policy's forward calibration absorbs the rest.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from robot_formats.recording.records import (
    LEFT_ANALOG,
    LEFT_BOOLS,
    RIGHT_ANALOG,
    RIGHT_BOOLS,
    ButtonValue,
    VRSample,
)

# VRSample and the button names cross threads: they live in robot_formats.recording.records.
__all__ = [
    "ButtonValue", "LEFT_ANALOG", "LEFT_BOOLS", "RIGHT_ANALOG", "RIGHT_BOOLS", "SourceState",
    "SourceStatus", "VRSample", "VRSource", "playback_state",
]


class SourceState(str, enum.Enum):
    """Link state of a VR source, as shown on the dashboard."""

    CONNECTED = "connected"  # samples arriving
    WAITING = "waiting"  # link up (or starting), no sample yet
    STALE = "stale"  # link up but no sample for longer than the stale timeout
    DISCONNECTED = "disconnected"  # link down; reconnecting with backoff
    FINISHED = "finished"  # a finite source (replay, scripted with an end) has no more samples


def playback_state(started: bool, finished: bool) -> SourceState:
    """The state of a source that plays samples out (replay, scripted): FINISHED after its last
    sample, WAITING before it started, CONNECTED while playing."""
    if finished:
        return SourceState.FINISHED
    return SourceState.CONNECTED if started else SourceState.WAITING


@dataclass(frozen=True)
class SourceStatus:
    """A copy of a source's health figures."""

    state: SourceState
    samples: int = 0
    rejected: int = 0
    reconnects: int = 0
    last_error: str = ""
    detail: str = ""
    reject_reasons: Mapping[str, int] = field(default_factory=dict)


class VRSource(ABC):
    """A producer of VR samples, polled by the VR thread at 50 Hz.

    `poll` never blocks for long (at most a few ms): it returns the newest sample received since
    the previous call, or None when there is none.
    """

    name: str = "vr"
    # True for a source whose motion is played, not performed (a script, a recording): it means the
    # arm's pose relative to where it was at the grip press, so after a link outage or a robot
    # restart the VR policy keeps its origin and the arm resumes that motion (step-limited from where
    # it stands) instead of carrying the lag it had at the outage as an offset ever after. A person
    # (headset, keyboard, browser) watches the arm: their origin is re-anchored at the held pose.
    keeps_anchor: bool = False

    def start(self) -> None:
        """Opens the device or stream. Called once, from the VR thread."""

    @abstractmethod
    def poll(self) -> VRSample | None:
        """Returns the newest new sample, or None."""

    @abstractmethod
    def status(self) -> SourceStatus:
        """Returns the source's current health."""

    def watch_robot(self, measured_position: Callable[[], np.ndarray | None]) -> None:
        """Lets the source see the arm, as an operator does: `measured_position()` returns the
        measured TCP position (robot base frame, m; None when no fresh state). Default: unused."""

    def close(self) -> None:
        """Releases the device or stream (idempotent)."""
