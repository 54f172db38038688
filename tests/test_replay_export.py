"""`teleop-replay export`: HDF5 reopened with h5py, MP4 read back with PyAV, LeRobot v3 layout with pyarrow."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import av
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from oculus_server.recording.synthetic import SyntheticEpisode, write_synthetic
from oculus_server.replay.cli import main
from oculus_server.replay.lerobot import export_lerobot
from robot_formats.recording.episode import load_episode
from robot_formats.recording.errors import RecordingError

T0 = 1_750_000_000.0
CAMS = {"front": (96, 64), "wrist": (64, 48)}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("recs")
    write_synthetic(d / "ep1.mcap", seconds=2.0, cameras=CAMS, t0_wall=T0)
    write_synthetic(d / "ep2.mcap", seconds=1.5, cameras=CAMS, t0_wall=T0 + 100, drop_ticks={30, 31},
                    metadata={"task": "open the drawer"})
    return d


def test_hdf5_layout_and_values(recordings: Path, tmp_path: Path) -> None:
    out = tmp_path / "ep1.h5"
    assert main(["export", str(recordings / "ep1.mcap"), "--to", "hdf5", "--images", "-o", str(out)]) == 0
    ep = SyntheticEpisode(cameras=CAMS, t0_wall=T0)
    n = 80
    with h5py.File(out, "r") as f:
        assert f["timestamps"].shape == (n,)
        assert f["observation/robot_state/cartesian_position"].shape == (n, 6)
        assert f["observation/robot_state/cartesian_quaternion"].shape == (n, 4)
        assert f["observation/robot_state/joint_positions"].shape == (n, 7)
        assert f["observation/robot_state/gripper_position"].shape == (n,)
        assert f["action/cartesian_position"].shape == (n, 6)
        assert f["action/cartesian_velocity"].shape == (n, 6)
        assert f["action/gripper_position"].shape == (n,)
        assert f["observation/timestamp/robot_state/measured"].shape == (n,)
        assert (
            f["observation/image/front_left"].shape == (n, 64, 96, 3)
            and f["observation/image/front_left"].dtype == np.uint8
        )
        assert f["observation/image/wrist_left"].shape == (n, 48, 64, 3)
        assert f.attrs["fps"] == 40.0 and f.attrs["task"] == "trace a circle"
        k = 37
        tick = ep.tick(k)
        assert f["timestamps"][k] == pytest.approx(tick.t_wall)
        assert f["observation/robot_state/cartesian_position"][k, :3] == pytest.approx(tick.robot.state.pos)
        assert f["observation/robot_state/gripper_position"][k] == pytest.approx((tick.robot.state.gripper + 1) / 2)
        assert f["action/cartesian_position"][k, :3] == pytest.approx(tick.command.target.pos)
        assert f["action/policy"][k] == pytest.approx(tick.command.action)
        idx = f["observation/camera_frame_index/front"][:]
        assert idx[0] == 0 and np.all(np.diff(idx) >= 0) and idx[-1] == 29  # 15 Hz over 2 s
    with pytest.raises(SystemExit):
        main(["export", str(recordings / "ep1.mcap"), "--to", "csv"])
    assert main(["export", str(recordings / "ep1.mcap"), "--to", "hdf5", "-o", str(out)]) == 1  # exists


def test_mp4_per_camera(recordings: Path, tmp_path: Path) -> None:
    assert main(["export", str(recordings / "ep2.mcap"), "--to", "mp4", "-o", str(tmp_path)]) == 0
    for name, (w, h) in CAMS.items():
        path = tmp_path / f"ep2.{name}.mp4"
        sidecar = json.loads((tmp_path / f"ep2.{name}.frames.json").read_text())
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            frames = list(c.decode(video=0))
        assert len(frames) == sidecar["frames"] == len(sidecar["seq"])
        assert (frames[0].width, frames[0].height) == (w, h)
        assert stream.codec_context.name in ("h264", "mpeg4")
        times = [f.time for f in frames]
        assert times[0] == pytest.approx(0.0) and all(b > a for a, b in zip(times, times[1:]))
        assert times[-1] == pytest.approx(sidecar["capture_t"][-1] - sidecar["capture_t"][0], abs=0.002)


def test_lerobot_dataset_from_a_folder(recordings: Path, tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    assert main(["export", str(recordings), "--to", "lerobot", "-o", str(out)]) == 0
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 40
    assert info["total_episodes"] == 2 and info["total_tasks"] == 2
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    feats = info["features"]
    assert feats["observation.state"]["shape"] == [8] and feats["action"]["shape"] == [7]
    assert feats["observation.images.front"]["dtype"] == "video" and feats["observation.images.front"]["shape"] == [
        64,
        96,
        3,
    ]
    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert {"observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"} <= set(
        data.column_names
    )
    rows = data.to_pydict()
    # 2.0 s and 1.5 s at 40 Hz on an exact grid (dropped ticks are held, not removed)
    assert data.num_rows == info["total_frames"] == 80 + 60
    assert rows["index"] == list(range(140))
    assert rows["episode_index"] == [0] * 80 + [1] * 60
    assert rows["frame_index"][80:] == list(range(60))
    assert np.diff(rows["timestamp"][:80]) == pytest.approx(1 / 40, abs=1e-6)
    assert len(rows["observation.state"][0]) == 8 and len(rows["action"][0]) == 7
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(e["dataset_from_index"], e["dataset_to_index"], e["length"]) for e in episodes] == [
        (0, 80, 80),
        (80, 140, 60),
    ]
    assert episodes[1]["tasks"] == ["open the drawer"]
    assert episodes[1]["videos/observation.images.front/from_timestamp"] == pytest.approx(2.0)
    tasks = pq.read_table(out / "meta/tasks.parquet").to_pylist()
    assert tasks == [{"task_index": 0, "task": "trace a circle"}, {"task_index": 1, "task": "open the drawer"}]
    assert rows["task_index"][0] == 0 and rows["task_index"][-1] == 1
    for name, (w, h) in CAMS.items():
        with av.open(str(out / f"videos/observation.images.{name}/chunk-000/file-000.mp4")) as c:
            frames = list(c.decode(video=0))
        assert len(frames) == 140 and (frames[0].width, frames[0].height) == (w, h)
    stats = json.loads((out / "meta/stats.json").read_text())
    assert stats["observation.state"]["count"] == [140] and len(stats["observation.images.front"]["mean"]) == 3


def test_lerobot_png_images_and_the_task_one_hot(recordings: Path, tmp_path: Path) -> None:
    """``--image-storage png --task-feature``: each frame's image as PNG bytes in the data parquet
    (LeRobot's ``image`` dtype, no videos) equal to the MP4 export's source frame, and
    ``observation.environment_state`` = the one-hot of the episode's task, the tasks as its names."""
    out = tmp_path / "dataset"
    assert main(["export", str(recordings), "--to", "lerobot", "--fps", "10", "--image-storage", "png",
                 "--task-feature", "-o", str(out)]) == 0
    info = json.loads((out / "meta/info.json").read_text())
    feats = info["features"]
    assert info["video_path"] is None and not (out / "videos").exists()
    assert feats["observation.images.front"] == {"dtype": "image", "shape": [64, 96, 3],
                                                 "names": ["height", "width", "channels"]}
    assert feats["observation.environment_state"] == {"dtype": "float32", "shape": [2],
                                                      "names": ["trace a circle", "open the drawer"]}
    data = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    n = info["total_frames"]
    assert n == 20 + 15 and len(data["observation.images.wrist"]) == n
    one_hot = np.asarray(data["observation.environment_state"])
    np.testing.assert_array_equal(one_hot, np.eye(2)[data["task_index"]])
    assert data["task_index"] == [0] * 20 + [1] * 15
    ep = load_episode(recordings / "ep2.mcap", images=True)
    first = np.asarray(Image.open(io.BytesIO(data["observation.images.front"][20]["bytes"])))
    from oculus_server.replay.video import decode_jpeg

    np.testing.assert_array_equal(first, decode_jpeg(ep.cameras["front"].jpeg[0]))  # lossless
    assert first.shape == (64, 96, 3)
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").column_names
    assert not [c for c in episodes if c.startswith("videos/")]
    stats = json.loads((out / "meta/stats.json").read_text())
    assert stats["observation.environment_state"]["mean"] == pytest.approx([20 / 35, 15 / 35])
    assert main(["export", str(recordings), "--to", "mp4", "--task-feature", "-o", str(tmp_path / "m")]) == 2
    with pytest.raises(ValueError, match="image_storage"):
        export_lerobot([ep], tmp_path / "x", image_storage="jpeg")


def test_lerobot_refuses_mismatched_cameras_and_non_empty_folder(recordings: Path, tmp_path: Path) -> None:
    other = write_synthetic(tmp_path / "other.mcap", seconds=0.5, cameras={"front": (96, 64)}, t0_wall=T0)
    eps = [load_episode(recordings / "ep1.mcap"), load_episode(other)]
    with pytest.raises(RecordingError, match="cameras"):
        export_lerobot(eps, tmp_path / "ds")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(RecordingError, match="not empty"):
        export_lerobot(eps[:1], full)
    shutil.rmtree(full)
