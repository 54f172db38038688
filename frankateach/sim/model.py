"""The simulated scene: a Franka Panda with the Franka hand on a table, three cubes, two cameras.

The arm comes from the `gymnasium-robotics` package's kitchen Franka assets (read offline from
the installed package). Those assets differ from the real arm in ways this module corrects with
`mujoco.MjSpec` edits, so that everything the protocol reports is in the REAL-arm convention:

* link6 is framed ``euler 1.57 0 1.57`` and link7 ``euler 1.57 0 0.7854``, which offsets joint 6
  by −π/2 and joint 7 by −π/4 from the real arm. Both bodies are re-framed to the real (Craig DH)
  ``Rx(π/2)``, so ``qpos`` of the arm *is* the real joint vector (the hand geometry already sits in
  the real link7 frame). `tests/test_sim_model.py` checks this against an independent DH model.
* joint ranges (joint 4's upper limit was −0.4, joint 6 was shifted) and servo ranges are set to
  the real limits (`JOINT_LIMITS_LOW` / `JOINT_LIMITS_HIGH`).
* gravity compensation (`gravcomp = 1`) on every moving arm body, so the arm holds its pose.

Frames: the robot base frame is the world frame (link0 at the origin); the table top is z = 0.
The TCP site ``tcp`` is the real Franka hand's TCP (flange + 0.1034 m along the approach axis,
rotated −π/4 about it), i.e. the pose the real arm reports as O_T_EE. Note that this asset's
fingers are 1.75× longer than the real ones, so the simulated finger pads extend ~4.5 cm beyond it.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from frankateach.constants import (
    HOME_JOINTS,
    JOINT_LIMITS_HIGH,
    JOINT_LIMITS_LOW,
    SIM_CAMERA_HEIGHT,
    SIM_CAMERA_WIDTH,
    SIM_CAMERAS,
    SIM_TIMESTEP,
)
from frankateach.errors import FrankaTeachError

log = logging.getLogger(__name__)

ASSET_SUBDIR = ("envs", "assets", "kitchen_franka", "franka_assets")
ASSET_FILES = ("assets.xml", "chain.xml", "actuator.xml")

ARM_JOINT_NAMES = tuple(f"robot:panda0_joint{i}" for i in range(1, 8))
ARM_ACTUATOR_NAMES = tuple(f"panda0_joint{i}" for i in range(1, 8))
ARM_BODY_NAMES = tuple(f"panda0_link{i}" for i in range(1, 8))
FINGER_BODY_NAMES = ("panda0_leftfinger", "panda0_rightfinger")
FINGER_JOINT_NAMES = ("robot:panda0_finger_joint1", "robot:panda0_finger_joint2")
FINGER_ACTUATOR_NAMES = ("r_gripper_finger_joint", "l_gripper_finger_joint")
FINGER_OPEN_M = 0.04  # each finger's travel, metres (0 closed … 0.04 open)
TCP_SITE = "tcp"
HAND_BODY = "panda0_link7"
FLANGE_OFFSET_M = 0.107  # link7 origin → flange along link7 z
TCP_OFFSET_M = 0.1034  # flange → TCP along the hand's approach axis (Franka hand default)

# Scene layout (metres, base frame). The robot stands on the table top (z = 0).
TABLE_TOP_Z = 0.0
TABLE_HEIGHT = 0.75
CUBE_HALF_SIZE = 0.0225  # 4.5 cm cubes
CUBE_MASS_KG = 0.05
CUBES: dict[str, tuple[tuple[float, float], tuple[float, float, float, float]]] = {
    # name: ((x, y) on the table, rgba)
    "red_cube": ((0.50, 0.00), (0.85, 0.15, 0.15, 1.0)),
    "green_cube": ((0.45, -0.15), (0.15, 0.70, 0.25, 1.0)),
    "blue_cube": ((0.45, 0.15), (0.15, 0.30, 0.85, 1.0)),
}
# Front camera: in front of the table looking back at the robot, framed so the pick workspace
# (x 0.3–0.7 m, y ±0.25 m on the table) fills most of a 320×240 image (the 4.5 cm cubes are ~20 px
# across) and the arm at home stays above the frame's top edge. Image right = base +y.
FRONT_CAMERA_EYE = np.array([1.0, 0.0, 0.7])  # front camera position, base frame, metres
FRONT_CAMERA_TARGET = np.array([0.49, 0.0, 0.0])  # point on the table it looks at, base frame
FRONT_CAMERA_FOVY = 34.0  # vertical field of view, degrees
WRIST_CAMERA_EYE_HAND = np.array([0.07, 0.0, 0.03])  # wrist camera in the hand frame
WRIST_CAMERA_TARGET_HAND = np.array([0.0, 0.0, 0.17])  # between the finger pads, hand frame
WRIST_CAMERA_FOVY = 70.0


class SimModelError(FrankaTeachError):
    """The simulator's model could not be found or built."""


