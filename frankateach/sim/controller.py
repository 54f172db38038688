"""Cartesian control of the simulated arm: TCP target → joint position targets for the servos.

Each control step runs one damped-least-squares (DLS) IK iteration on the *commanded* joint
vector (not the measured one), so the servo targets form a smooth trajectory:

    v      = [clip(k_p · e_pos, v_max); clip(k_r · e_rot, w_max)]      (base frame)
    dq     = Jᵀ (J Jᵀ + λ² I)⁻¹ v  +  (I − J⁺ J) · k_n · (q_home − q)
    q_cmd ← clip(q_cmd + clip(dq, ±q̇_max) · dt, joint limits)

The commanded vector is never allowed to lead the measured one by more than `max_lead_rad`, so a
blocked arm (contact) does not wind up. Frames: base = world; positions in metres, quaternions
xyzw at the interface (MuJoCo's wxyz inside).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from frankateach.constants import (
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    HOME_JOINTS,
    JOINT_LIMITS_HIGH,
    JOINT_LIMITS_LOW,
    ROBOT_WORKSPACE_MAX,
    ROBOT_WORKSPACE_MIN,
)
from frankateach.sim.model import FINGER_OPEN_M, SimIndex


def quat_xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    """Reorders a quaternion from xyzw (protocol) to wxyz (MuJoCo)."""
    q = np.asarray(q, dtype=float)
    return np.array([q[3], q[0], q[1], q[2]])


def quat_wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    """Reorders a quaternion from wxyz (MuJoCo) to xyzw (protocol)."""
    q = np.asarray(q, dtype=float)
    return np.array([q[1], q[2], q[3], q[0]])


def mat_to_quat_wxyz(mat: np.ndarray) -> np.ndarray:
    """Returns the wxyz quaternion of a 3×3 rotation matrix (any layout accepted by reshape)."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(mat, dtype=float).reshape(9))
    return quat


def rotation_error(target_wxyz: np.ndarray, current_wxyz: np.ndarray) -> np.ndarray:
    """Rotation vector (rad, base frame) that turns `current` into `target` the short way."""
    conj = current_wxyz * np.array([1.0, -1.0, -1.0, -1.0])
    err = np.empty(4)
    mujoco.mju_mulQuat(err, target_wxyz, conj)
    if err[0] < 0:
        err = -err
    vec = np.empty(3)
    mujoco.mju_quat2Vel(vec, err, 1.0)
    return vec


def gripper_to_finger(gripper: float) -> float:
    """Maps a gripper command (−1 open … +1 closed) to a finger servo target (0.04 … 0 m)."""
    g = float(np.clip(gripper, GRIPPER_OPEN, GRIPPER_CLOSE))
    return FINGER_OPEN_M * (GRIPPER_CLOSE - g) / (GRIPPER_CLOSE - GRIPPER_OPEN)


def finger_to_gripper(opening_m: float) -> float:
    """Maps one finger's measured opening (0 … 0.04 m) to the gripper range (+1 closed … −1 open)."""
    frac = float(np.clip(opening_m / FINGER_OPEN_M, 0.0, 1.0))
    return GRIPPER_CLOSE - frac * (GRIPPER_CLOSE - GRIPPER_OPEN)


@dataclass
class ControllerGains:
    """Tuning of `CartesianController` (SI units).

    Attributes:
        pos_gain, rot_gain: proportional gains of the task-space velocity, 1/s.
        max_lin_speed: TCP speed limit, m/s.
        max_ang_speed: TCP angular speed limit, rad/s.
        max_joint_speed: per-joint speed limit of the commanded trajectory, rad/s.
        damping: DLS damping λ (m or rad).
        nullspace_gain: pull of the redundant DOF toward the home posture, 1/s.
        limit_margin: commanded joints stay this far inside the limits, rad.
        max_lead_rad: commanded joints never lead the measured ones by more than this, rad.
    """

    pos_gain: float = 12.0
    rot_gain: float = 10.0
    max_lin_speed: float = 0.5
    max_ang_speed: float = 2.0
    max_joint_speed: float = 1.5
    damping: float = 0.03
    nullspace_gain: float = 2.0
    limit_margin: float = 0.01
    max_lead_rad: float = 0.3


