"""`teleop-replay export --to hdf5`: a DROID ``trajectory.h5`` that DROID's own tools read.

DROID's `load_trajectory` (droid/trajectory_utils) reads every dataset of the file at each step
(all must have one row per step) and looks at ``observation/controller_info``; its
`TimestepProcesser` (droid/data_processing) maps ``observation/camera_type`` to hand / varied /
fixed cameras, matches ``camera_extrinsics`` / ``camera_intrinsics`` / ``image`` entries to a
camera by its id appearing in their keys, concatenates the robot state keys, and builds the
action from ``action/<action_space>`` plus ``action/gripper_velocity`` or ``gripper_position``.
This module writes that layout, one row per recording tick with a measured robot state
(N rows; times in ms of the Unix epoch where DROID uses ms)::

    timestamps                                           (N,)     tick wall time, s
    observation/robot_state/cartesian_position           (N, 6)   x y z (m), Euler xyz (rad), base frame
    observation/robot_state/cartesian_quaternion         (N, 4)   the same orientation, xyzw
    observation/robot_state/gripper_position             (N,)     0 open … 1 closed
    observation/robot_state/joint_positions              (N, 7)   rad (NaN if the server did not report them)
    observation/robot_state/joint_velocities             (N, 7)   rad/s, finite difference of measured states
    observation/controller_info/{movement_enabled, controller_on, success, failure}   (N,) bool
    observation/camera_type/<id>                         (N,)     0 hand (wrist), 1 varied, 2 fixed
    observation/camera_extrinsics/<id>_left              (N, 6)   base_T_camera (optical frame), as above
    observation/camera_extrinsics/<id>_left_gripper_offset (N, 6) ee_T_camera of a wrist camera
    observation/camera_intrinsics/<id>_left              (N, 3, 3) K, pixels (the recorded calibration)
    observation/image/<id>_left                          (N, H, W, 3) uint8 RGB (with --images)
    observation/camera_frame_index/<id>                  (N,)     index of the frame shown in <id>'s MP4
    observation/timestamp/robot_state/{robot_timestamp_seconds, robot_timestamp_nanos}  measurement time
    observation/timestamp/robot_state/{read_start, read_end}  (N,) ms: request sent / reply received
    observation/timestamp/robot_state/{measured, received}    (N,) s (float)
    observation/timestamp/cameras/<id>_{estimated_capture, frame_received}  (N,) ms
    observation/timestamp/control/{step_start, control_start}  (N,) ms: tick / command made
    observation/timestamp/skip_action                    (N,)     bool: deadman not held
    observation/control/{predictive, engaged}            (N,)     bool
    action/cartesian_position                            (N, 6)   commanded target, as above
    action/target_quaternion                             (N, 4)   xyzw
    action/cartesian_velocity                            (N, 6)   policy action, normalised [-1, 1]
    action/gripper_position, action/gripper_velocity     (N,)     commanded 0 … 1; policy gripper action
    action/joint_position                                (N, 7)   measured joints at the next tick (last: held)
    action/joint_velocity                                (N, 7)   (next − current joints)/dt / 3 rad/s, in [-1, 1]
    action/target_cartesian_position, target_gripper_position  as cartesian_position / gripper_position
    action/robot_state/...                               the observation's robot state (DROID repeats it)
    action/policy                                        (N, 7)   the 7-D policy action incl. gripper

Camera ids are the recording's camera names (``front``, ``wrist``), prefixed ``cam<i>_`` only if
one name is contained in another (DROID matches ids by substring). A camera without a recorded
mount has no extrinsics. DROID's joint-space actions come from its IK; we have none, so
``action/joint_position`` is what the arm reached by the next tick and ``joint_velocity`` is that
motion normalised by DROID's joint speed limit (0.2 rad per step at 15 Hz).
Root attributes: source file, fps, task, outcome, success, failure, metadata (JSON).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from scipy.spatial.transform import Rotation

from oculus_server.replay.ticks import TickTable, tick_table
from oculus_server.replay.video import decode_jpeg
from robot_formats.recording.camera_mounts import CameraMount
from robot_formats.recording.encode import pinhole
from robot_formats.recording.episode import (
    CameraStream,
    Episode,
    camera_mounts,
    hold_index,
    metadata_json,
)
from robot_formats.recording.errors import RecordingError

Progress = Callable[[int, int], None]

HAND_CAMERA, VARIED_CAMERA, FIXED_CAMERA = 0, 1, 2  # DROID's camera_type values
DROID_MAX_JOINT_SPEED = 0.2 * 15.0  # rad/s: DROID's max joint delta per step at its 15 Hz
CONTROLLER_ON_WINDOW_S = 0.5  # a VR sample this recent: the controller is on


def camera_ids(names: list[str]) -> dict[str, str]:
    """Camera name → DROID id; names are kept unless one is a substring of another."""
    clash = any(a != b and a in b for a in names for b in names)
    return {n: (f"cam{i}_{n}" if clash else n) for i, n in enumerate(sorted(names))}


def camera_type(name: str, mount: CameraMount | None) -> int:
    """DROID's camera type: a camera on the hand is 0, a fixed one 2, unknown external ones 1."""
    if mount is not None:
        return HAND_CAMERA if mount.parent == "ee" else FIXED_CAMERA
    return HAND_CAMERA if any(w in name.lower() for w in ("wrist", "hand", "gripper")) else VARIED_CAMERA


