"""The 3D scene of a recording and of the live view: the arm you can see, the table, the cubes.

`ScenePainter` (the `mapping.ScenePainter` hook of `TickMapper`) adds to every tick's `/tf` the
Panda's links (``panda_link0`` … ``panda_link7``, ``panda_left_finger``, ``panda_right_finger``,
children of ``robot_base``) placed by forward kinematics (`robot_formats.kinematics`, numpy only)
from the *measured* joints, and about once a second (and whenever the simulator's state brings
new cube poses) publishes ``/scene`` (foxglove.SceneUpdate): the links drawn as primitives locked
to their frames, the commanded target (frame ``ee_target``), each camera's frustum (its optical
frame), and, from the simulator's scene description and state blob, the table and the cubes.
Entities are frame-locked and never expire, so between two ``/scene`` messages the arm follows
`/tf` alone. Nothing here imports MuJoCo: cube poses are read from the blob's qpos.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate

from frankateach.sim.state_blob import STATE_TIME, StateBlobError, decode
from robot_formats import kinematics as K
from robot_formats.recording import encode as E
from robot_formats.recording import schemas as S
from robot_formats.recording.camera_mounts import CameraMount, camera_frame
from robot_formats.recording.encode import Message
from robot_formats.recording.mapping import Transform
from robot_formats.recording.records import RecordTick
from robot_formats.rotations import quat_from_matrix

log = logging.getLogger(__name__)

SCENE_PERIOD_S = 1.0  # /scene is re-sent this often (a viewer that joins sees the scene within it)
FRUSTUM_DEPTH_M = 0.2  # drawn length of a camera's view pyramid
LinkFK = Callable[[np.ndarray, float], Mapping[str, Any]]  # (joints (7,), finger m) -> name -> pose (.pos, .rot)

ARM_COLOR = (0.92, 0.92, 0.94, 1.0)
JOINT_COLOR = (0.35, 0.36, 0.40, 1.0)
TARGET_COLOR = (0.1, 0.85, 0.3, 0.45)
FRUSTUM_COLOR = (1.0, 0.85, 0.1, 1.0)
LINK_RADIUS_M = 0.055


def link_frame(name: str) -> str:
    """The `/tf` frame of Panda link `name` (a `robot_formats.kinematics.LINK_NAMES` entry)."""
    return f"panda_{name}"


@dataclass(frozen=True)
class Box:
    """A box of the scene, robot base frame: centre (3,) m, rotation xyzw, half extents (3,) m, rgba."""

    position: tuple[float, ...]
    orientation: tuple[float, ...]
    half_size: tuple[float, ...]
    rgba: tuple[float, ...]


@dataclass(frozen=True)
class Cube:
    """A free cube: where its pose is in qpos (xyz, wxyz), half extents (3,) m, rgba."""

    qpos: int
    half_size: tuple[float, ...]
    rgba: tuple[float, ...]


@dataclass(frozen=True)
class SceneModel:
    """The simulated scene's fixed boxes (table) and free cubes; `nq` is the model's qpos size."""

    nq: int
    boxes: tuple[Box, ...] = ()
    cubes: Mapping[str, Cube] = field(default_factory=dict)


def _floats(v: Any, n: int, what: str) -> tuple[float, ...]:
    out = tuple(float(x) for x in v)
    if len(out) != n or not all(math.isfinite(x) for x in out):
        raise ValueError(f"{what}: expected {n} finite numbers, got {v!r}")
    return out


def scene_model_from_dict(d: Mapping[str, Any]) -> SceneModel:
    """Parses the scene child's ``bodies`` (`sim_scene._bodies`).

    Raises:
        ValueError: a missing key or a value of the wrong shape.
    """
    try:
        nq = int(d["nq"])
        boxes = tuple(Box(_floats(b["position"], 3, "box position"), _floats(b["orientation"], 4, "box orientation"),
                          _floats(b["half_size"], 3, "box size"), _floats(b["rgba"], 4, "box rgba"))
                      for b in d.get("boxes", ()))
        cubes = {str(n): Cube(int(c["qpos"]), _floats(c["half_size"], 3, f"cube {n} size"),
                              _floats(c["rgba"], 4, f"cube {n} rgba"))
                 for n, c in dict(d.get("cubes", {})).items()}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"scene bodies: {exc!r}") from None
    if any(not 0 <= c.qpos <= nq - 7 for c in cubes.values()):
        raise ValueError(f"scene bodies: a cube's qpos address is outside qpos ({nq})")
    return SceneModel(nq, boxes, cubes)


def cube_poses(blob: str, model: SceneModel) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Cube name → (position (3,) m, quaternion xyzw) from a simulator state blob (MuJoCo-free).

    Raises:
        StateBlobError: the blob is unreadable or holds no time + qpos of this scene's size.
    """
    snap = decode(blob)
    if not snap.state_spec & STATE_TIME or snap.state.size < 1 + model.nq:
        raise StateBlobError(f"state blob holds no qpos of {model.nq} values (state spec {snap.state_spec})")
    qpos = snap.state[1:1 + model.nq]
    out = {}
    for name, cube in model.cubes.items():
        p = qpos[cube.qpos:cube.qpos + 7]
        out[name] = (p[:3].copy(), np.array([p[4], p[5], p[6], p[3]]))
    return out


