"""`teleop-replay export --to hdf5|mp4`: DROID-like HDF5 on the tick grid, one MP4 per camera.

HDF5 layout (N = recording ticks with a measured robot state; times in s, Unix epoch)::

    timestamps                                      (N,)   tick wall time
    observation/robot_state/cartesian_position      (N, 6) x y z (m), roll pitch yaw (rad, xyz)
    observation/robot_state/cartesian_quaternion    (N, 4) xyzw
    observation/robot_state/gripper_position        (N,)   0 open … 1 closed
    observation/robot_state/joint_positions         (N, 7) rad
    observation/timestamp/robot_state/measured      (N,)   measurement time (robot clock)
    observation/timestamp/robot_state/received      (N,)   receive time (daemon clock)
    observation/timestamp/cameras/<name>            (N,)   capture time of the frame shown
    observation/camera_frame_index/<name>           (N,)   index of that frame in <name>'s MP4
    observation/image/<name>                        (N, H, W, 3) uint8 RGB (with --images)
    observation/control/predictive, engaged         (N,)   bool
    action/cartesian_position                       (N, 6) commanded target, as above
    action/target_quaternion                        (N, 4) xyzw
    action/gripper_position                         (N,)   commanded, 0 … 1
    action/cartesian_velocity                       (N, 6) policy action, normalised [-1, 1]
    action/policy                                   (N, 7) the 7-D policy action incl. gripper

Root attributes: source file, fps, task, outcome, metadata (JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from oculus_server.errors import RecordingError
from oculus_server.replay.episode import CameraStream, Episode, metadata_json
from oculus_server.replay.ticks import TickTable, tick_table
from oculus_server.replay.video import decode_jpeg, write_jpegs

Progress = Callable[[int, int], None]


def export_hdf5(ep: Episode, out: Path, images: bool = False, progress: Progress | None = None) -> Path:
    """Writes `ep` as a DROID-like HDF5 file (see the module docstring).

    Raises:
        RecordingError: nothing to export, `out` exists, or images were asked for but not loaded.
    """
    out = Path(out)
    if out.exists():
        raise RecordingError(f"{out} already exists; refusing to overwrite it")
    tt = tick_table(ep)
    n = len(tt)
    with h5py.File(out, "w") as f:
        f.attrs["source"] = str(ep.path)
        f.attrs["fps"] = ep.record_hz()
        f.attrs["task"] = ep.task
        f.attrs["outcome"] = ep.outcome
        f.attrs["metadata"] = metadata_json(ep)
        f.attrs["layout"] = "DROID-like; see oculus_server.replay.export"
        f["timestamps"] = tt.t
        rs = f.create_group("observation/robot_state")
        rs["cartesian_position"] = np.hstack([tt.ee_pos, tt.ee_euler])
        rs["cartesian_quaternion"] = tt.ee_quat
        rs["gripper_position"] = tt.gripper
        rs["joint_positions"] = tt.joints
        ts = f.create_group("observation/timestamp")
        ts["robot_state/measured"] = tt.robot_meas_t
        ts["robot_state/received"] = tt.robot_recv_t
        for name, times in tt.frame_capture_t.items():
            ts[f"cameras/{name}"] = times
            f[f"observation/camera_frame_index/{name}"] = tt.frame_index[name]
        f["observation/control/predictive"] = tt.predictive
        f["observation/control/engaged"] = tt.engaged
        act = f.create_group("action")
        act["cartesian_position"] = np.hstack([tt.target_pos, tt.target_euler])
        act["target_quaternion"] = tt.target_quat
        act["gripper_position"] = tt.target_gripper
        act["cartesian_velocity"] = tt.action[:, :6]
        act["policy"] = tt.action
        if images:
            for name, cam in ep.cameras.items():
                _write_images(f, name, cam, tt, progress)
        if progress is not None:
            progress(n, n)
    return out


def _write_images(f: h5py.File, name: str, cam: CameraStream, tt: TickTable, progress: Progress | None) -> None:
    if name not in tt.frame_index:
        return
    if len(cam.jpeg) != cam.log_t.size:
        raise RecordingError(f"camera {name}: images were not loaded (load the episode with images=True)")
    idx = tt.frame_index[name]
    first = decode_jpeg(cam.jpeg[int(idx[0])])
    h, w = first.shape[:2]
    ds = f.create_dataset(f"observation/image/{name}", (len(tt), h, w, 3), dtype=np.uint8, chunks=(1, h, w, 3), compression="gzip", compression_opts=1)
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


def export_mp4(ep: Episode, out_dir: Path, progress: Progress | None = None) -> dict[str, Path]:
    """Writes one MP4 per camera, every recorded frame at its capture time (variable frame rate).

    Files: ``<out_dir>/<stem>.<camera>.mp4`` and ``<stem>.<camera>.frames.json`` (per frame:
    seq, capture and log time), where ``<stem>`` is the recording's name.

    Raises:
        RecordingError: no camera frames, images not loaded, or an output exists.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = ep.path.name[:-5] if ep.path.name.endswith(".mcap") else ep.path.stem
    if not ep.cameras:
        raise RecordingError(f"{ep.path} has no camera frames")
    written: dict[str, Path] = {}
    for name, cam in ep.cameras.items():
        if len(cam.jpeg) != cam.log_t.size:
            raise RecordingError(f"camera {name}: images were not loaded (load the episode with images=True)")
        if not cam.jpeg:
            continue
        path = out_dir / f"{stem}.{name}.mp4"
        if path.exists():
            raise RecordingError(f"{path} already exists; refusing to overwrite it")
        first = decode_jpeg(cam.jpeg[0])
        h, w = first.shape[:2]
        t = cam.capture_t - cam.capture_t[0]
        if np.any(np.diff(t) <= 0):  # capture clock unusable: fall back to the recording clock
            t = cam.log_t - cam.log_t[0]
        dt = np.diff(t)
        fps = 1.0 / float(np.median(dt[dt > 0])) if np.any(dt > 0) else 15.0
        codec, frames = write_jpegs(path, cam.jpeg, t, w, h, fps, progress, len(cam.jpeg))
        sidecar = {
            "camera": name,
            "codec": codec,
            "frames": frames,
            "width": w - w % 2,
            "height": h - h % 2,
            "nominal_fps": fps,
            "seq": cam.seq.tolist(),
            "capture_t": cam.capture_t.tolist(),
            "log_t": cam.log_t.tolist(),
        }
        (out_dir / f"{stem}.{name}.frames.json").write_text(json.dumps(sidecar))
        written[name] = path
    return written
