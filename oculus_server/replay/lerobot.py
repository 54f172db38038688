"""`teleop-replay export --to lerobot`: recordings as one LeRobot v3.0 dataset.

Layout (all episodes in the first data/video file, which is what LeRobot v3 does until a file
reaches its size limit)::

    meta/info.json                                    codebase_version "v3.0", fps, features …
    meta/stats.json                                   min/max/mean/std/count per feature
    meta/tasks.parquet                                task (index) → task_index
    meta/episodes/chunk-000/file-000.parquet          one row per episode
    data/chunk-000/file-000.parquet                   one row per frame
    videos/observation.images.<camera>/chunk-000/file-000.mp4    (image_storage "video")

Frames are the recording ticks resampled onto an exact 1/fps grid (fps = the recording rate,
40 Hz by default; sample-and-hold, so a dropped tick repeats the previous one). Features:
``observation.state`` = [x, y, z, qx, qy, qz, qw, gripper 0…1] (measured, base frame),
``observation.joint_positions`` (7, rad), ``action`` = the 7-D policy action [lin xyz, rot xyz,
gripper] in [-1, 1], ``action.target`` = commanded [x, y, z, qx, qy, qz, qw, gripper 0…1],
one video per camera — or, with ``image_storage="png"``, each frame's image as PNG bytes in the
data parquet (LeRobot's ``image`` dtype: no video decoding when training, which on a small CPU is
most of a training step's time).

``task_feature=True`` adds ``observation.environment_state``: the one-hot of the episode's task
(its instruction; index = ``task_index``), with the tasks as the feature's ``names`` in
info.json. It is how a policy that reads no language (ACT, Diffusion) learns which object an
instruction names: LeRobot feeds ``observation.environment_state`` to those policies as its own
input, and the ``lerobot`` backend builds the same vector from a session's instruction (the
vocabulary, these names, travels with the checkpoint: tools/train_lerobot.py writes it there).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from oculus_server.replay.ticks import TickTable, tick_table
from oculus_server.replay.video import Mp4Writer, codec_label, decode_jpeg
from robot_formats.image import resize_rgb
from robot_formats.lerobot_keys import ENV_STATE_KEY
from robot_formats.recording.episode import Episode, hold_index
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.schemas import ACTION_FIELDS

Progress = Callable[[int, int], None]
CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
STATE_NAMES = ["x", "y", "z", "qx", "qy", "qz", "qw", "gripper"]
JOINT_NAMES = [f"joint_{i}" for i in range(1, 8)]
IMAGE_STORAGE = ("video", "png")
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


@dataclass
class _Frames:
    """One episode on the exact 1/fps grid."""

    episode: Episode
    table: TickTable
    rows: np.ndarray  # (n,) tick-table row used by each frame

    @property
    def length(self) -> int:
        return int(self.rows.size)


def _grid(ep: Episode, fps: float) -> _Frames:
    tt = tick_table(ep)
    slack = 1e-3  # of a frame period: tick times are float sums, not exact multiples
    n = int(np.floor((tt.t[-1] - tt.t[0]) * fps + slack)) + 1
    grid = tt.t[0] + np.arange(n) / fps
    return _Frames(ep, tt, np.clip(hold_index(tt.t, grid + slack / fps), 0, None))


def _feature(dtype: str, names: Sequence[str] | None, shape: Sequence[int]) -> dict[str, Any]:
    return {"dtype": dtype, "shape": list(shape), "names": list(names) if names is not None else None}


def _stats(values: np.ndarray) -> dict[str, Any]:
    v = values.astype(np.float64).reshape(values.shape[0], -1)
    return {
        "min": v.min(axis=0).tolist(),
        "max": v.max(axis=0).tolist(),
        "mean": v.mean(axis=0).tolist(),
        "std": v.std(axis=0).tolist(),
        "count": [int(v.shape[0])],
    }


def _image_stats(samples: list[np.ndarray]) -> dict[str, Any]:
    x = np.stack(samples).astype(np.float64) / 255.0  # (k, H, W, 3)
    per = x.reshape(-1, 3)

    def c(v: np.ndarray) -> list[list[list[float]]]:
        return [[[float(a)]] for a in v]

    return {
        "min": c(per.min(0)),
        "max": c(per.max(0)),
        "mean": c(per.mean(0)),
        "std": c(per.std(0)),
        "count": [len(samples)],
    }


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _tasks_table(tasks: list[str]) -> pa.Table:
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas_meta = {  # lets pandas read "task" back as the index, as LeRobot expects
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def export_lerobot(
    episodes: Sequence[Episode],
    out: Path,
    fps: float | None = None,
    robot_type: str = "franka_panda",
    progress: Progress | None = None,
    image_storage: str = "video",
    task_feature: bool = False,
    size: tuple[int, int] | None = None,
) -> Path:
    """Writes `episodes` as one LeRobot v3.0 dataset rooted at `out`.

    Args:
        episodes: loaded with images (for the videos); all must share cameras and image sizes.
        out: dataset root; must not exist or be empty.
        fps: frame rate (default: the first episode's recording rate, rounded to an integer).
        robot_type: info.json's robot_type.
        progress: progress(frames done, frames total).
        image_storage: "video" (one MP4 per camera) or "png" (PNG bytes per frame in the parquet).
        task_feature: add ``observation.environment_state`` = one-hot of the episode's task.
        size: (width, height) every camera's frames are resized to (`robot_formats.image.resize_rgb`,
            as the ``lerobot`` policy backend resizes observations); None keeps the recorded size.

    Raises:
        RecordingError: no episodes, inconsistent cameras, or `out` not empty.
        ValueError: `image_storage` is neither "video" nor "png".
    """
    if size is not None and (len(size) != 2 or min(size) < 2):
        raise ValueError(f"size: expected (width, height) of at least 2 px, got {size!r}")
    if image_storage not in IMAGE_STORAGE:
        raise ValueError(f"image_storage: expected one of {IMAGE_STORAGE}, got {image_storage!r}")
    out = Path(out)
    if not episodes:
        raise RecordingError("no recordings to export")
    if out.exists() and any(out.iterdir()):
        raise RecordingError(f"{out} is not empty; choose a new folder for the dataset")
    fps = float(round(fps if fps else episodes[0].record_hz()))
    frames = [_grid(ep, fps) for ep in episodes]
    cams = sorted(frames[0].table.frame_index)
    sizes: dict[str, tuple[int, int]] = {}
    for fr in frames:
        if sorted(fr.table.frame_index) != cams:
            raise RecordingError(
                f"{fr.episode.path} has cameras {sorted(fr.table.frame_index)}, the first recording has {cams}"
            )
        for name in cams:
            cam = fr.episode.cameras[name]
            if len(cam.jpeg) != cam.log_t.size:
                raise RecordingError(f"camera {name}: images were not loaded (load episodes with images=True)")
            h, w = decode_jpeg(cam.jpeg[0]).shape[:2] if size is None else (size[1], size[0])
            w, h = w - w % 2, h - h % 2
            if sizes.setdefault(name, (w, h)) != (w, h):
                raise RecordingError(f"camera {name} is {w}×{h} in {fr.episode.path}, {sizes[name]} elsewhere")
    tasks: list[str] = []
    for fr in frames:
        if fr.episode.task not in tasks:
            tasks.append(fr.episode.task)
    total = sum(fr.length for fr in frames)
    videos = image_storage == "video"
    for sub in (
        "meta/episodes/chunk-000",
        "data/chunk-000",
        *(f"videos/observation.images.{c}/chunk-000" for c in cams if videos),
    ):
        (out / sub).mkdir(parents=True, exist_ok=True)

    # --- tabular data ----------------------------------------------------------------------------
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("state", "joints", "action", "target", "ts", "fi", "ei", "ix", "ti")
    }
    offset = 0
    for e, fr in enumerate(frames):
        tt, r, n = fr.table, fr.rows, fr.length
        cols["state"].append(np.hstack([tt.ee_pos[r], tt.ee_quat[r], tt.gripper[r, None]]))
        cols["joints"].append(tt.joints[r])
        cols["action"].append(tt.action[r])
        cols["target"].append(np.hstack([tt.target_pos[r], tt.target_quat[r], tt.target_gripper[r, None]]))
        cols["ts"].append(np.arange(n) / fps)
        cols["fi"].append(np.arange(n))
        cols["ei"].append(np.full(n, e))
        cols["ix"].append(offset + np.arange(n))
        cols["ti"].append(np.full(n, tasks.index(fr.episode.task)))
        offset += n
    cat = {k: np.concatenate(v) for k, v in cols.items()}

    def vec(a: np.ndarray) -> pa.Array:
        a = a.astype(np.float32)
        return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1]).cast(pa.list_(pa.float32()))

    columns: dict[str, pa.Array] = {
        "observation.state": vec(cat["state"]),
        "observation.joint_positions": vec(cat["joints"]),
        "action": vec(cat["action"]),
        "action.target": vec(cat["target"]),
    }
    one_hot = np.eye(len(tasks), dtype=np.float32)[cat["ti"]] if task_feature else None
    if one_hot is not None:
        columns[ENV_STATE_KEY] = vec(one_hot)
    pq.write_table(_tasks_table(tasks), out / "meta/tasks.parquet")

    # --- images: videos, or PNG bytes in the data parquet ---------------------------------------
    done = 0
    codec = ""
    image_samples: dict[str, list[np.ndarray]] = {c: [] for c in cams}
    for name in cams:
        w, h = sizes[name]
        pngs: list[bytes] = []
        path = out / VIDEO_PATH.format(video_key=f"observation.images.{name}", chunk_index=0, file_index=0)
        with Mp4Writer(path, w, h, fps) if videos else contextlib.nullcontext() as vw:
            codec = vw.codec if vw is not None else ""
            for fr in frames:
                cam = fr.episode.cameras[name]
                idx = fr.table.frame_index[name][fr.rows]
                last_k, img, png = -1, np.zeros((h, w, 3), np.uint8), b""
                for i, k in enumerate(idx):
                    if k != last_k:
                        img = decode_jpeg(cam.jpeg[int(k)])
                        img = resize_rgb(img, w, h) if size is not None else np.ascontiguousarray(img[:h, :w])
                        last_k = int(k)
                        png = b"" if videos else _png(img)
                    if vw is not None:
                        vw.write(img)
                    else:
                        pngs.append(png)
                    if i % 20 == 0:
                        image_samples[name].append(img)
                    done += 1
                    if progress is not None and done % 50 == 0:
                        progress(done, total * max(1, len(cams)))
        if not videos:
            columns[f"observation.images.{name}"] = pa.StructArray.from_arrays(
                [pa.array(pngs, pa.binary()), pa.array([None] * len(pngs), pa.string())], names=["bytes", "path"])
    if progress is not None:
        progress(total * max(1, len(cams)), total * max(1, len(cams)))
    columns.update({
        "timestamp": pa.array(cat["ts"].astype(np.float32)),
        "frame_index": pa.array(cat["fi"].astype(np.int64)),
        "episode_index": pa.array(cat["ei"].astype(np.int64)),
        "index": pa.array(cat["ix"].astype(np.int64)),
        "task_index": pa.array(cat["ti"].astype(np.int64)),
    })
    pq.write_table(pa.table(columns), out / DATA_PATH.format(chunk_index=0, file_index=0))

    # --- episodes ------------------------------------------------------------------------------------
    ep_cols: dict[str, list[Any]] = {
        "episode_index": [], "tasks": [], "length": [], "data/chunk_index": [], "data/file_index": [],
        "dataset_from_index": [], "dataset_to_index": [],
    }
    for name in cams if videos else ():
        for k in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
            ep_cols[f"videos/observation.images.{name}/{k}"] = []
    ep_cols["meta/episodes/chunk_index"] = []
    ep_cols["meta/episodes/file_index"] = []
    start = 0
    for e, fr in enumerate(frames):
        ep_cols["episode_index"].append(e)
        ep_cols["tasks"].append([fr.episode.task])
        ep_cols["length"].append(fr.length)
        ep_cols["data/chunk_index"].append(0)
        ep_cols["data/file_index"].append(0)
        ep_cols["dataset_from_index"].append(start)
        ep_cols["dataset_to_index"].append(start + fr.length)
        for name in cams if videos else ():
            ep_cols[f"videos/observation.images.{name}/chunk_index"].append(0)
            ep_cols[f"videos/observation.images.{name}/file_index"].append(0)
            ep_cols[f"videos/observation.images.{name}/from_timestamp"].append(start / fps)
            ep_cols[f"videos/observation.images.{name}/to_timestamp"].append((start + fr.length) / fps)
        ep_cols["meta/episodes/chunk_index"].append(0)
        ep_cols["meta/episodes/file_index"].append(0)
        start += fr.length
    ep_table = pa.table(
        {k: (pa.array(v, pa.list_(pa.string())) if k == "tasks" else pa.array(v)) for k, v in ep_cols.items()}
    )
    pq.write_table(ep_table, out / "meta/episodes/chunk-000/file-000.parquet")

    # --- info and stats ---------------------------------------------------------------------------------
    features: dict[str, Any] = {
        "observation.state": _feature("float32", STATE_NAMES, [8]),
        "observation.joint_positions": _feature("float32", JOINT_NAMES, [7]),
        "action": _feature("float32", list(ACTION_FIELDS), [7]),
        "action.target": _feature("float32", STATE_NAMES, [8]),
    }
    if task_feature:
        features[ENV_STATE_KEY] = _feature("float32", tasks, [len(tasks)])
    for name in cams:
        w, h = sizes[name]
        if not videos:
            features[f"observation.images.{name}"] = _feature("image", ["height", "width", "channels"], [h, w, 3])
            continue
        features[f"observation.images.{name}"] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": h, "video.width": w, "video.codec": codec_label(codec), "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False, "video.fps": int(fps), "video.channels": 3, "has_audio": False,
            },
        }
    for key, dtype in (
        ("timestamp", "float32"),
        ("frame_index", "int64"),
        ("episode_index", "int64"),
        ("index", "int64"),
        ("task_index", "int64"),
    ):
        features[key] = _feature(dtype, None, [1])
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(frames),
        "total_frames": total,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": int(fps),
        "splits": {"train": f"0:{len(frames)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if cams and videos else None,
        "features": features,
    }
    (out / "meta/info.json").write_text(json.dumps(info, indent=4))
    stats: dict[str, Any] = {
        "observation.state": _stats(cat["state"]),
        "observation.joint_positions": _stats(cat["joints"]),
        "action": _stats(cat["action"]),
        "action.target": _stats(cat["target"]),
        **({ENV_STATE_KEY: _stats(one_hot)} if one_hot is not None else {}),
        "timestamp": _stats(cat["ts"][:, None]),
        "frame_index": _stats(cat["fi"][:, None]),
        "episode_index": _stats(cat["ei"][:, None]),
        "index": _stats(cat["ix"][:, None]),
        "task_index": _stats(cat["ti"][:, None]),
    }
    for name in cams:
        if image_samples[name]:
            stats[f"observation.images.{name}"] = _image_stats(image_samples[name])
    (out / "meta/stats.json").write_text(json.dumps(stats, indent=2))
    return out