def panda_links(q: np.ndarray, finger_m: float) -> Mapping[str, Any]:
    """The default `LinkFK`: `robot_formats.kinematics.link_poses`."""
    return K.link_poses(q, finger_m)


def _quat_z_to(v: np.ndarray) -> tuple[float, float, float, float]:
    """Rotation (xyzw) turning +z onto direction `v`."""
    z = v / np.linalg.norm(v)
    axis = np.cross([0.0, 0.0, 1.0], z)
    s, c = float(np.linalg.norm(axis)), float(z[2])
    if s < 1e-9:
        return (0.0, 0.0, 0.0, 1.0) if c > 0 else (1.0, 0.0, 0.0, 0.0)
    axis /= s
    half = math.atan2(s, c) / 2
    return (*(axis * math.sin(half)).tolist(), math.cos(half))  # type: ignore[return-value]


class ScenePainter:
    """Link frames for `/tf` and the ``/scene`` messages of one mapper (single-threaded).

    Args:
        camera_mounts: camera name → mount (a frustum is drawn for each with a field of view).
        camera_sizes: camera name → (width px, height px), for the frustum's aspect (4:3 if absent).
        model: the simulated table and cubes (None: a real arm, no table or cubes).
        fk: joints → link poses (default: `robot_formats.kinematics`).
        period_s: how often ``/scene`` is re-sent.
    """

    def __init__(self, camera_mounts: Mapping[str, CameraMount] | None = None,
                 camera_sizes: Mapping[str, tuple[int, int]] | None = None,
                 model: SceneModel | None = None, fk: LinkFK = panda_links, period_s: float = SCENE_PERIOD_S) -> None:
        self._mounts = dict(camera_mounts or {})
        self._sizes = dict(camera_sizes or {})
        self._model = model
        self._fk = fk
        self._period_ns = int(period_s * E.NS_PER_S)
        self._next_ns = 0
        self._cubes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._links = self._link_geometry()
        self.errors = 0

    # -- /tf -------------------------------------------------------------------------------------
    def transforms(self, tick: RecordTick) -> list[Transform]:
        obs = tick.robot
        if obs is None:
            return []
        joints = getattr(obs.state, "joint_positions", None)
        try:
            q = np.asarray(joints, dtype=float).reshape(-1)
            if q.shape != (7,) or not np.all(np.isfinite(q)):
                return []  # no joints reported: no links (the ee frame still shows the hand)
            gripper = float(np.clip(float(obs.state.gripper), -1.0, 1.0))
            finger = S.FINGER_MAX_M * (1.0 - gripper) / 2.0 if math.isfinite(gripper) else S.FINGER_MAX_M
            poses = self._fk(q, finger)
        except (TypeError, ValueError) as exc:
            self._error(exc)
            return []
        return [(S.FRAME_BASE, link_frame(name), p.pos, quat_from_matrix(p.rot.tolist(), w_positive=True))
                for name, p in poses.items()]

    # -- /scene ----------------------------------------------------------------------------------
    def messages(self, tick: RecordTick, tick_ns: int) -> list[Message]:
        fresh = False
        if tick.sim_state is not None and self._model is not None and self._model.cubes:
            try:
                self._cubes = cube_poses(tick.sim_state.blob, self._model)
                fresh = True
            except StateBlobError as exc:
                self._error(exc)
        if not fresh and tick_ns < self._next_ns:
            return []
        self._next_ns = tick_ns + self._period_ns
        return [Message(S.TOPIC_SCENE, self.scene_update(tick_ns), tick_ns, tick_ns)]

    def scene_update(self, ns: int) -> bytes:
        """The whole scene as one foxglove.SceneUpdate (entities replace those of the same id)."""
        msg = SceneUpdate()
        for frame, prims in self._links.items():
            ent = self._entity(msg, ns, frame, f"arm/{frame}")
            for kind, pose, size, color in prims:
                self._primitive(ent, kind, pose, size, color)
        target = self._entity(msg, ns, S.FRAME_EE_TARGET, "target")
        self._primitive(target, "sphere", ((0, 0, 0), (0, 0, 0, 1)), (0.04, 0.04, 0.04), TARGET_COLOR)
        for axis, color in ((0, (1, 0, 0, 1)), (1, (0, 1, 0, 1)), (2, (0, 0, 1, 1))):
            end = [0.0, 0.0, 0.0]
            end[axis] = 0.08
            self._line(target, [(0.0, 0.0, 0.0), tuple(end)], color)
        for name, mount in self._mounts.items():
            if mount.fovy_deg is None:
                continue
            w, h = self._sizes.get(name, (4, 3))
            hh = FRUSTUM_DEPTH_M * math.tan(math.radians(mount.fovy_deg) / 2)
            hw = hh * w / h
            d = FRUSTUM_DEPTH_M
            corners = [(-hw, -hh, d), (hw, -hh, d), (hw, hh, d), (-hw, hh, d)]
            pts: list[tuple[float, float, float]] = []
            for i, c in enumerate(corners):
                pts += [(0.0, 0.0, 0.0), c, c, corners[(i + 1) % 4]]
            self._line(self._entity(msg, ns, camera_frame(name), f"camera/{name}"), pts, FRUSTUM_COLOR)
        if self._model is not None:
            table = self._entity(msg, ns, S.FRAME_BASE, "table")
            for box in self._model.boxes:
                self._primitive(table, "cube", (box.position, box.orientation), tuple(2 * v for v in box.half_size),
                                box.rgba)
            for name, cube in self._model.cubes.items():
                if name in self._cubes:
                    pos, quat = self._cubes[name]
                    ent = self._entity(msg, ns, S.FRAME_BASE, f"cube/{name}")
                    self._primitive(ent, "cube", (tuple(pos), tuple(quat)), tuple(2 * v for v in cube.half_size),
                                    cube.rgba)
        return msg.SerializeToString()

    # -- helpers ---------------------------------------------------------------------------------
    def _error(self, exc: Exception) -> None:
        self.errors += 1
        if self.errors <= 3:
            log.warning("3D scene: %s", exc)

    def _link_geometry(self) -> dict[str, list[tuple[str, Any, Any, Any]]]:
        """Per link frame, primitives in that frame: a joint sphere, a cylinder to the next link."""
        zero = self._fk(np.zeros(7), S.FINGER_MAX_M)
        names = [n for n in K.LINK_NAMES if n in zero]
        arm = [n for n in names if n.startswith("link")]
        out: dict[str, list[tuple[str, Any, Any, Any]]] = {}
        r = LINK_RADIUS_M
        for i, name in enumerate(arm):
            prims: list[tuple[str, Any, Any, Any]] = [
                ("sphere", ((0, 0, 0), (0, 0, 0, 1)), (2 * r, 2 * r, 2 * r), JOINT_COLOR)]
            if i + 1 < len(arm):
                a, b = zero[name], zero[arm[i + 1]]
                v = a.rot.T @ (b.pos - a.pos)
                length = float(np.linalg.norm(v))
                if length > 1e-6:
                    prims.append(("cylinder", (tuple(v / 2), _quat_z_to(v)), (2 * r, 2 * r, length), ARM_COLOR))
            else:  # link7: flange and hand (the hand turned −π/4 about z, fingers along its y)
                hand_q = (0.0, 0.0, -math.sin(math.pi / 8), math.cos(math.pi / 8))
                prims.append(("cylinder", ((0, 0, K.FLANGE_OFFSET_M / 2), (0, 0, 0, 1)),
                              (2 * r * 0.8, 2 * r * 0.8, K.FLANGE_OFFSET_M), ARM_COLOR))
                prims.append(("cube", ((0, 0, K.FLANGE_OFFSET_M + 0.03), hand_q), (0.06, 0.2, 0.06), ARM_COLOR))
            out[link_frame(name)] = prims
        for name in names:
            if "finger" in name:
                out[link_frame(name)] = [("cube", ((0, 0, 0.025), (0, 0, 0, 1)), (0.02, 0.02, 0.05), JOINT_COLOR)]
        return out

    @staticmethod
    def _entity(msg: Any, ns: int, frame: str, ident: str) -> Any:
        ent = msg.entities.add()
        ent.timestamp.seconds, ent.timestamp.nanos = ns // E.NS_PER_S, ns % E.NS_PER_S
        ent.frame_id = frame
        ent.id = ident
        ent.frame_locked = True
        return ent

    @staticmethod
    def _primitive(ent: Any, kind: str, pose: Any, size: Any, color: Any) -> None:
        prim = {"cube": ent.cubes, "sphere": ent.spheres, "cylinder": ent.cylinders}[kind].add()
        (px, py, pz), (qx, qy, qz, qw) = pose
        prim.pose.position.x, prim.pose.position.y, prim.pose.position.z = float(px), float(py), float(pz)
        o = prim.pose.orientation
        o.x, o.y, o.z, o.w = float(qx), float(qy), float(qz), float(qw)
        prim.size.x, prim.size.y, prim.size.z = (float(v) for v in size)
        if kind == "cylinder":
            prim.bottom_scale = prim.top_scale = 1.0
        prim.color.r, prim.color.g, prim.color.b, prim.color.a = (float(v) for v in color)

    @staticmethod
    def _line(ent: Any, points: list[Any], color: Any) -> None:
        line = ent.lines.add()
        line.type = 2  # LINE_LIST: pairs of points
        line.thickness = 2.0
        line.scale_invariant = True
        line.pose.orientation.w = 1.0
        for x, y, z in points:
            p = line.points.add()
            p.x, p.y, p.z = float(x), float(y), float(z)
        line.color.r, line.color.g, line.color.b, line.color.a = (float(v) for v in color)
