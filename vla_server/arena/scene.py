"""`ArenaScene`: the simulator's Panda scene stepped directly, with no clock and no sockets.

Physics and control are the simulator's own: a headless `frankateach.sim.backend.SimBackend`
(the object `frankateach-sim` serves) on the model built with ``cameras=False``, so the arena
runs the same scene, the same Cartesian controller and the same control phase as the simulator,
and a state blob from either continues in the other.

Everything the arena reads (TCP pose and velocity, gripper, cube positions) is computed from the
state vector on a scratch `MjData` that is never stepped, so reading never changes the
trajectory and a restored scene reads exactly as the uninterrupted one.

Frames: the robot base frame is the world frame; metres, radians, quaternions xyzw.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import mujoco
import numpy as np

from frankateach.messages import FrankaAction
from frankateach.sim import state_blob as SB
from frankateach.sim.backend import SimBackend
from frankateach.sim.controller import finger_to_gripper
from frankateach.sim.model import CUBE_HALF_SIZE, CUBES, TABLE_TOP_Z, build_model
from robot_formats.robot_state import RobotStateIn, pos_quat_to_pose
from robot_formats.rotations import quat_from_matrix
from vla_server.arena.config import (
    CONTROL_EVERY,
    GRASP_POINT_OFFSET_M,
    SCENES,
    SHUFFLE_XY_M,
    SHUFFLE_YAW_RAD,
)

_MODEL_LOCK = threading.Lock()
_PHYSICS_MODEL: mujoco.MjModel | None = None


class SceneError(ValueError):
    """A scene request that cannot be met (unknown scene name, bad state)."""


def physics_model() -> mujoco.MjModel:
    """The simulator's physics model (no cameras), built once per process and shared read-only."""
    global _PHYSICS_MODEL
    with _MODEL_LOCK:
        if _PHYSICS_MODEL is None:
            _PHYSICS_MODEL = build_model(cameras=False)
        return _PHYSICS_MODEL


@dataclass(frozen=True)
class Kinematics:
    """What the arena reads from a state (all base frame).

    Attributes:
        tcp_pos: (3,) hand TCP position, m.
        tcp_quat_xyzw: (4,) hand TCP orientation (sign kept continuous).
        tcp_vel: (6,) linear (m/s) then angular (rad/s) TCP velocity.
        grasp_point: (3,) the point between the finger pads, m.
        gripper: measured opening mapped to −1 open … +1 closed.
        finger_opening: mean finger travel, m (0 closed … 0.04 open).
        joints: (7,) arm joints, rad.
        cubes: cube name -> (3,) centre position, m.
    """

    tcp_pos: np.ndarray
    tcp_quat_xyzw: np.ndarray
    tcp_vel: np.ndarray
    grasp_point: np.ndarray
    gripper: float
    finger_opening: float
    joints: np.ndarray
    cubes: dict[str, np.ndarray]

    def robot_state(self) -> RobotStateIn:
        """The state as a client would report it (pose = xyz + Euler xyz roll/pitch/yaw)."""
        pose = pos_quat_to_pose(self.tcp_pos, self.tcp_quat_xyzw)
        vel = tuple(float(v) for v in self.tcp_vel)
        return RobotStateIn(pose=pose, velocity=vel, gripper=float(self.gripper))  # type: ignore[arg-type]


