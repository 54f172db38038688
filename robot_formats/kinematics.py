"""The Franka Panda's forward kinematics, numpy only: TCP and every link's pose from the 7 joints.

The chain is the simulator's MuJoCo model (`frankateach.sim.model.build_model`), whose arm joint
vector *is* the real Panda's (Craig DH convention) and whose ``tcp`` site is the real hand's TCP
(flange + 0.1034 m along the approach axis, turned −π/4 about it: the pose the real arm reports
as O_T_EE). `tests/test_kinematics_fk.py` checks every pose against MuJoCo to 1e-6 over random
joint vectors. No MuJoCo here: a robot PC, a live viewer or a client can compute link poses
without the simulator (~30 µs per call).

Frames: the robot base frame is link0's frame (the simulator's world). Positions in metres,
quaternions (x, y, z, w), joints in radians, finger openings in metres (each finger 0 … 0.04).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from robot_formats.rotations import quat_from_matrix, quat_normalize, quat_to_matrix

ARM_DOF = 7
FINGER_OPEN_M = 0.04  # each finger's travel, metres (0 closed … 0.04 open)
FLANGE_OFFSET_M = 0.107  # link7 origin → flange along link7 z
TCP_OFFSET_M = 0.1034  # flange → TCP along the hand's approach axis (Franka hand default)
FINGER_BASE_OFFSET_M = 0.1654  # link7 origin → finger bodies along link7 z (the simulator's hand)

LINK_NAMES = (
    "link0", "link1", "link2", "link3", "link4", "link5", "link6", "link7", "left_finger", "right_finger",
)

def _rx(sign: float) -> np.ndarray:
    """Rotation by ±π/2 about x (sign +1 or −1), exactly as the model's compiled body frames."""
    return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -sign], [0.0, sign, 0.0]])


def _rz(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# Each arm joint i: its body's fixed offset from the parent (position, rotation), then a rotation
# about the body's own z axis by q[i]. These are the compiled model's body_pos / body_quat.
_JOINT_OFFSETS: tuple[tuple[np.ndarray, np.ndarray], ...] = (
    (np.array([0.0, 0.0, 0.333]), np.eye(3)),
    (np.zeros(3), _rx(-1.0)),
    (np.array([0.0, -0.316, 0.0]), _rx(1.0)),
    (np.array([0.0825, 0.0, 0.0]), _rx(1.0)),
    (np.array([-0.0825, 0.384, 0.0]), _rx(-1.0)),
    (np.zeros(3), _rx(1.0)),
    (np.array([0.088, 0.0, 0.0]), _rx(1.0)),
)
_HAND_ROT = _rz(-np.pi / 4)  # link7 → hand (TCP): −π/4 about link7 z
# The finger bodies' frame in link7, as the asset gives it (−π/4 about z to ~1e-6 rad).
_FINGER_ROT = quat_to_matrix(quat_normalize((0.0, 0.0, -0.38268289803626016, 0.9238797538373538)))
_TCP_POS = np.array([0.0, 0.0, FLANGE_OFFSET_M + TCP_OFFSET_M])  # in link7
_FINGER_POS = np.array([0.0, 0.0, FINGER_BASE_OFFSET_M])  # in link7
_FINGER_AXIS = np.array([0.0, 1.0, 0.0])  # left finger slides +y of the hand, right finger −y


@dataclass(frozen=True)
class Pose:
    """A rigid pose in the robot base frame.

    Attributes:
        pos: (3,) position, metres.
        rot: (3, 3) rotation matrix (columns: the frame's axes in base coordinates).
    """

    pos: np.ndarray
    rot: np.ndarray

    @property
    def quat_xyzw(self) -> np.ndarray:
        """(4,) unit quaternion, x y z w, w ≥ 0."""
        return np.array(quat_from_matrix(self.rot, w_positive=True))

    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous transform base ← frame."""
        out = np.eye(4)
        out[:3, :3] = self.rot
        out[:3, 3] = self.pos
        return out


def _joints(q: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(q, dtype=np.float64).reshape(-1)
    if arr.shape != (ARM_DOF,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"expected {ARM_DOF} finite joint angles (rad), got {arr.tolist()}")
    return arr


def _chain(q: np.ndarray) -> list[Pose]:
    """Poses of link0 … link7 for joints `q` (validated)."""
    pos, rot = np.zeros(3), np.eye(3)
    out = [Pose(pos, rot)]
    for qi, (offset, fixed) in zip(q, _JOINT_OFFSETS):
        pos = pos + rot @ offset
        rot = rot @ fixed @ _rz(float(qi))
        out.append(Pose(pos, rot))
    return out


def link_poses(q: Sequence[float] | np.ndarray, finger_m: float = FINGER_OPEN_M) -> dict[str, Pose]:
    """Every link's pose (`LINK_NAMES`: link0 … link7 and the two fingers) for joints `q`.

    Args:
        q: (7,) arm joints, rad.
        finger_m: each finger's opening, metres (0 closed … 0.04 open); clipped to that range.

    Raises:
        ValueError: `q` is not 7 finite numbers.
    """
    links = _chain(_joints(q))
    hand = links[-1]
    d = float(np.clip(finger_m, 0.0, FINGER_OPEN_M)) if np.isfinite(finger_m) else FINGER_OPEN_M
    rot = hand.rot @ _FINGER_ROT
    base = hand.pos + hand.rot @ _FINGER_POS
    out = {name: pose for name, pose in zip(LINK_NAMES, links)}
    out["left_finger"] = Pose(base + rot @ (_FINGER_AXIS * d), rot)
    out["right_finger"] = Pose(base - rot @ (_FINGER_AXIS * d), rot)
    return out


def tcp_pose(q: Sequence[float] | np.ndarray) -> Pose:
    """The hand TCP's pose (O_T_EE) for joints `q` (7,) rad.

    Raises:
        ValueError: `q` is not 7 finite numbers.
    """
    hand = _chain(_joints(q))[-1]
    return Pose(hand.pos + hand.rot @ _TCP_POS, hand.rot @ _HAND_ROT)


def forward(q: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TCP (pos (3,) m, quat (4,) xyzw, w ≥ 0) in the base frame for joints `q` (7,) rad."""
    pose = tcp_pose(q)
    return pose.pos, pose.quat_xyzw