def _pose6(pos: np.ndarray, rot: Rotation) -> np.ndarray:
    return np.hstack([pos, rot.as_euler("xyz")])


def _ms(t_s: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(t_s, dtype=float) * 1e3).astype(np.int64)


def _joint_velocities(ep: Episode, tt: TickTable) -> np.ndarray:
    """(N, 7) rad/s of the measured state used at each tick (forward difference for the first)."""
    vel = ep.joint_vel.copy() if ep.joint_vel.shape == ep.joints.shape else np.full(ep.joints.shape, np.nan)
    if len(vel) >= 2 and np.all(np.isnan(vel[0])):
        dt = ep.robot_meas_t[1] - ep.robot_meas_t[0]
        if dt > 0:
            vel[0] = (ep.joints[1] - ep.joints[0]) / dt
    assert tt.robot_index is not None
    return vel[tt.robot_index]


def _next_joint_action(tt: TickTable) -> tuple[np.ndarray, np.ndarray]:
    nxt = np.vstack([tt.joints[1:], tt.joints[-1:]])
    dt = np.diff(tt.t, append=tt.t[-1] + (tt.t[-1] - tt.t[-2] if len(tt.t) > 1 else 1.0))
    dt = np.where(dt > 0, dt, np.nan)
    vel = np.clip((nxt - tt.joints) / dt[:, None] / DROID_MAX_JOINT_SPEED, -1.0, 1.0)
    return nxt, vel


def _controller_info(ep: Episode, tt: TickTable) -> dict[str, np.ndarray]:
    n = len(tt)
    last_vr = hold_index(ep.vr_t, tt.t)
    on = (
        (last_vr >= 0) & (tt.t - ep.vr_t[np.clip(last_vr, 0, None)] <= CONTROLLER_ON_WINDOW_S)
        if ep.vr_t.size
        else np.zeros(n, bool)
    )
    succeeded = ep.metadata.get("recording_end", {}).get("success") == "true" or ep.outcome == "success"
    success = np.zeros(n, dtype=bool)
    failure = np.zeros(n, dtype=bool)
    if succeeded:
        marks = [t for t, kind, _, _ in ep.events if kind == "success"]
        success[tt.t >= (marks[0] if marks else tt.t[-1])] = True
    elif n:
        failure[-1] = True
    return {"movement_enabled": tt.engaged.astype(bool), "controller_on": on, "success": success, "failure": failure}


def _intrinsics(cam: CameraStream, mount: CameraMount | None) -> np.ndarray | None:
    if cam.intrinsics is not None:
        return cam.intrinsics
    if cam.width and cam.height and mount is not None and mount.fovy_deg:
        fx, fy, cx, cy = pinhole(cam.width, cam.height, mount.fovy_deg)
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return None


def _write_cameras(f: h5py.File, ep: Episode, tt: TickTable, images: bool, progress: Progress | None) -> None:
    n = len(tt)
    mounts = camera_mounts(ep)
    ids = camera_ids(sorted(tt.frame_index))
    base_rot = Rotation.from_quat(tt.ee_quat)
    for name in sorted(tt.frame_index):
        cid, cam, mount = ids[name], ep.cameras[name], mounts.get(name)
        full = f"{cid}_left"  # DROID's ZED ids are <serial>_left / _right; ours are mono
        f[f"observation/camera_type/{cid}"] = np.full(n, camera_type(name, mount), dtype=np.int64)
        if mount is not None:
            rot = Rotation.from_quat(mount.orientation)
            pos = np.asarray(mount.position)
            if mount.parent == "ee":
                f[f"observation/camera_extrinsics/{full}"] = _pose6(tt.ee_pos + base_rot.apply(pos), base_rot * rot)
                f[f"observation/camera_extrinsics/{full}_gripper_offset"] = np.tile(_pose6(pos, rot), (n, 1))
            else:
                f[f"observation/camera_extrinsics/{full}"] = np.tile(_pose6(pos, rot), (n, 1))
        k = _intrinsics(cam, mount)
        if k is not None:
            f[f"observation/camera_intrinsics/{full}"] = np.tile(k, (n, 1, 1))
        f[f"observation/camera_frame_index/{cid}"] = tt.frame_index[name]
        f[f"observation/timestamp/cameras/{cid}_estimated_capture"] = _ms(tt.frame_capture_t[name])
        assert tt.frame_log_t is not None
        f[f"observation/timestamp/cameras/{cid}_frame_received"] = _ms(tt.frame_log_t[name])
        if images:
            _write_images(f, f"observation/image/{full}", name, cam, tt, progress)


