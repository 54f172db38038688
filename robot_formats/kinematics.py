"""The Franka Panda's kinematics, numpy only: TCP and every link's pose from the 7 joints, the TCP
Jacobian and a damped-least-squares IK (`PandaKinematics`).

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

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from frankateach.constants import HOME_JOINTS, JOINT_LIMITS_HIGH, JOINT_LIMITS_LOW
from robot_formats.rotations import quat_from_matrix, quat_normalize, quat_to_matrix, rot_z, rotation_error

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
_HAND_ROT = rot_z(-np.pi / 4)  # link7 → hand (TCP): −π/4 about link7 z
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
    if arr.shape != (ARM_DOF,) or not np.isfinite(arr).all():
        raise ValueError(f"expected {ARM_DOF} finite joint angles (rad), got {arr.tolist()}")
    return arr


_Vec = tuple[float, float, float]
_Mat = tuple[_Vec, _Vec, _Vec]
# the same offsets as plain floats: seven 3×3 products are cheaper in floats than numpy calls
_JOINT_OFFSETS_F: tuple[tuple[_Vec, _Mat], ...] = tuple(
    ((float(o[0]), float(o[1]), float(o[2])), tuple((float(r[0]), float(r[1]), float(r[2])) for r in f))  # type: ignore[misc]
    for o, f in _JOINT_OFFSETS
)


def _chain_floats(q: np.ndarray) -> list[tuple[_Vec, _Mat]]:
    """(position, rotation rows) of link0 … link7 for joints `q` (validated), as floats."""
    p0 = p1 = p2 = 0.0
    r: _Mat = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    out = [((p0, p1, p2), r)]
    for qi, (o, f) in zip(q.tolist(), _JOINT_OFFSETS_F):
        (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = r
        p0, p1, p2 = (p0 + a0 * o[0] + a1 * o[1] + a2 * o[2], p1 + b0 * o[0] + b1 * o[1] + b2 * o[2],
                      p2 + c0 * o[0] + c1 * o[1] + c2 * o[2])
        c, s = math.cos(qi), math.sin(qi)
        (f00, f01, f02), (f10, f11, f12), (f20, f21, f22) = f
        # m = f @ rot_z(qi): only the first two columns turn
        m00, m01 = f00 * c + f01 * s, f01 * c - f00 * s
        m10, m11 = f10 * c + f11 * s, f11 * c - f10 * s
        m20, m21 = f20 * c + f21 * s, f21 * c - f20 * s
        r = (
            (a0 * m00 + a1 * m10 + a2 * m20, a0 * m01 + a1 * m11 + a2 * m21, a0 * f02 + a1 * f12 + a2 * f22),
            (b0 * m00 + b1 * m10 + b2 * m20, b0 * m01 + b1 * m11 + b2 * m21, b0 * f02 + b1 * f12 + b2 * f22),
            (c0 * m00 + c1 * m10 + c2 * m20, c0 * m01 + c1 * m11 + c2 * m21, c0 * f02 + c1 * f12 + c2 * f22),
        )
        out.append(((p0, p1, p2), r))
    return out


def _chain(q: np.ndarray) -> list[Pose]:
    """Poses of link0 … link7 for joints `q` (validated)."""
    return [Pose(np.array(p), np.array(r)) for p, r in _chain_floats(q)]


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
    p, r = _chain_floats(_joints(q))[-1]
    rot = np.array(r)
    return Pose(np.array(p) + rot @ _TCP_POS, rot @ _HAND_ROT)


def forward(q: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TCP (pos (3,) m, quat (4,) xyzw, w ≥ 0) in the base frame for joints `q` (7,) rad."""
    pose = tcp_pose(q)
    return pose.pos, pose.quat_xyzw


