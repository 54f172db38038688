"""The robot protocol's records: `FrankaAction`, `FrankaState` and `CameraFrame`.

Content-compatible with NYU Franka-Teach (``frankateach/messages.py`` there). Frames and units:
positions in metres and quaternions (x, y, z, w) are of the hand TCP in the robot base frame;
gripper -1 is open, +1 closed; timestamps are seconds (sender's clock).

Franka-Teach pickles these classes by name, ``frankateach.messages.FrankaAction`` /
``FrankaState``; so that the pickles we write load on their side and theirs map onto ours, both
classes carry that module name (`WIRE_MODULE`; `frankateach.messages` re-exports them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WIRE_MODULE = "frankateach.messages"  # the module name Franka-Teach's pickles use for the records
N_JOINTS = 7


def missing_joints() -> np.ndarray:
    """(7,) NaN: joint positions the robot server did not report (NYU Franka-Teach has none)."""
    return np.full(N_JOINTS, np.nan)


@dataclass(frozen=True)
class FrankaAction:
    """A Cartesian target for the hand.

    Attributes:
        pos: (3,) target position, metres, base frame.
        quat: (4,) target orientation, xyzw, unit norm.
        gripper: -1 open … +1 closed.
        reset: True asks the robot to return to its home pose (pos/quat are then ignored).
        timestamp: sender's time the command was made, seconds.
    """

    pos: np.ndarray
    quat: np.ndarray
    gripper: float
    reset: bool
    timestamp: float


@dataclass(frozen=True)
class FrankaState:
    """The robot's measured state.

    Attributes:
        pos: (3,) hand position, metres, base frame.
        quat: (4,) hand orientation, xyzw.
        gripper: -1 open … +1 closed (measured finger opening mapped onto that range).
        timestamp: time of measurement on the robot server's clock (`time.time()`), seconds.
        start_teleop: the robot server is ready to be teleoperated.
        joint_positions: (7,) arm joints, rad, real-Panda convention; all NaN when the server
            does not report them (see `has_joint_positions`) — never zeros standing in for them.
    """

    pos: np.ndarray
    quat: np.ndarray
    gripper: float
    timestamp: float
    start_teleop: bool = False
    joint_positions: np.ndarray = field(default_factory=missing_joints)

    @property
    def has_joint_positions(self) -> bool:
        """True when the server reported the arm's joint positions."""
        q = np.asarray(self.joint_positions, dtype=float)
        return q.shape == (N_JOINTS,) and bool(np.all(np.isfinite(q)))


# Pickle (and so Franka-Teach) names these classes frankateach.messages.<name>.
FrankaAction.__module__ = WIRE_MODULE
FrankaState.__module__ = WIRE_MODULE


@dataclass(frozen=True)
class CameraFrame:
    """One JPEG frame as published on ``CAM_PORT_OFFSET + camera_id``.

    Attributes:
        camera_id: index of the camera on the robot server.
        name: camera name ("front", "wrist", ...).
        seq: per-camera frame counter (gaps mean dropped frames).
        timestamp: capture time on the server's clock, seconds.
        width, height: image size in pixels.
        jpeg: the encoded image.
    """

    camera_id: int
    name: str
    seq: int
    timestamp: float
    width: int
    height: int
    jpeg: bytes


Request = FrankaAction | bytes  # bytes is always GET_STATE
