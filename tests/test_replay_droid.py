"""Our HDF5 export read the way DROID's own tools read it.

`droid_*` below re-implement, from reading DROID's source (github.com/droid-dataset/droid:
droid/trajectory_utils/trajectory_reader.py `get_hdf5_length` / `load_hdf5_to_dict` /
`TrajectoryReader.read_timestep`, droid/trajectory_utils/misc.py `load_trajectory`,
droid/data_processing/timestep_processing.py `TimestepProcesser.forward`,
droid/camera_utils/info.py `camera_type_to_string_dict`), the steps those functions take on a
file — the lookups that raised ``KeyError: 'controller_info'`` and then ``'camera_type'`` on the
old export. Nothing is downloaded at test time.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import chain
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from oculus_server.recording.synthetic import SyntheticEpisode, write_synthetic
from oculus_server.replay.cli import main
from oculus_server.replay.droid import camera_ids
from robot_formats.recording.camera_mounts import CameraMount

T0 = 1_750_000_000.0
CAMS = {"front": (96, 64), "wrist": (64, 48)}
MOUNTS = {
    "front": CameraMount("robot_base", (1.0, 0.0, 0.7), (0.6724, 0.6724, -0.2190, -0.2190), 34.0),
    "wrist": CameraMount("ee", (0.07, 0.0, -0.0734), (-0.1625, -0.1625, 0.6882, 0.6882), 70.0),
}
CAMERA_TYPE_TO_STRING = {0: "hand_camera", 1: "varied_camera", 2: "fixed_camera"}  # droid/camera_utils/info.py


# -- DROID's reader logic ---------------------------------------------------------------------------


def droid_length(group: h5py.Group) -> int:
    """get_hdf5_length: every dataset, at any depth, must have the same length."""
    length = None
    for key in group:
        item = group[key]
        n = droid_length(item) if isinstance(item, h5py.Group) else len(item)
        if length is None:
            length = n
        assert n == length, f"{item.name}: {n} rows, expected {length}"
    assert length is not None
    return length


def droid_step(group: h5py.Group, index: int, ignore: tuple[str, ...] = ("videos",)) -> dict:
    """load_hdf5_to_dict: row `index` of every dataset, as nested dicts."""
    out = {}
    for key in group:
        if key in ignore:
            continue
        item = group[key]
        out[key] = droid_step(item, index, ignore) if isinstance(item, h5py.Group) else item[index]
    return out


def droid_load_trajectory(path: Path) -> list[dict]:
    """load_trajectory(filepath, read_cameras=False): every step, filtered on controller_info."""
    with h5py.File(path, "r") as f:
        assert "observations/videos" not in f  # images live in observation/image, read as data
        steps = []
        for i in range(droid_length(f)):
            step = droid_step(f, i)
            step["observation"]["controller_info"].get("movement_enabled", True)  # KeyError before
            steps.append(step)
    return steps


def droid_process(step: dict, action_space: str = "cartesian_velocity", gripper_action_space: str = "velocity",
                  robot_state_keys=("cartesian_position", "gripper_position", "joint_positions", "joint_velocities"),
                  camera_extrinsics=("hand_camera", "varied_camera", "fixed_camera")) -> dict:
    """TimestepProcesser.forward without the image transforms."""
    obs = step["observation"]
    types = {k: CAMERA_TYPE_TO_STRING[v] for k, v in obs["camera_type"].items()}  # KeyError before
    cams = sorted(types)
    state = np.concatenate([np.array(obs["robot_state"][k]).flatten() for k in sorted(robot_state_keys)])
    calib = obs["camera_extrinsics"]
    extr = defaultdict(list)
    for serial in cams:
        if types[serial] in camera_extrinsics:
            for full in sorted(calib):
                if serial in full:
                    extr[types[serial]].append(calib[full])
    extr_state = list(chain(*[extr[t] for t in sorted(extr)]))
    intr_obs = obs["camera_intrinsics"]
    intr = defaultdict(list)
    for serial in cams:
        if types[serial] in camera_extrinsics:
            for full in sorted(intr_obs):
                if serial in full:
                    intr[types[serial]].append(intr_obs[full])
    intr_state = [np.array(intr[t]).flatten() for t in sorted(intr)]
    images = defaultdict(lambda: defaultdict(list))
    for obs_type in ("image", "depth", "pointcloud"):
        found = obs.get(obs_type, {})
        for serial in cams:
            for full in sorted(found):
                if serial in full:
                    images[obs_type][types[serial]].append(found[full])
    low = np.concatenate([state, np.concatenate(extr_state), np.concatenate(intr_state)], dtype=np.float32)
    gripper_key = "gripper_velocity" if "velocity" in gripper_action_space else "gripper_position"
    action = np.concatenate([step["action"][action_space], [step["action"][gripper_key]]], dtype=np.float32)
    return {"state": low, "camera": images, "action": action, "extrinsics": extr, "intrinsics": intr}


# -- the export -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("droid")
    write_synthetic(d / "ep.mcap", seconds=2.0, cameras=CAMS, t0_wall=T0, camera_mounts=MOUNTS)
    out = d / "trajectory.h5"
    assert main(["export", str(d / "ep.mcap"), "--to", "hdf5", "--images", "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def steps(exported: Path) -> list[dict]:
    return droid_load_trajectory(exported)


def test_droid_load_trajectory_reads_every_step(exported: Path, steps: list[dict]) -> None:
    assert len(steps) == 80
    info = steps[10]["observation"]["controller_info"]
    assert bool(info["movement_enabled"]) and bool(info["controller_on"])
    assert bool(steps[-1]["observation"]["controller_info"]["success"])  # write_synthetic closes as success
    with h5py.File(exported, "r") as f:
        assert bool(f.attrs["success"]) and not bool(f.attrs["failure"])


@pytest.mark.parametrize(
    ("action_space", "gripper"),
    [
        ("cartesian_velocity", "velocity"),
        ("cartesian_position", "position"),
        ("joint_velocity", "velocity"),
        ("joint_position", "position"),
    ],
)
def test_droid_timestep_processer_builds_state_and_action(steps: list[dict], action_space: str, gripper: str) -> None:
    out = droid_process(steps[37], action_space, gripper)
    # robot state 6 + 1 + 7 + 7; extrinsics: front, wrist, wrist's gripper offset; intrinsics 2 × 9
    assert out["state"].shape == (21 + 3 * 6 + 2 * 9,) and np.all(np.isfinite(out["state"]))
    assert out["action"].shape == ((8,) if action_space.startswith("joint") else (7,))
    assert np.all(np.isfinite(out["action"]))
    assert set(out["extrinsics"]) == {"hand_camera", "fixed_camera"}
    assert out["camera"]["image"]["fixed_camera"][0].shape == (64, 96, 3)
    assert out["camera"]["image"]["hand_camera"][0].shape == (48, 64, 3)
    if "velocity" in action_space:
        assert np.all(np.abs(out["action"]) <= 1.0)  # normalised, as DROID's velocities are


def test_values_match_the_recording(steps: list[dict]) -> None:
    ep = SyntheticEpisode(cameras=CAMS, t0_wall=T0)
    k = 37
    tick = ep.tick(k)
    step = steps[k]
    obs, act = step["observation"], step["action"]
    assert obs["robot_state"]["joint_positions"] == pytest.approx(tick.robot.state.joint_positions)
    assert obs["robot_state"]["cartesian_position"][:3] == pytest.approx(tick.robot.state.pos)
    assert act["cartesian_velocity"] == pytest.approx(tick.command.action[:6])
    assert act["gripper_velocity"] == pytest.approx(tick.command.action[6])
    assert act["joint_position"] == pytest.approx(ep.tick(k + 1).robot.state.joint_positions)
    # joint velocities: finite difference of the measured states (synthetic joints move smoothly)
    prev = ep.tick(k - 1).robot.state
    fd = (tick.robot.state.joint_positions - prev.joint_positions) / (tick.robot.state.timestamp - prev.timestamp)
    assert obs["robot_state"]["joint_velocities"] == pytest.approx(fd, rel=1e-6)
    # the wrist camera's extrinsics follow the hand: base_T_ee · ee_T_cam
    ee = Rotation.from_quat(tick.robot.state.quat)
    m = MOUNTS["wrist"]
    expect_pos = tick.robot.state.pos + ee.apply(m.position)
    assert obs["camera_extrinsics"]["wrist_left"][:3] == pytest.approx(expect_pos)
    got_rot = Rotation.from_euler("xyz", obs["camera_extrinsics"]["wrist_left"][3:])
    assert (got_rot.inv() * ee * Rotation.from_quat(m.orientation)).magnitude() < 1e-9
    assert obs["camera_extrinsics"]["front_left"][:3] == pytest.approx(MOUNTS["front"].position)
    k_front = obs["camera_intrinsics"]["front_left"]
    assert k_front[0, 2] == pytest.approx(48.0) and k_front[1, 2] == pytest.approx(32.0)
    assert int(obs["camera_type"]["wrist"]) == 0 and int(obs["camera_type"]["front"]) == 2
    ts = obs["timestamp"]
    assert int(ts["robot_state"]["robot_timestamp_seconds"]) == int(tick.robot.state.timestamp)
    assert int(ts["cameras"]["front_estimated_capture"]) > 0


def test_camera_ids_never_match_each_other_by_substring() -> None:
    assert camera_ids(["front", "wrist"]) == {"front": "front", "wrist": "wrist"}
    ids = camera_ids(["cam", "cam2", "wrist"])
    for a in ids.values():
        assert [b for b in ids.values() if a in f"{b}_left"] == [a]