def jacobian(q: Sequence[float] | np.ndarray) -> np.ndarray:
    """(6, 7) TCP Jacobian [linear; angular] in the base frame at joints `q` (MuJoCo's ``mj_jacSite``).

    Column i: joint i turns about its link's z axis ``z_i`` through ``p_i``, so the TCP moves
    ``z_i × (p_tcp − p_i)`` (m/rad) and turns ``z_i`` (rad/rad).
    """
    links = _chain(_joints(q))
    hand = links[-1]
    tcp = hand.pos + hand.rot @ _TCP_POS
    out = np.empty((6, ARM_DOF))
    for i, link in enumerate(links[1:]):
        axis = link.rot[:, 2]
        out[:3, i] = np.cross(axis, tcp - link.pos)
        out[3:, i] = axis
    return out


@dataclass(frozen=True)
class IKResult:
    """Outcome of `PandaKinematics.solve_ik`.

    Attributes:
        q: (7,) joints, rad (within the joint limits).
        pos_err: remaining position error, m.
        rot_err: remaining orientation error, rad.
        iterations: iterations used.
    """

    q: np.ndarray
    pos_err: float
    rot_err: float
    iterations: int

    @property
    def converged(self) -> bool:
        return self.pos_err < 1e-3 and self.rot_err < 1e-2


class PandaKinematics:
    """FK, Jacobian and IK of the Panda's TCP with the real joint limits (stateless, thread-safe).

    Attributes:
        lower, upper: (7,) joint limits, rad.
        home: (7,) the home posture, rad (IK's default seed and null-space attractor).
    """

    def __init__(self) -> None:
        self.lower = JOINT_LIMITS_LOW.astype(np.float64).copy()
        self.upper = JOINT_LIMITS_HIGH.astype(np.float64).copy()
        self.home = HOME_JOINTS.astype(np.float64).copy()

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP (pos (3,) m, quat (4,) xyzw, w ≥ 0) in the base frame for joints `q` (7,) rad."""
        return forward(q)

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """(6, 7) TCP Jacobian [linear; angular] in the base frame at joints `q`."""
        return jacobian(q)

    def clip(self, q: np.ndarray) -> np.ndarray:
        """`q` clipped to the joint limits."""
        return np.clip(np.asarray(q, dtype=np.float64), self.lower, self.upper)

    def solve_ik(
        self,
        pos: np.ndarray,
        quat_xyzw: np.ndarray,
        seed: np.ndarray | None = None,
        iterations: int = 100,
        damping: float = 0.01,
        nullspace_gain: float = 0.1,
    ) -> IKResult:
        """Joints that put the TCP at (pos, quat), by damped least squares from `seed` (home if None).

        The redundant DOF is pulled gently toward the home posture, so the answer is a smooth,
        deterministic function of the target and the seed.
        """
        target_pos = np.asarray(pos, dtype=np.float64)
        target_q = quat_normalize(tuple(float(v) for v in quat_xyzw))
        q = self.clip(self.home if seed is None else seed)

        def errors(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            pose = tcp_pose(q)
            current = quat_from_matrix(pose.rot)
            return target_pos - pose.pos, np.array(rotation_error(target_q, current))

        e_pos, e_rot = errors(q)
        it = 0
        while it < iterations and (np.linalg.norm(e_pos) >= 5e-5 or np.linalg.norm(e_rot) >= 5e-4):
            it += 1
            jac = jacobian(q)
            free = np.ones(len(q), dtype=bool)
            for _ in range(2):  # a joint at a limit that the step pushes further out is held there
                jac_free = jac * free
                jjt = jac_free @ jac_free.T + damping**2 * np.eye(6)
                pinv = np.linalg.solve(jjt, jac_free).T
                pull = nullspace_gain * (self.home - q) * free
                dq = pinv @ np.concatenate([e_pos, e_rot]) + pull - pinv @ (jac_free @ pull)
                blocked = ((q <= self.lower) & (dq < 0)) | ((q >= self.upper) & (dq > 0))
                if not np.any(blocked & free):
                    break
                free &= ~blocked
            step = float(np.max(np.abs(dq)))
            if step > 0.3:
                dq *= 0.3 / step
            q = self.clip(q + dq)
            e_pos, e_rot = errors(q)
        pos_err, rot_err = float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot))
        return IKResult(q=q, pos_err=pos_err, rot_err=rot_err, iterations=it)
