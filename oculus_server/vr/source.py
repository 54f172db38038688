"""The VR input interface: a `VRSource` yields `VRSample`s.

Poses are exactly what the headset app reports: 4×4 homogeneous transforms of each controller
relative to the *headset* (``head⁻¹ · hand``), metres, in the app's (OpenXR-style, y-up) frame.
Moving the head therefore moves the pose; the policy's forward calibration absorbs the rest.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Mapping, Union

import numpy as np

ButtonValue = Union[bool, float, tuple[float, float]]

# Button names, as oculus_reader exposes them. Booleans: A B RTr RG RThU RJ (right),
# X Y LTr LG LThU LJ (left). Analog: rightTrig rightGrip leftTrig leftGrip (plain floats here,
# 1-tuples in oculus_reader); joysticks rightJS leftJS as (x, y).
RIGHT_BOOLS = ("A", "B", "RTr", "RG", "RThU", "RJ")
LEFT_BOOLS = ("X", "Y", "LTr", "LG", "LThU", "LJ")
RIGHT_ANALOG = ("rightTrig", "rightGrip")
LEFT_ANALOG = ("leftTrig", "leftGrip")


@dataclass(frozen=True)
class VRSample:
    """One reading of the controllers.

    Attributes:
        poses: side ("r" or "l") -> (4, 4) head_T_controller; a side may be absent.
        buttons: oculus_reader-style button map (see module constants); only the sides present.
        t_recv: `time.monotonic()` when the sample was received by the daemon, seconds.
        seq: per-source sample counter, starting at 0 (gaps mean skipped samples).
    """

    poses: Mapping[str, np.ndarray]
    buttons: Mapping[str, ButtonValue]
    t_recv: float
    seq: int

    def pose(self, side: str) -> np.ndarray | None:
        """Returns a copy of the (4, 4) pose of `side` ("r" or "l"), or None if absent."""
        p = self.poses.get(side)
        return None if p is None else np.array(p, dtype=float)


class SourceState(str, enum.Enum):
    """Link state of a VR source, as shown on the dashboard."""

    CONNECTED = "connected"  # samples arriving
    WAITING = "waiting"  # link up (or starting), no sample yet
    STALE = "stale"  # link up but no sample for longer than the stale timeout
    DISCONNECTED = "disconnected"  # link down; reconnecting with backoff
    FINISHED = "finished"  # a finite source (replay, scripted with an end) has no more samples


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

    def start(self) -> None:
        """Opens the device or stream. Called once, from the VR thread."""

    @abstractmethod
    def poll(self) -> VRSample | None:
        """Returns the newest new sample, or None."""

    @abstractmethod
    def status(self) -> SourceStatus:
        """Returns the source's current health."""

    def close(self) -> None:
        """Releases the device or stream (idempotent)."""
