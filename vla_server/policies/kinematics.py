"""Panda kinematics from the simulator's MuJoCo model: forward kinematics and a damped IK solve.

The model is `frankateach.sim.model.build_model(cameras=False)`, whose arm joint vector *is*
the real Panda's (see that module), and whose ``tcp`` site is the real hand's TCP (O_T_EE).
Frames: base frame = world, metres, quaternions xyzw at this interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from frankateach.constants import HOME_JOINTS, JOINT_LIMITS_HIGH, JOINT_LIMITS_LOW
from frankateach.sim.controller import (
    mat_to_quat_wxyz,
    quat_wxyz_to_xyzw,
    quat_xyzw_to_wxyz,
    rotation_error,
)
from frankateach.sim.model import SimIndex, build_model


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
    """FK and IK of the Panda's TCP (one private `MjData`; not thread-safe)."""

    def __init__(self) -> None:
        self.model = build_model(cameras=False)
        self.index = SimIndex.from_model(self.model)
        self._data = mujoco.MjData(self.model)
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))
        self.lower = JOINT_LIMITS_LOW.astype(np.float64).copy()
        self.upper = JOINT_LIMITS_HIGH.astype(np.float64).copy()
        self.home = HOME_JOINTS.astype(np.float64).copy()

    def _set(self, q: np.ndarray) -> None:
        d = self._data
        d.qpos[self.index.arm_qpos] = q
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_comPos(self.model, d)

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP (pos (3,) m, quat (4,) xyzw) in the base frame for joints `q` (7,) rad."""
        self._set(np.asarray(q, dtype=np.float64))
        site = self.index.tcp_site
        return self._data.site_xpos[site].copy(), quat_wxyz_to_xyzw(mat_to_quat_wxyz(self._data.site_xmat[site]))

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """(6, 7) TCP Jacobian [linear; angular] in the base frame at joints `q`."""
        self._set(np.asarray(q, dtype=np.float64))
        mujoco.mj_jacSite(self.model, self._data, self._jacp, self._jacr, self.index.tcp_site)
        dof = self.index.arm_dof
        return np.vstack([self._jacp[:, dof], self._jacr[:, dof]])

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
        target_q = quat_xyzw_to_wxyz(np.asarray(quat_xyzw, dtype=np.float64))
        target_q /= np.linalg.norm(target_q)
        q = self.clip(self.home if seed is None else seed)

        def errors(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            cur_pos, cur_quat = self.forward(q)
            return target_pos - cur_pos, rotation_error(target_q, quat_xyzw_to_wxyz(cur_quat))

        e_pos, e_rot = errors(q)
        it = 0
        while it < iterations and (np.linalg.norm(e_pos) >= 5e-5 or np.linalg.norm(e_rot) >= 5e-4):
            it += 1
            jac = self.jacobian(q)
            jjt = jac @ jac.T + damping**2 * np.eye(6)
            pinv = np.linalg.solve(jjt, jac).T
            pull = nullspace_gain * (self.home - q)
            dq = pinv @ np.concatenate([e_pos, e_rot]) + pull - pinv @ (jac @ pull)
            step = float(np.max(np.abs(dq)))
            if step > 0.3:
                dq *= 0.3 / step
            q = self.clip(q + dq)
            e_pos, e_rot = errors(q)
        pos_err, rot_err = float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot))
        return IKResult(q=q, pos_err=pos_err, rot_err=rot_err, iterations=it)