def export_hdf5(ep: Episode, out: Path, images: bool = False, progress: Progress | None = None) -> Path:
    """Writes `ep` as a DROID trajectory HDF5 file (see the module docstring).

    Raises:
        RecordingError: nothing to export, `out` exists, or images were asked for but not loaded.
    """
    out = Path(out)
    if out.exists():
        raise RecordingError(f"{out} already exists; refusing to overwrite it")
    tt = tick_table(ep)
    n = len(tt)
    assert tt.robot_index is not None
    info = _controller_info(ep, tt)
    joint_next, joint_vel_action = _next_joint_action(tt)
    robot_state = {
        "cartesian_position": np.hstack([tt.ee_pos, tt.ee_euler]),
        "cartesian_quaternion": tt.ee_quat,
        "gripper_position": tt.gripper,
        "joint_positions": tt.joints,
        "joint_velocities": _joint_velocities(ep, tt),
    }
    rtt_s = np.full(ep.robot_t.shape, np.nan)
    if ep.latency_t.size == ep.robot_t.size:
        rtt_s = ep.rtt_ms / 1e3
    rtt = rtt_s[tt.robot_index]
    meas_ns = np.round(tt.robot_meas_t * 1e9).astype(np.int64)
    cmd_made = ep.cmd_made_t[np.clip(hold_index(ep.cmd_t, tt.t), 0, None)] if ep.cmd_t.size else tt.t
    with h5py.File(out, "w") as f:
        f.attrs["source"] = str(ep.path)
        f.attrs["fps"] = ep.record_hz()
        f.attrs["task"] = ep.task
        f.attrs["outcome"] = ep.outcome
        f.attrs["success"] = bool(info["success"].any())
        f.attrs["failure"] = bool(info["failure"].any())
        f.attrs["metadata"] = metadata_json(ep)
        f.attrs["layout"] = "DROID trajectory.h5; see oculus_server.replay.droid"
        f["timestamps"] = tt.t
        for key, value in robot_state.items():
            f[f"observation/robot_state/{key}"] = value
            f[f"action/robot_state/{key}"] = value
        for key, value in info.items():
            f[f"observation/controller_info/{key}"] = value
        ts = "observation/timestamp"
        f[f"{ts}/robot_state/robot_timestamp_seconds"] = meas_ns // 1_000_000_000
        f[f"{ts}/robot_state/robot_timestamp_nanos"] = meas_ns % 1_000_000_000
        f[f"{ts}/robot_state/read_start"] = _ms(tt.robot_recv_t - np.where(np.isfinite(rtt), rtt, 0.0))
        f[f"{ts}/robot_state/read_end"] = _ms(tt.robot_recv_t)
        f[f"{ts}/robot_state/measured"] = tt.robot_meas_t
        f[f"{ts}/robot_state/received"] = tt.robot_recv_t
        f[f"{ts}/control/step_start"] = _ms(tt.t)
        f[f"{ts}/control/control_start"] = _ms(cmd_made)
        f[f"{ts}/skip_action"] = ~info["movement_enabled"]
        f["observation/control/predictive"] = tt.predictive
        f["observation/control/engaged"] = tt.engaged
        _write_cameras(f, ep, tt, images, progress)
        act = f.require_group("action")
        target = np.hstack([tt.target_pos, tt.target_euler])
        act["cartesian_position"] = target
        act["target_cartesian_position"] = target
        act["target_quaternion"] = tt.target_quat
        act["cartesian_velocity"] = tt.action[:, :6]
        act["gripper_position"] = tt.target_gripper
        act["target_gripper_position"] = tt.target_gripper
        act["gripper_velocity"] = tt.action[:, 6]
        act["joint_position"] = joint_next
        act["joint_velocity"] = joint_vel_action
        act["policy"] = tt.action
        if progress is not None:
            progress(n, n)
    return out


def _write_images(
    f: h5py.File, key: str, name: str, cam: CameraStream, tt: TickTable, progress: Progress | None
) -> None:
    if len(cam.jpeg) != cam.log_t.size:
        raise RecordingError(f"camera {name}: images were not loaded (load the episode with images=True)")
    idx = tt.frame_index[name]
    first = decode_jpeg(cam.jpeg[int(idx[0])])
    h, w = first.shape[:2]
    ds = f.create_dataset(
        key, (len(tt), h, w, 3), dtype=np.uint8, chunks=(1, h, w, 3), compression="gzip", compression_opts=1
    )
    cache: tuple[int, np.ndarray] = (int(idx[0]), first)
    for i, k in enumerate(idx):
        if int(k) != cache[0]:
            cache = (int(k), decode_jpeg(cam.jpeg[int(k)]))
        img = cache[1]
        if img.shape[:2] != (h, w):
            raise RecordingError(f"camera {name}: frame {k} is {img.shape[1]}×{img.shape[0]}, expected {w}×{h}")
        ds[i] = img
        if progress is not None and i % 50 == 0:
            progress(i, len(tt))