def _rx_quat(angle: float) -> np.ndarray:
    """Quaternion (wxyz) of a rotation by `angle` rad about x."""
    return np.array([np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0])


def _rz_quat(angle: float) -> np.ndarray:
    """Quaternion (wxyz) of a rotation by `angle` rad about z."""
    return np.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)])


def _look_at_quat(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Quaternion (wxyz) of a MuJoCo camera at `eye` looking at `target` (camera looks along −z)."""
    forward = np.asarray(target, float) - np.asarray(eye, float)
    z = -forward / np.linalg.norm(forward)
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    mat = np.column_stack([x, y, z])
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat


def franka_asset_dir() -> Path:
    """Returns the folder of the kitchen Franka assets inside the installed gymnasium-robotics.

    Raises:
        SimModelError: the package or its assets are missing.
    """
    spec = importlib.util.find_spec("gymnasium_robotics")  # located, not imported (import is slow)
    if spec is None or not spec.submodule_search_locations:
        raise SimModelError(
            "the MuJoCo simulator needs the 'gymnasium-robotics' package (its Franka assets); "
            "install it with: pip install gymnasium-robotics==1.4.2"
        )
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*ASSET_SUBDIR)
    missing = [f for f in ASSET_FILES if not (folder / f).is_file()]
    if missing or not (folder / "meshes").is_dir():
        raise SimModelError(f"Franka assets incomplete in {folder}: missing {missing or ['meshes/']}")
    return folder


def _load_arm_spec(asset_dir: Path) -> mujoco.MjSpec:
    """Parses the arm, its defaults, meshes and servos from the asset files."""
    root = f"""<mujoco model="franka_panda_sim">
  <include file="assets.xml"/>
  <compiler angle="radian" meshdir="{(asset_dir / 'meshes').as_posix()}"/>
  <worldbody><include file="chain.xml"/></worldbody>
  <include file="actuator.xml"/>
</mujoco>"""
    include = {name: (asset_dir / name).read_bytes() for name in ASSET_FILES}
    try:
        return mujoco.MjSpec.from_string(root, include=include)
    except Exception as exc:
        raise SimModelError(f"could not parse the Franka assets in {asset_dir}: {exc}") from exc


def _fix_arm(spec: mujoco.MjSpec) -> None:
    """Re-frames link6/link7 to the real convention, sets real limits, adds gravity comp and TCP."""
    for name in ("panda0_link6", "panda0_link7"):
        body = spec.body(name)
        body.alt.type = mujoco.mjtOrientation.mjORIENTATION_QUAT
        body.quat = _rx_quat(np.pi / 2)
    for i, (jname, aname) in enumerate(zip(ARM_JOINT_NAMES, ARM_ACTUATOR_NAMES)):
        lo, hi = float(JOINT_LIMITS_LOW[i]), float(JOINT_LIMITS_HIGH[i])
        spec.joint(jname).range = [lo, hi]
        spec.actuator(aname).ctrlrange = [lo, hi]
    for name in ARM_BODY_NAMES + FINGER_BODY_NAMES:
        spec.body(name).gravcomp = 1.0
    legacy = spec.site("end_effector")  # the asset's own TCP marker: keep it out of the images
    if legacy is not None:
        legacy.group = 5
        legacy.rgba = [0.0, 0.0, 0.0, 0.0]
    # Real hand TCP: flange (link7 z + 0.107), rotated −π/4 about z, then 0.1034 along z.
    hand = spec.body(HAND_BODY)
    hand.add_site(
        name=TCP_SITE,
        pos=[0.0, 0.0, FLANGE_OFFSET_M + TCP_OFFSET_M],
        quat=_rz_quat(-np.pi / 4),
        size=[0.005, 0.005, 0.005],
        rgba=[1.0, 0.2, 0.2, 0.0],
        group=4,
    )


def _add_scene(spec: mujoco.MjSpec) -> None:
    """Adds floor, table, cubes and lights; rendering extras (shadows, reflections) stay off."""
    world = spec.worldbody
    spec.add_texture(
        name="floor_tex", type=mujoco.mjtTexture.mjTEXTURE_2D,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER, rgb1=[0.25, 0.27, 0.30], rgb2=[0.18, 0.20, 0.22],
        width=256, height=256,
    )
    spec.add_material(name="floor_mat", textures=["", "floor_tex"], texrepeat=[4, 4], reflectance=0.0)
    floor_z = TABLE_TOP_Z - TABLE_HEIGHT
    world.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.1], pos=[0, 0, floor_z],
        material="floor_mat",
    )
    table_half = np.array([0.55, 0.70, 0.02])
    table_centre = np.array([0.35, 0.0, TABLE_TOP_Z - table_half[2]])
    world.add_geom(
        name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=table_half, pos=table_centre,
        rgba=[0.55, 0.42, 0.30, 1.0], friction=[1.0, 0.005, 0.0001],
    )
    leg_h = (TABLE_HEIGHT - 2 * table_half[2]) / 2
    for sx in (-1, 1):
        for sy in (-1, 1):
            world.add_geom(
                type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.03, 0.03, leg_h],
                pos=[table_centre[0] + sx * (table_half[0] - 0.05), sy * (table_half[1] - 0.05),
                     floor_z + leg_h],
                rgba=[0.35, 0.27, 0.2, 1.0], contype=0, conaffinity=0,
            )
    for name, ((x, y), rgba) in CUBES.items():
        body = world.add_body(name=name, pos=[x, y, TABLE_TOP_Z + CUBE_HALF_SIZE])
        body.add_freejoint(name=f"{name}_joint")
        body.add_geom(
            name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF_SIZE] * 3,
            mass=CUBE_MASS_KG, rgba=rgba, friction=[1.2, 0.01, 0.001], condim=4,
            solref=[0.01, 1.0],
        )
    world.add_light(
        name="key", pos=[0.6, -0.6, 2.0], dir=[-0.2, 0.3, -1.0], diffuse=[0.6, 0.6, 0.6],
        specular=[0.1, 0.1, 0.1], castshadow=False, type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
    )
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.4, 0.4, 0.4]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]


def _add_cameras(spec: mujoco.MjSpec, width: int, height: int) -> None:
    """Adds the fixed front camera and the wrist camera (on the hand, looking along the fingers)."""
    spec.worldbody.add_camera(
        name=SIM_CAMERAS[0], pos=FRONT_CAMERA_EYE,
        quat=_look_at_quat(FRONT_CAMERA_EYE, FRONT_CAMERA_TARGET, np.array([0.0, 0.0, 1.0])),
        fovy=FRONT_CAMERA_FOVY,
    )
    # Hand frame = link7 · T(0, 0, 0.107) · Rz(−π/4); express the wrist camera in link7's frame.
    c, s = np.cos(-np.pi / 4), np.sin(-np.pi / 4)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])

    def to_link7(p: np.ndarray) -> np.ndarray:
        return rot @ p + np.array([0.0, 0.0, FLANGE_OFFSET_M])

    eye, target = to_link7(WRIST_CAMERA_EYE_HAND), to_link7(WRIST_CAMERA_TARGET_HAND)
    spec.body(HAND_BODY).add_camera(
        name=SIM_CAMERAS[1], pos=eye, quat=_look_at_quat(eye, target, rot @ np.array([1.0, 0, 0])),
        fovy=WRIST_CAMERA_FOVY,
    )
    spec.visual.global_.offwidth = max(int(width), 64)
    spec.visual.global_.offheight = max(int(height), 64)
    spec.visual.quality.offsamples = 0  # no MSAA
    spec.visual.quality.shadowsize = 0


def home_qpos(model: mujoco.MjModel) -> np.ndarray:
    """Returns the (nq,) home configuration: arm at HOME_JOINTS, fingers open, cubes at rest."""
    qpos = model.qpos0.copy()
    idx = SimIndex.from_model(model)
    qpos[idx.arm_qpos] = HOME_JOINTS
    qpos[idx.finger_qpos] = FINGER_OPEN_M
    return qpos


def build_spec(
    cameras: bool = True, width: int = SIM_CAMERA_WIDTH, height: int = SIM_CAMERA_HEIGHT
) -> mujoco.MjSpec:
    """Builds the scene's `MjSpec` (see `build_model`)."""
    spec = _load_arm_spec(franka_asset_dir())
    spec.modelname = "franka_panda_sim"
    spec.option.timestep = SIM_TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    _fix_arm(spec)
    _add_scene(spec)
    if cameras:
        _add_cameras(spec, width, height)
    return spec


def build_model(
    cameras: bool = True, width: int = SIM_CAMERA_WIDTH, height: int = SIM_CAMERA_HEIGHT
) -> mujoco.MjModel:
    """Builds the simulated scene, offline, from the installed Franka assets.

    Args:
        cameras: add the "front" and "wrist" cameras (and an offscreen buffer for them).
        width, height: largest image the offscreen buffer must hold, pixels.

    Returns:
        The compiled model, with a "home" keyframe (arm at HOME_JOINTS, fingers open).

    Raises:
        SimModelError: the assets are missing or do not compile.
    """
    spec = build_spec(cameras, width, height)
    try:
        model = spec.compile()
    except Exception as exc:
        raise SimModelError(f"the simulator model does not compile: {exc}") from exc
    idx = SimIndex.from_model(model)
    qpos = home_qpos(model)
    ctrl = np.zeros(model.nu)
    ctrl[idx.arm_act] = HOME_JOINTS
    ctrl[idx.finger_act] = FINGER_OPEN_M
    # Keyframes are compiled from the spec, so add it there and recompile once.
    spec.add_key(name="home", qpos=qpos, ctrl=ctrl)
    model = spec.compile()
    log.debug("built sim model: nq=%d nv=%d nu=%d ncam=%d", model.nq, model.nv, model.nu, model.ncam)
    return model


@dataclass(frozen=True)
class SimIndex:
    """Name lookups into a compiled sim model (addresses are numpy index arrays).

    Attributes:
        arm_qpos, arm_dof, arm_act: (7,) qpos addresses, dof addresses, actuator ids of the arm.
        finger_qpos, finger_act: (2,) qpos addresses and actuator ids of the fingers.
        tcp_site: id of the TCP site.
        cube_bodies: cube name -> body id.
        cube_qpos: cube name -> qpos address of its free joint (7 numbers: xyz, wxyz).
        cameras: camera name -> id (empty when built without cameras).
        home_key: id of the "home" keyframe, or -1.
    """

    arm_qpos: np.ndarray
    arm_dof: np.ndarray
    arm_act: np.ndarray
    finger_qpos: np.ndarray
    finger_act: np.ndarray
    tcp_site: int
    cube_bodies: dict[str, int]
    cube_qpos: dict[str, int]
    cameras: dict[str, int]
    home_key: int

    @classmethod
    def from_model(cls, model: mujoco.MjModel) -> SimIndex:
        def jid(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)

        def aid(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name)

        missing = [n for n in ARM_JOINT_NAMES + FINGER_JOINT_NAMES if jid(n) < 0]
        missing += [n for n in ARM_ACTUATOR_NAMES + FINGER_ACTUATOR_NAMES if aid(n) < 0]
        tcp = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, TCP_SITE)
        if tcp < 0:
            missing.append(TCP_SITE)
        if missing:
            raise SimModelError(f"model lacks the expected elements: {missing}")
        cubes = {n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in CUBES}
        cubes = {n: b for n, b in cubes.items() if b >= 0}
        cams = {n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, n) for n in SIM_CAMERAS}
        return cls(
            arm_qpos=np.array([model.jnt_qposadr[jid(n)] for n in ARM_JOINT_NAMES]),
            arm_dof=np.array([model.jnt_dofadr[jid(n)] for n in ARM_JOINT_NAMES]),
            arm_act=np.array([aid(n) for n in ARM_ACTUATOR_NAMES]),
            finger_qpos=np.array([model.jnt_qposadr[jid(n)] for n in FINGER_JOINT_NAMES]),
            finger_act=np.array([aid(n) for n in FINGER_ACTUATOR_NAMES]),
            tcp_site=tcp,
            cube_bodies=cubes,
            cube_qpos={n: int(model.jnt_qposadr[model.body_jntadr[b]]) for n, b in cubes.items()},
            cameras={n: c for n, c in cams.items() if c >= 0},
            home_key=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, "home"),
        )


def reset_to_home(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """Resets `data` to the home keyframe and recomputes positions."""
    key = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, "home")
    if key < 0:
        raise SimModelError("model has no 'home' keyframe (build it with build_model)")
    mujoco.mj_resetDataKeyframe(model, data, key)
    mujoco.mj_forward(model, data)

