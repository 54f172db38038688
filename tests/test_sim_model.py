"""The simulated scene: offline load, real-arm joint convention, limits, gravity compensation."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest
from PIL import Image

from frankateach.constants import (
    HOME_JOINTS,
    JOINT_LIMITS_HIGH,
    JOINT_LIMITS_LOW,
    SIM_CAMERA_HEIGHT,
    SIM_CAMERA_WIDTH,
    SIM_CAMERAS,
)
from frankateach.errors import FrankaTeachError
from frankateach.sim.model import (
    ARM_BODY_NAMES,
    CUBE_HALF_SIZE,
    CUBES,
    FINGER_BODY_NAMES,
    SimIndex,
    SimModelError,
    build_model,
    build_spec,
    reset_to_home,
)

# --- An independent model of the real Panda: Craig DH parameters from Franka's documentation ---
DH = [  # (a, d, alpha) per joint, metres / rad
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -np.pi / 2),
    (0.0, 0.316, np.pi / 2),
    (0.0825, 0.0, np.pi / 2),
    (-0.0825, 0.384, -np.pi / 2),
    (0.0, 0.0, np.pi / 2),
    (0.088, 0.0, np.pi / 2),
]


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    t = np.eye(4)
    t[1:3, 1:3] = [[c, -s], [s, c]]
    return t


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    t = np.eye(4)
    t[:2, :2] = [[c, -s], [s, c]]
    return t


def _trans(x: float, y: float, z: float) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = [x, y, z]
    return t


def real_panda_tcp(q: np.ndarray) -> np.ndarray:
    """(4, 4) base_T_tcp of the real arm: DH chain, flange +0.107, hand −π/4, TCP +0.1034."""
    t = np.eye(4)
    for (a, d, alpha), qi in zip(DH, q):
        t = t @ _rot_x(alpha) @ _trans(a, 0, 0) @ _rot_z(qi) @ _trans(0, 0, d)
    return t @ _trans(0, 0, 0.107) @ _rot_z(-np.pi / 4) @ _trans(0, 0, 0.1034)


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return build_model()


@pytest.fixture(scope="module")
def index(model: mujoco.MjModel) -> SimIndex:
    return SimIndex.from_model(model)


def _tcp(model: mujoco.MjModel, index: SimIndex, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    data = mujoco.MjData(model)
    data.qpos[index.arm_qpos] = q
    mujoco.mj_kinematics(model, data)
    return data.site_xpos[index.tcp_site].copy(), data.site_xmat[index.tcp_site].reshape(3, 3).copy()


def test_builds_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model build tried to open a network socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    model = build_model(cameras=False)
    assert model.nu == 9 and model.ncam == 0
    assert model.opt.timestep == pytest.approx(0.002)


def test_qpos_is_the_real_joint_convention(model: mujoco.MjModel, index: SimIndex) -> None:
    rng = np.random.default_rng(7)
    for q in [HOME_JOINTS, np.zeros(7), *rng.uniform(JOINT_LIMITS_LOW, JOINT_LIMITS_HIGH, (20, 7))]:
        pos, rot = _tcp(model, index, q)
        expected = real_panda_tcp(q)
        np.testing.assert_allclose(pos, expected[:3, 3], atol=1e-6)
        np.testing.assert_allclose(rot, expected[:3, :3], atol=1e-6)


def test_the_unmodified_asset_would_fail_the_convention_check(index: SimIndex) -> None:
    # Guard on the test above: the raw asset's link6/link7 framing (joint 6 offset −π/2, joint 7
    # offset −π/4) gives a different hand pose for the same joint vector.
    spec = build_spec(cameras=False)
    spec.body("panda0_link6").alt.type = mujoco.mjtOrientation.mjORIENTATION_EULER
    spec.body("panda0_link6").alt.euler = [1.57, 0, 1.57]
    raw = spec.compile()
    pos, _ = _tcp(raw, SimIndex.from_model(raw), HOME_JOINTS)
    assert np.linalg.norm(pos - real_panda_tcp(HOME_JOINTS)[:3, 3]) > 0.05


def test_home_pose_points_the_hand_down_in_front(model: mujoco.MjModel, index: SimIndex) -> None:
    pos, rot = _tcp(model, index, HOME_JOINTS)
    assert 0.45 <= pos[0] <= 0.55 and abs(pos[1]) < 0.1 and 0.2 <= pos[2] <= 0.45
    approach = rot[:, 2]  # the hand's z axis points from the flange toward the fingers
    assert approach @ np.array([0.0, 0.0, -1.0]) > 0.99


def test_joint_limits_are_the_real_ones(model: mujoco.MjModel, index: SimIndex) -> None:
    jnt = [model.dof_jntid[d] for d in index.arm_dof]
    np.testing.assert_allclose(model.jnt_range[jnt, 0], JOINT_LIMITS_LOW)
    np.testing.assert_allclose(model.jnt_range[jnt, 1], JOINT_LIMITS_HIGH)
    assert all(model.jnt_limited[jnt])
    np.testing.assert_allclose(model.actuator_ctrlrange[index.arm_act, 0], JOINT_LIMITS_LOW)
    np.testing.assert_allclose(model.actuator_ctrlrange[index.arm_act, 1], JOINT_LIMITS_HIGH)


def _sag_after(model: mujoco.MjModel, seconds: float) -> float:
    idx = SimIndex.from_model(model)
    data = mujoco.MjData(model)
    reset_to_home(model, data)
    for _ in range(int(seconds / model.opt.timestep)):
        mujoco.mj_step(model, data)
    return float(np.max(np.abs(data.qpos[idx.arm_qpos] - HOME_JOINTS)))


def test_gravity_compensation_holds_home(model: mujoco.MjModel) -> None:
    for name in ARM_BODY_NAMES + FINGER_BODY_NAMES:
        assert model.body_gravcomp[model.body(name).id] == 1.0
    assert _sag_after(model, 1.0) < 2e-3


def test_without_gravity_compensation_the_arm_sags() -> None:
    # Guard: the servos alone let the arm sag, so the check above is meaningful.
    spec = build_spec(cameras=False)
    for name in ARM_BODY_NAMES + FINGER_BODY_NAMES:
        spec.body(name).gravcomp = 0.0
    raw = spec.compile()
    spec.add_key(name="home", qpos=np.r_[HOME_JOINTS, 0.04, 0.04, raw.qpos0[9:]],
                 ctrl=np.r_[HOME_JOINTS, 0.04, 0.04])
    assert _sag_after(spec.compile(), 1.0) > 2e-3


def test_scene_has_table_cubes_cameras_and_no_contacts_at_home(
    model: mujoco.MjModel, index: SimIndex
) -> None:
    assert set(index.cameras) == set(SIM_CAMERAS)
    assert set(index.cube_bodies) == set(CUBES)
    data = mujoco.MjData(model)
    reset_to_home(model, data)
    for _ in range(250):
        mujoco.mj_step(model, data)
    arm_bodies = {model.body(n).id for n in ARM_BODY_NAMES + FINGER_BODY_NAMES}
    for c in data.contact[: data.ncon]:
        bodies = {model.geom_bodyid[c.geom1], model.geom_bodyid[c.geom2]}
        assert not bodies & arm_bodies, "the arm touches something at home"
    for name, body in index.cube_bodies.items():
        z = data.xpos[body][2]
        assert z == pytest.approx(CUBE_HALF_SIZE, abs=1e-3), f"{name} is not resting on the table"
        assert 0.04 <= 2 * CUBE_HALF_SIZE <= 0.05
        assert model.body_mass[body] < 0.2


def test_index_rejects_a_model_without_the_arm() -> None:
    bare = mujoco.MjModel.from_xml_string("<mujoco><worldbody/></mujoco>")
    with pytest.raises(SimModelError, match="lacks the expected elements") as err:
        SimIndex.from_model(bare)
    assert isinstance(err.value, FrankaTeachError)
    data = mujoco.MjData(bare)
    with pytest.raises(SimModelError, match="home"):
        reset_to_home(bare, data)


# --- Front camera framing (the vision policy finds the cubes in this image) ----------------------


def _project(model: mujoco.MjModel, camera: str, point: np.ndarray) -> np.ndarray:
    """Pixel (u right, v down) of a base-frame point in a SIM_CAMERA_WIDTH × HEIGHT image."""
    data = mujoco.MjData(model)
    reset_to_home(model, data)
    cam = model.camera(camera).id
    rot, pos = data.cam_xmat[cam].reshape(3, 3), data.cam_xpos[cam]
    c = rot.T @ (np.asarray(point, float) - pos)  # camera frame: looks along −z, y up
    f = SIM_CAMERA_HEIGHT / 2 / np.tan(np.radians(model.cam_fovy[cam]) / 2)
    return np.array([SIM_CAMERA_WIDTH / 2 + f * c[0] / -c[2], SIM_CAMERA_HEIGHT / 2 - f * c[1] / -c[2]])


def test_front_camera_frames_the_pick_workspace(model: mujoco.MjModel) -> None:
    corners = np.array([_project(model, "front", np.array([x, y, 0.0]))
                        for x in (0.3, 0.7) for y in (-0.25, 0.25)])
    assert (corners >= 0).all() and (corners[:, 0] <= SIM_CAMERA_WIDTH).all()
    assert (corners[:, 1] <= SIM_CAMERA_HEIGHT).all(), corners
    width = corners[:, 0].max() - corners[:, 0].min()
    height = corners[:, 1].max() - corners[:, 1].min()
    assert width >= 0.75 * SIM_CAMERA_WIDTH and height >= 0.55 * SIM_CAMERA_HEIGHT, (width, height)
    for (x, y), _ in CUBES.values():  # every cube is ~20 px across, not a speck
        left = _project(model, "front", np.array([x, y - CUBE_HALF_SIZE, 2 * CUBE_HALF_SIZE]))
        right = _project(model, "front", np.array([x, y + CUBE_HALF_SIZE, 2 * CUBE_HALF_SIZE]))
        assert right[0] - left[0] >= 15.0
    # Image right is base +y (the blue cube, y > 0, is right of the green one).
    assert _project(model, "front", np.array([0.45, 0.15, 0]))[0] > SIM_CAMERA_WIDTH / 2


def test_front_camera_image_shows_each_cube_as_a_blob(tmp_path: Path) -> None:
    # Rendered by the README's own tool, in a fresh interpreter (MuJoCo picks its GL backend at
    # import, and this test process may already have imported it without one).
    tool = Path(__file__).resolve().parents[1] / "tools" / "render_front_camera.py"
    out = tmp_path / "front.png"
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    run = subprocess.run([sys.executable, str(tool), "--out", str(out)], env=env, capture_output=True,
                         text=True, timeout=120)
    if run.returncode != 0:
        pytest.skip(f"offscreen rendering unavailable: {run.stderr.strip().splitlines()[-1:]}")
    spec = importlib.util.spec_from_file_location("render_front_camera", tool)
    assert spec is not None and spec.loader is not None
    render_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render_tool)
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (SIM_CAMERA_HEIGHT, SIM_CAMERA_WIDTH, 3)
    blobs = render_tool.colour_blobs(image)
    assert set(blobs) == set(CUBES)
    for name, (_u, _v, w) in blobs.items():
        assert w >= 15, f"{name} is only {w} px wide"
    assert blobs["green_cube"][0] < blobs["red_cube"][0] < blobs["blue_cube"][0]