class CartesianController:
    """Turns a TCP pose target into servo targets for the arm and the fingers.

    Args:
        model: the sim model (see `frankateach.sim.model.build_model`).
        index: its name lookups.
        gains: tuning; defaults reach a 10 cm target within 5 mm in well under 2 s.
        home: (7,) home joints, rad (real convention).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        index: SimIndex | None = None,
        gains: ControllerGains | None = None,
        home: np.ndarray = HOME_JOINTS,
    ) -> None:
        self.model = model
        self.index = index or SimIndex.from_model(model)
        self.gains = gains or ControllerGains()
        self.home = np.asarray(home, dtype=float).copy()
        self._data = mujoco.MjData(model)  # private kinematics scratch: FK/Jacobian of q_cmd
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._jac = np.zeros((6, 7))  # [linear; angular] TCP Jacobian w.r.t. the arm joints
        self._lo = JOINT_LIMITS_LOW + self.gains.limit_margin
        self._hi = JOINT_LIMITS_HIGH - self.gains.limit_margin
        self.home_pos, self.home_quat_wxyz = self.forward(self.home)
        self.q_cmd = self.home.copy()
        self.target_pos = self.home_pos.copy()
        self.target_quat_wxyz = self.home_quat_wxyz.copy()
        self.gripper = GRIPPER_OPEN
        self.resetting = False

    # -- kinematics -----------------------------------------------------------------------------
    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns the TCP (pos (3,) m, quat (4,) wxyz) in the base frame for arm joints `q`."""
        d = self._data
        d.qpos[self.index.arm_qpos] = q
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_comPos(self.model, d)  # cdof / subtree CoM, needed by mj_jacSite
        site = self.index.tcp_site
        return d.site_xpos[site].copy(), mat_to_quat_wxyz(d.site_xmat[site])

    # -- commands -------------------------------------------------------------------------------
    def set_target(self, pos: np.ndarray, quat_xyzw: np.ndarray, gripper: float) -> None:
        """Sets the TCP target (pos m, quat xyzw, base frame) and gripper (−1 open … +1 closed).

        The position is clamped to the workspace box; a pending reset is cancelled.
        """
        self.target_pos = np.clip(np.asarray(pos, float), ROBOT_WORKSPACE_MIN, ROBOT_WORKSPACE_MAX)
        q = quat_xyzw_to_wxyz(quat_xyzw)
        self.target_quat_wxyz = q / np.linalg.norm(q)
        self.gripper = float(np.clip(gripper, GRIPPER_OPEN, GRIPPER_CLOSE))
        self.resetting = False

    def set_gripper(self, gripper: float) -> None:
        """Sets only the gripper command (−1 open … +1 closed)."""
        self.gripper = float(np.clip(gripper, GRIPPER_OPEN, GRIPPER_CLOSE))

    def reset(self) -> None:
        """Moves back to the home joints (joint-space, speed-limited); the target becomes home."""
        self.resetting = True
        self.target_pos = self.home_pos.copy()
        self.target_quat_wxyz = self.home_quat_wxyz.copy()

    def sync(self, q_measured: np.ndarray) -> None:
        """Makes the commanded joints equal to the measured ones and the target the current pose."""
        self.q_cmd = np.clip(np.asarray(q_measured, float), self._lo, self._hi)
        self.target_pos, self.target_quat_wxyz = self.forward(self.q_cmd)
        self.resetting = False

    @property
    def target_quat_xyzw(self) -> np.ndarray:
        return quat_wxyz_to_xyzw(self.target_quat_wxyz)

    # -- control step ---------------------------------------------------------------------------
    def _ik_velocity(self, q: np.ndarray) -> np.ndarray:
        """One DLS step: joint velocity (7,) rad/s that moves the TCP of `q` toward the target."""
        g = self.gains
        pos, quat = self.forward(q)
        mujoco.mj_jacSite(self.model, self._data, self._jacp, self._jacr, self.index.tcp_site)
        dof = self.index.arm_dof
        jac = self._jac
        jac[:3] = self._jacp[:, dof]
        jac[3:] = self._jacr[:, dof]
        v_lin = g.pos_gain * (self.target_pos - pos)
        n = np.linalg.norm(v_lin)
        if n > g.max_lin_speed:
            v_lin *= g.max_lin_speed / n
        v_ang = g.rot_gain * rotation_error(self.target_quat_wxyz, quat)
        n = np.linalg.norm(v_ang)
        if n > g.max_ang_speed:
            v_ang *= g.max_ang_speed / n
        v = np.concatenate([v_lin, v_ang])
        jjt = jac @ jac.T
        jjt[np.diag_indices(6)] += g.damping**2
        pinv = np.linalg.solve(jjt, jac).T  # (7, 6) = Jᵀ (J Jᵀ + λ² I)⁻¹ (J Jᵀ is symmetric)
        pull = g.nullspace_gain * (self.home - q)
        return pinv @ v + pull - pinv @ (jac @ pull)  # task + (I − J⁺J)·pull

    def step(self, q_measured: np.ndarray, dt: float) -> tuple[np.ndarray, float]:
        """Advances the commanded trajectory by `dt` seconds.

        Args:
            q_measured: (7,) measured arm joints, rad.
            dt: control period, s.

        Returns:
            (7,) arm servo targets (rad) and the finger servo target (m).
        """
        g = self.gains
        q = self.q_cmd
        if self.resetting:
            qdot = (self.home - q) / max(dt, 1e-9)
        else:
            qdot = self._ik_velocity(q)
        peak = np.max(np.abs(qdot))
        if peak > g.max_joint_speed:
            qdot *= g.max_joint_speed / peak  # uniform scaling keeps the direction
        q_new = np.clip(q + qdot * dt, self._lo, self._hi)
        lead = np.clip(q_new - q_measured, -g.max_lead_rad, g.max_lead_rad)
        self.q_cmd = np.clip(q_measured + lead, self._lo, self._hi)
        if self.resetting and np.max(np.abs(self.q_cmd - self.home)) < 1e-6:
            self.resetting = False
        return self.q_cmd.copy(), gripper_to_finger(self.gripper)
