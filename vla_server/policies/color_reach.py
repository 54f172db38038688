"""`color-reach`: a classical vision policy that picks up the cube whose colour the instruction names.

Per frame:

1. the colour comes from the instruction ("pick up the **red** cube"; red, green or blue);
2. the cube is found in the front-camera RGB image (HSV thresholds + the largest connected
   component, `vision.find_blob`) and located on the table by back-projecting the blob's centroid
   through the simulator's front camera onto the plane z = table + half a cube
   (`camera_model`; the camera's pose and field of view are read from the MuJoCo scene);
3. a small state machine, kept per session, drives the TCP (from ``robot_state.pose``):

   ``search`` → ``approach`` (above the cube at `hover_z`, gripper open, hand pointing down)
   → ``descend`` (to `grasp_z`) → ``grasp`` (close for `close_steps`) → ``lift`` (to `lift_z`)
   → ``hold``. On reaching ``hold`` it checks the grasp: the fingers closed on nothing (when
   ``robot_state.gripper`` is sent) or the cube still seen where it was on the table means a
   miss, and it starts over (up to `max_attempts`).

The cube estimate is refined while approaching (only from frames where the blob is not
occluded, i.e. at least `occluded_frac` of the largest area seen) and frozen from ``descend`` on,
when the hand hides it. Actions follow `robot_formats.action_space` (``target_to_action``: steps of
at most 0.075 m and 0.15 rad toward the phase's target). Without ``robot_state`` the policy cannot
know where the hand is: it answers "stay" (zero motion, gripper open) and keeps its phase.
Deterministic: the output is a pure function of the session's observations.

Latency: with the default ``gain`` 1 each action points exactly at the phase's target from the
pose in the frame, which is right for a consumer that applies it relative to that pose (the
arena does; measured: all seeds succeed at 0–283 ms). A consumer that applies it relative to the
pose at arrival makes a slow model overshoot (fails from ~200 ms); ``gain: 0.5`` fixes that at
the cost of speed (see `ColorReachParams.gain`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from robot_formats.action_space import (
    ACTION_DIM,
    GRIPPER_CLOSED,
    GRIPPER_OPEN,
    target_to_action,
)
from robot_formats.robot_state import pose_to_pos_quat
from vla_server.policies.base import Observation, Policy, PolicyInfo
from vla_server.policies.camera_model import SceneGeometry, scene_geometry_from_sim
from vla_server.policies.session_blob import decode_session, encode_session
from vla_server.policies.session_memory import SessionMemory
from vla_server.policies.vision import COLOURS, find_blob, parse_colour

SESSION_FORMAT = 1  # version of `export_session`'s bytes
PHASES = ("search", "approach", "descend", "grasp", "lift", "hold", "gave_up")
MAX_SESSIONS = 256  # per-session memories kept; the least recently used beyond this is dropped


@dataclass(frozen=True)
class ColorReachParams:
    """Tuning of `ColorReachPolicy` (TCP heights in the base frame, metres).

    Attributes:
        camera: simulator camera the images come from.
        hover_z: TCP height while approaching above the cube.
        grasp_z: TCP height to close the gripper at (the simulated finger pads reach ~4.5 cm below
            the TCP, so this puts them around the cube's middle).
        lift_z: TCP height to lift the cube to.
        xy_tol: horizontal distance to the cube that ends the approach, m.
        z_tol: height error that ends a vertical move, m.
        rot_tol: orientation error that ends the approach, rad.
        close_steps: frames to wait with the gripper closing before lifting.
        max_attempts: grasp attempts before giving up (gripper open, staying put).
        phase_timeout: frames a moving phase may take before the attempt counts as failed.
        min_blob_frac: smallest blob, as a fraction of the image's pixels, taken as the cube.
        occluded_frac: a blob smaller than this fraction of the largest one seen is partly hidden
            and does not update the estimate.
        grasp_yaw: hand yaw while grasping, rad (0: fingers close along the base y axis).
        gain: fraction of the remaining way to the phase's target commanded per frame (capped
            by the action space's step). 1 suits consumers that apply an action relative to the
            pose in the frame it answers (the arena), at any latency; a consumer that applies it
            relative to the pose when it arrives needs ≤ 0.5 beyond ~150 ms of latency.
    """

    camera: str = "front"
    hover_z: float = 0.16
    grasp_z: float = 0.055
    lift_z: float = 0.22
    xy_tol: float = 0.008
    z_tol: float = 0.008
    rot_tol: float = 0.08
    close_steps: int = 6
    max_attempts: int = 3
    phase_timeout: int = 80
    min_blob_frac: float = 0.0008
    occluded_frac: float = 0.6
    grasp_yaw: float = 0.0
    gain: float = 1.0

    def __post_init__(self) -> None:
        if not self.grasp_z < self.hover_z or not self.grasp_z < self.lift_z:
            raise ValueError(f"expected grasp_z < hover_z and grasp_z < lift_z, got {self}")
        if not 0 < self.gain <= 1:
            raise ValueError(f"gain: expected 0 < gain <= 1, got {self.gain}")
        for name in ("xy_tol", "z_tol", "rot_tol", "min_blob_frac", "occluded_frac"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        for name in ("close_steps", "max_attempts", "phase_timeout"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")


@dataclass
class _Session:
    """Memory of one session (mutable; owned by the policy)."""

    colour: str | None = None
    phase: str = "search"
    phase_steps: int = 0
    attempts: int = 0
    cube_xy: np.ndarray | None = None  # (2,) estimate on the table, m, base frame
    ref_area: int = 0  # largest blob area seen during this attempt, px
    last_z: list[float] = field(default_factory=list)  # recent TCP heights during descend, m

    def enter(self, phase: str) -> None:
        self.phase = phase
        self.phase_steps = 0
        self.last_z.clear()


def _session_from_doc(doc: dict[str, Any]) -> _Session:
    """A `_Session` from `export_session`'s fields (ValueError/KeyError/TypeError/IndexError on a bad one)."""
    xy = doc["cube_xy"]
    s = _Session(
        colour=doc["colour"], phase=doc["phase"], phase_steps=int(doc["phase_steps"]),
        attempts=int(doc["attempts"]),
        cube_xy=None if xy is None else np.array([float(xy[0]), float(xy[1])]),
        ref_area=int(doc["ref_area"]), last_z=[float(z) for z in doc["last_z"]],
    )
    if s.phase not in PHASES or (s.colour is not None and s.colour not in COLOURS):
        raise ValueError(f"phase {s.phase!r} / colour {s.colour!r}")
    return s


class ColorReachPolicy(Policy):
    """Reach, grasp and lift the cube named by colour; see the module docstring.

    Args:
        params: tuning.
        geometry: scene geometry (camera, table, cube size); read from the simulator's MuJoCo
            scene in `load` when None.
    """

    def __init__(self, params: ColorReachParams | None = None, geometry: SceneGeometry | None = None) -> None:
        self.params = params or ColorReachParams()
        self.geometry = geometry
        self._sessions: SessionMemory[_Session] = SessionMemory(_Session, MAX_SESSIONS)
        self._down = Rotation.from_euler("xyz", [np.pi, 0.0, self.params.grasp_yaw])

    def info(self) -> PolicyInfo:
        return PolicyInfo(
            name="color-reach",
            backend="color-reach",
            action_horizon=1,
            description="classical vision: find the named cube (HSV blob), back-project it through "
            "the sim's front camera, reach, grasp and lift",
            extra={"colours": list(COLOURS), "camera": self.params.camera},
        )

    def load(self) -> None:
        if self.geometry is None:
            self.geometry = scene_geometry_from_sim(self.params.camera)

    def end_session(self, session: str) -> None:
        self._sessions.pop(session)

    def export_session(self, session: str) -> bytes:
        """The memory of `session` as compact JSON bytes (b"" when there is none).

        `import_session` restores it exactly (floats round-trip through their shortest repr), so
        an episode split in two continues bit for bit (the arena's state blobs carry this).
        """
        s = self._sessions.get(session)
        if s is None:
            return b""
        doc = {
            "colour": s.colour, "phase": s.phase, "phase_steps": s.phase_steps,
            "attempts": s.attempts, "cube_xy": None if s.cube_xy is None else [float(v) for v in s.cube_xy],
            "ref_area": s.ref_area, "last_z": s.last_z,
        }
        return encode_session(SESSION_FORMAT, doc)

    def import_session(self, session: str, data: bytes) -> None:
        """Restores what `export_session` returned (b"": forget the session).

        Raises:
            ValueError: bytes that are not an exported color-reach session.
        """
        if not data:
            self._sessions.pop(session)
            return
        s = decode_session(data, SESSION_FORMAT, "color-reach", _session_from_doc)
        self._sessions.put(session, s)

    def session_phase(self, session: str) -> str | None:
        """The phase of `session`'s state machine (one of `PHASES`), or None if unknown."""
        s = self._sessions.get(session)
        return s.phase if s else None

    # -- perception -----------------------------------------------------------------------------
    def _locate(self, image: np.ndarray, colour: str) -> tuple[np.ndarray, int] | None:
        """The cube's (x, y) on the table (m) and its blob area (px), or None if not seen."""
        geo = self.geometry
        assert geo is not None
        h, w = image.shape[:2]
        blob = find_blob(image, colour, min_area=max(1, int(self.params.min_blob_frac * h * w)))
        if blob is None:
            return None
        hit = geo.camera.backproject_to_plane(*blob.centroid, w, h, geo.table_z + geo.cube_half_size)
        if hit is None:
            return None
        return hit[:2], blob.area

    # -- control --------------------------------------------------------------------------------
    def infer(self, obs: Observation) -> np.ndarray:
        if self.geometry is None:
            self.load()
        image = np.asarray(obs.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        s = self._sessions.use(obs.session)
        colour = parse_colour(obs.instruction)
        if colour != s.colour:  # a new task (or the first frame): start over
            s = self._sessions.put(obs.session, _Session(colour=colour))
        stay = np.zeros((1, ACTION_DIM))
        stay[0, 6] = GRIPPER_OPEN
        if colour is None or obs.robot_state is None:
            return stay
        pos, quat = pose_to_pos_quat(obs.robot_state.pose)
        seen = self._locate(image, colour)
        target, gripper = self._step(s, pos, quat, seen, obs.robot_state.gripper)
        target_rot = self._down
        if self.params.gain < 1.0:
            g = self.params.gain
            target = pos + g * (target - pos)
            rel = self._down * Rotation.from_quat(quat).inv()
            target_rot = Rotation.from_rotvec(g * rel.as_rotvec()) * Rotation.from_quat(quat)
        action = target_to_action(pos, quat, target, target_rot.as_quat(), gripper)
        if action is None:
            return stay  # only for a degenerate (non-finite) pose
        return np.array(action).reshape(1, ACTION_DIM)

    def _retry(self, s: _Session) -> None:
        """Counts a failed attempt and starts over, or gives up."""
        s.attempts += 1
        s.cube_xy = None
        s.ref_area = 0
        s.enter("search" if s.attempts < self.params.max_attempts else "gave_up")

    def _step(
        self, s: _Session, pos: np.ndarray, quat: np.ndarray, seen: tuple[np.ndarray, int] | None,
        gripper_measured: float | None,
    ) -> tuple[np.ndarray, float]:
        """Advances the state machine for one frame; returns the TCP target (3,) and gripper."""
        p = self.params
        s.phase_steps += 1
        rot_err = float((self._down * Rotation.from_quat(quat).inv()).magnitude())
        if s.phase in ("search", "approach") and seen is not None:
            xy, area = seen
            if area >= p.occluded_frac * s.ref_area:
                s.cube_xy = xy
                s.ref_area = max(s.ref_area, area)
        if s.phase == "search":
            if s.cube_xy is None:  # rise to the hover height and look again
                return np.array([pos[0], pos[1], max(pos[2], p.hover_z)]), GRIPPER_OPEN
            s.enter("approach")
        if s.phase == "approach":
            assert s.cube_xy is not None
            goal = np.array([s.cube_xy[0], s.cube_xy[1], p.hover_z])
            # Keep clear of the cubes on the way: go up first when low and far from the goal.
            if pos[2] < p.hover_z - 0.03 and np.linalg.norm(pos[:2] - goal[:2]) > 0.03:
                goal = np.array([pos[0], pos[1], p.hover_z])
            done = (
                np.linalg.norm(pos[:2] - s.cube_xy) < p.xy_tol
                and abs(pos[2] - p.hover_z) < 2 * p.z_tol
                and rot_err < p.rot_tol
            )
            if done:
                s.enter("descend")
            elif s.phase_steps > p.phase_timeout:
                self._retry(s)
                return pos.copy(), GRIPPER_OPEN
            else:
                return goal, GRIPPER_OPEN
        if s.phase == "descend":
            assert s.cube_xy is not None
            goal = np.array([s.cube_xy[0], s.cube_xy[1], p.grasp_z])
            s.last_z = [*s.last_z[-3:], float(pos[2])]
            stalled = len(s.last_z) >= 4 and s.last_z[-4] - s.last_z[-1] < 0.002
            if pos[2] - p.grasp_z < p.z_tol:
                s.enter("grasp")
            elif stalled or s.phase_steps > p.phase_timeout:  # resting on something: not the way down
                self._retry(s)
                return np.array([pos[0], pos[1], p.hover_z]), GRIPPER_OPEN
            else:
                return goal, GRIPPER_OPEN
        if s.phase == "grasp":
            assert s.cube_xy is not None
            goal = np.array([s.cube_xy[0], s.cube_xy[1], p.grasp_z])
            if s.phase_steps <= p.close_steps:
                return goal, GRIPPER_CLOSED
            s.enter("lift")
        if s.phase == "lift":
            assert s.cube_xy is not None
            goal = np.array([s.cube_xy[0], s.cube_xy[1], p.lift_z])
            if pos[2] > p.lift_z - p.z_tol:
                s.enter("hold")
                if self._missed(s, seen, gripper_measured):
                    self._retry(s)
                    return goal, GRIPPER_OPEN
            elif s.phase_steps > p.phase_timeout:
                self._retry(s)
                return goal, GRIPPER_OPEN
            else:
                return goal, GRIPPER_CLOSED
        if s.phase == "hold":
            assert s.cube_xy is not None
            return np.array([s.cube_xy[0], s.cube_xy[1], p.lift_z]), GRIPPER_CLOSED
        return pos.copy(), GRIPPER_OPEN  # gave_up

    def _missed(self, s: _Session, seen: tuple[np.ndarray, int] | None, gripper: float | None) -> bool:
        """After lifting: did the grasp miss (fingers shut on nothing, or cube still on the table)?"""
        if gripper is not None and gripper > 0.9:
            return True
        if seen is None or s.cube_xy is None:
            return False
        xy, area = seen
        return bool(np.linalg.norm(xy - s.cube_xy) < 0.02 and area >= self.params.occluded_frac * s.ref_area)
