"""What the control thread produces and the robot-communication thread sends."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from frankateach.messages import FrankaAction


class ControlMode(str, enum.Enum):
    """Where the control thread takes its reference pose from."""

    REAL_TIME = "REAL-TIME"  # the measured robot pose is fresh (≤ 2 control periods old)
    PREDICTIVE = "PREDICTIVE"  # measured state is stale: the last commanded target is the reference


@dataclass(frozen=True)
class RobotCommand:
    """One control step's output.

    Attributes:
        seq: control-step counter.
        created: `time.monotonic()` when the command was made, seconds.
        action: (7,) policy velocity action in [-1, 1]: lin xyz, rot xyz (Euler), gripper.
        target: the pose target sent to the robot (base frame, m / xyzw).
        mode: reference used for this step.
        engaged: the deadman (grip) was held, so the arm is meant to move.
        vr_seq: seq of the VR sample this command was made from (-1 if none).
        vr_t_recv: receive time of that VR sample (monotonic, s); NaN if none.
    """

    seq: int
    created: float
    action: np.ndarray
    target: FrankaAction
    mode: ControlMode
    engaged: bool
    vr_seq: int = -1
    vr_t_recv: float = float("nan")