class ArenaScene:
    """One simulated Panda scene, stepped on demand.

    Attributes:
        backend: the headless simulator backend (physics + controller).
        scene_hash: 16-byte identity of the scene (see `frankateach.sim.state_blob`).
        quat_ref: (4,) sign reference of reported orientations (carried by blobs).
    """

    def __init__(self) -> None:
        self.model = physics_model()
        self.backend = SimBackend(self.model, control_every=CONTROL_EVERY)
        self.index = self.backend.index
        self.scene_hash = SB.backend_scene_hash(self.backend)
        self._scratch = mujoco.MjData(self.model)
        self._cube_ids = dict(self.index.cube_bodies)
        self.quat_ref = np.array([0.0, 0.0, 0.0, 1.0])

    # -- starting points ----------------------------------------------------------------------
    def reset(self, scene: str, seed: int) -> None:
        """Puts the scene at a named start: the arm at home, gripper open, cubes on the table.

        "default" is the nominal layout; "shuffled" moves every cube up to `SHUFFLE_XY_M` in x
        and y and turns it up to `SHUFFLE_YAW_RAD` about z, drawn from `seed`.
        """
        if scene not in SCENES:
            raise SceneError(f"unknown scene {scene!r}; expected one of {SCENES}")
        self.backend = SimBackend(self.model, control_every=CONTROL_EVERY)  # fresh: home, at rest
        self.backend._scene_hash = self.scene_hash  # type: ignore[attr-defined]  # same model
        self.quat_ref = np.array([0.0, 0.0, 0.0, 1.0])
        if scene == "shuffled":
            rng = np.random.Generator(np.random.PCG64(int(seed)))
            d = self.backend.data
            for name in sorted(CUBES):
                adr = self.index.cube_qpos[name]
                (x, y), _ = CUBES[name]
                dx, dy = rng.uniform(-SHUFFLE_XY_M, SHUFFLE_XY_M, size=2)
                yaw = rng.uniform(-SHUFFLE_YAW_RAD, SHUFFLE_YAW_RAD)
                d.qpos[adr:adr + 3] = [x + dx, y + dy, TABLE_TOP_Z + CUBE_HALF_SIZE]
                d.qpos[adr + 3:adr + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
            mujoco.mj_forward(self.model, d)
        self.kinematics()  # settle the orientation sign reference

    def restore(self, snap: SB.SimSnapshot) -> None:
        """Continues from a snapshot (raises `StateBlobError` for another scene)."""
        self.backend = SimBackend(self.model, control_every=CONTROL_EVERY)
        self.backend._scene_hash = self.scene_hash  # type: ignore[attr-defined]
        SB.restore(self.backend, snap)
        self.quat_ref = snap.reported_quat_xyzw.copy()

    def snapshot(self, extension: bytes = b"") -> SB.SimSnapshot:
        """The scene's state now, carrying `extension`."""
        return SB.capture(self.backend, extension, quat_xyzw=self.quat_ref)

    # -- stepping -----------------------------------------------------------------------------
    @property
    def step_count(self) -> int:
        """Physics steps since the scene's start (2 ms each); sets the controller's phase."""
        return int(self.backend.steps)

    @property
    def time(self) -> float:
        """Sim time, s."""
        return float(self.backend.data.time)

    def advance(self, n: int) -> None:
        """Runs `n` physics steps (the controller on every `CONTROL_EVERY`-th, as the simulator)."""
        if n > 0:
            self.backend.step(int(n))

    def set_target(self, pos: np.ndarray, quat_xyzw: np.ndarray, gripper: float) -> None:
        """Makes a TCP pose the controller's target (clamped to the workspace box, as the simulator)."""
        self.backend.apply_action(FrankaAction(np.asarray(pos, float), np.asarray(quat_xyzw, float),
                                               float(gripper), False, 0.0))

    def target(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The target being held: (pos (3,), quat xyzw (4,), gripper)."""
        c = self.backend.controller
        return c.target_pos.copy(), c.target_quat_xyzw, float(c.gripper)

    # -- reading ------------------------------------------------------------------------------
    def qpos(self) -> np.ndarray:
        return self.backend.data.qpos.copy()

    def kinematics(self, update_ref: bool = True) -> Kinematics:
        """Reads the current state (see module doc: computed on a scratch copy).

        Args:
            update_ref: make the orientation read now the sign reference (the episode does at
                observations only, so how often it samples cannot change what it records).
        """
        m, s, idx = self.model, self._scratch, self.index
        s.qpos[:] = self.backend.data.qpos
        s.qvel[:] = self.backend.data.qvel
        mujoco.mj_kinematics(m, s)
        mujoco.mj_comPos(m, s)
        mujoco.mj_comVel(m, s)
        site = idx.tcp_site
        quat = np.array(quat_from_matrix(s.site_xmat[site].reshape(3, 3)))
        if float(np.dot(quat, self.quat_ref)) < 0.0:
            quat = -quat
        if update_ref:
            self.quat_ref = quat.copy()
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(m, s, mujoco.mjtObj.mjOBJ_SITE, site, vel, 0)  # [ang; lin], world
        xmat = s.site_xmat[site].reshape(3, 3)
        opening = float(np.mean(s.qpos[idx.finger_qpos]))
        return Kinematics(
            tcp_pos=s.site_xpos[site].copy(),
            tcp_quat_xyzw=quat,
            tcp_vel=np.concatenate([vel[3:], vel[:3]]),
            grasp_point=s.site_xpos[site] + GRASP_POINT_OFFSET_M * xmat[:, 2],
            gripper=finger_to_gripper(opening),
            finger_opening=opening,
            joints=s.qpos[idx.arm_qpos].copy(),
            cubes={n: s.xpos[b].copy() for n, b in self._cube_ids.items()},
        )
