"""The README's `teleop-replay` commands, run as written: the console script of this checkout's
`.venv/bin`, a subprocess with no terminal, from a plain shell's environment, with the README's
own flags (each test checks its options against the README's usage line); the outcome is checked
on the real output: the official `mcap` reader, PIL, h5py, PyAV, pyarrow.

Recordings: one short `oculus-server --debug` run (MuJoCo Panda, scripted circle; needed where the
simulator replays it and where a real file is cut) and files of the synthetic writer (the
daemon's own `EpisodeWriter`, with cameras and their mounts, a chosen outcome or dropped ticks).
Everything is written under pytest's temporary folders; commands run with that as their cwd.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from collections import Counter
from pathlib import Path

import av
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from mcap.reader import make_reader
from mcap.records import Footer, Message
from mcap.stream_reader import StreamReader
from PIL import Image

from oculus_server.recording.synthetic import write_synthetic
from robot_formats.recording import schemas as S
from robot_formats.recording.camera_mounts import CameraMount
from tests.daemon_fakes import read_episode, record_debug_episode
from tests.debug_demo import ROOT, user_shell_env, venv_missing

pytestmark = pytest.mark.skipif(venv_missing() is not None, reason=venv_missing() or "")

TELEOP_REPLAY = ROOT / ".venv" / "bin" / "teleop-replay"
README = (ROOT / "README.md").read_text()
CAMS = {"front": (160, 120), "wrist": (96, 64)}
MOUNTS = {
    "front": CameraMount("robot_base", (1.0, 0.0, 0.7), (0.6724, 0.6724, -0.2190, -0.2190), 34.0),
    "wrist": CameraMount("ee", (0.07, 0.0, -0.0734), (-0.1625, -0.1625, 0.6882, 0.6882), 70.0),
}
FOOTER_BYTES = 1 + 8 + 8 + 8 + 4  # opcode, record length, summary_start, summary_offset_start, crc
MAGIC = b"\x89MCAP0\r\n"


# -- running the commands -----------------------------------------------------------------------------
def readme_usages() -> list[str]:
    """Every `teleop-replay …` command the README shows, with its comment and continuation lines."""
    block = README[README.index("`teleop-replay` (installed with the project):"):]
    block = block[: block.index("```", block.index("```bash") + 3)]
    usages: list[str] = []
    for line in block.splitlines():
        if line.startswith("teleop-replay "):
            usages.append(line)
        elif usages and line.startswith(" "):
            usages[-1] += " " + line.strip()
    flat = README.replace("\n", " ")
    return usages + [m.group(0) for m in re.finditer(r"teleop-replay export DIR --to lerobot [^`]*", flat)]


def check_as_written(args: list[str]) -> None:
    """`args` uses the README's subcommand and only options the README shows for it (with a value
    where the README gives one, e.g. ``--to lerobot``)."""
    usages = [u for u in readme_usages() if u.split()[1] == args[0]]
    assert usages, f"README.md shows no `teleop-replay {args[0]}` command"
    words = set()
    for u in usages:
        words.update(re.findall(r"-{1,2}[a-z][a-z-]*", u))
        words.update(v for v in re.split(r"[\s|\[\]]+", u) if v in ("hdf5", "mp4", "lerobot"))
    for a in args[1:]:
        if a.startswith("-"):
            assert a in words, f"`{a}` is not in README.md's usage of `teleop-replay {args[0]}`: {usages}"
    if "--to" in args:
        assert args[args.index("--to") + 1] in words


def teleop_replay(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Runs ``teleop-replay ARGS`` in `cwd` as a user's plain shell does, stdin /dev/null."""
    check_as_written(args)
    return subprocess.run([str(TELEOP_REPLAY), *args], cwd=cwd, env=user_shell_env(), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


# -- reading results with the official reader -----------------------------------------------------------
def read_whole(path: Path) -> list[tuple[str, int, int, bytes]]:
    """Every message of `path` as (topic, sequence, log_time, data), read two ways with the official
    `mcap` reader: front to back (every record, CRCs checked, up to the footer and closing magic)
    and through the summary's index. Both must give the same messages."""
    topics: dict[int, str] = {}
    streamed: list[tuple[str, int, int, bytes]] = []
    footer = False
    with open(path, "rb") as f:
        for rec in StreamReader(f, skip_magic=False, emit_chunks=False, validate_crcs=True).records:
            if isinstance(rec, Message):
                streamed.append((topics[rec.channel_id], rec.sequence, rec.log_time, rec.data))
            elif isinstance(rec, Footer):
                footer = True
            elif hasattr(rec, "topic") and hasattr(rec, "id"):
                topics[rec.id] = rec.topic
    assert footer, f"{path}: no footer"
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None, f"{path}: no summary"
        indexed = [(ch.topic, m.sequence, m.log_time, m.data)
                   for _, ch, m in reader.iter_messages(log_time_order=False)]
        assert summary.statistics.message_count == len(indexed)
    assert sorted(indexed) == sorted(streamed), f"{path}: the index and the file's records differ"
    return indexed


def metadata(path: Path) -> dict[str, dict[str, str]]:
    with open(path, "rb") as f:
        return {m.name: dict(m.metadata) for m in make_reader(f).iter_metadata()}


def summary_start(path: Path) -> int:
    """Where the summary section of a finished MCAP file begins (from its footer)."""
    raw = path.read_bytes()
    assert raw.endswith(MAGIC)
    footer = raw[-len(MAGIC) - FOOTER_BYTES : -len(MAGIC)]
    assert footer[0] == 0x02, "expected the footer record before the closing magic"
    (start,) = struct.unpack_from("<Q", footer, 9)
    assert 0 < start < len(raw)
    return int(start)


# -- recordings -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def debug_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `oculus-server --debug` recording (about 3.5 s, no cameras, outcome shutdown)."""
    return record_debug_episode(tmp_path_factory.mktemp("debug"))


@pytest.fixture(scope="module")
def camera_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s synthetic recording with a fixed `front` and a wrist camera (mounts recorded), success."""
    d = tmp_path_factory.mktemp("cameras")
    return write_synthetic(d / "cams.mcap", seconds=3.0, cameras=CAMS, camera_mounts=MOUNTS)


# -- info ---------------------------------------------------------------------------------------------------
def test_info_reports_duration_topics_rates_gaps_metadata_and_outcome(tmp_path: Path) -> None:
    """README: ``teleop-replay info FILE [--json]  # duration, topics, rates, gaps, metadata, outcome``."""
    rec = write_synthetic(tmp_path / "gappy.mcap", seconds=3.0, cameras=CAMS, drop_ticks={50, 51, 52},
                          metadata={"task": "stack the cubes"})
    counts = Counter(topic for topic, *_ in read_whole(rec))
    end = metadata(rec)["recording_end"]

    run = teleop_replay(["info", str(rec), "--json"], tmp_path)
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    assert info["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert info["outcome"] == end["outcome"] == "success"
    assert info["metadata"]["recording_start"]["task"] == "stack the cubes"
    topics = {t["topic"]: t for t in info["topics"]}
    assert {k: v for k, v in counts.items()} == {k: t["count"] for k, t in topics.items() if t["count"]}
    assert topics[S.TOPIC_EE_POSE]["rate_median_hz"] == pytest.approx(40.0, rel=0.01)  # the 40 Hz ticks
    assert topics[S.TOPIC_COMMAND]["rate_median_hz"] == pytest.approx(20.0, rel=0.01)  # the 20 Hz commands
    assert info["dropped_ticks"] == 3 and info["gaps_found"]
    assert topics[S.TOPIC_EE_POSE]["time_gap_count"] == 1

    run = teleop_replay(["info", str(rec)], tmp_path)
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert re.search(r"^duration\s+2\.9\d s\s+messages " + str(sum(counts.values())), text, re.M), text
    assert re.search(r"^outcome\s+success$", text, re.M), text
    assert "ticks     dropped 3" in text and "task: stack the cubes" in text
    pose_line = next(ln for ln in text.splitlines() if ln.startswith(S.TOPIC_EE_POSE + " "))
    assert f" {counts[S.TOPIC_EE_POSE]} " in pose_line and "/40.0/" in pose_line
    assert re.search(rf"{re.escape(S.TOPIC_EE_POSE)}: no message for 0\.\d+ s after t=1\.2\d+ s", text), text


# -- plot ---------------------------------------------------------------------------------------------------
def coloured(img: np.ndarray) -> np.ndarray:
    """Mask of clearly coloured pixels (plotted data; text, axes and background are grey)."""
    rgb = img[..., :3].astype(int)
    return (rgb.max(axis=-1) - rgb.min(axis=-1)) > 60


@pytest.mark.slow
def test_plot_writes_a_png_with_every_panel_drawn(debug_recording: Path, tmp_path: Path) -> None:
    """README: ``teleop-replay plot FILE -o plot.png  # rates, latency, EE vs target, gripper, VR inputs``."""
    run = teleop_replay(["plot", str(debug_recording), "-o", "plot.png"], tmp_path)
    assert run.returncode == 0, run.stderr
    png = tmp_path / "plot.png"
    assert run.stdout.strip() == "wrote plot.png"
    with Image.open(png) as im:
        assert im.format == "PNG"
        im.load()
        w, h = im.size
        img = np.asarray(im.convert("RGB"))
    assert 800 <= w <= 4000 and 800 <= h <= 4000, im.size
    # eight panels on a 4 × 2 grid below the title: each must show plotted data
    top = int(0.04 * h)
    rows = np.array_split(np.arange(top, h), 4)
    cols = np.array_split(np.arange(w), 2)
    empty = [(r, c) for r, rr in enumerate(rows) for c, cc in enumerate(cols)
             if coloured(img[rr[0] : rr[-1], cc[0] : cc[-1]]).sum() < 200]
    assert not empty, f"panels (row, column) with nothing plotted: {empty}"


# -- recover ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_recover_of_a_cut_partial_keeps_every_intact_message_and_says_data_was_lost(
    debug_recording: Path, tmp_path: Path
) -> None:
    """README: ``teleop-replay recover FILE  # … 3 data lost``; a crash leaves NAME.mcap.partial, recover
    never writes a file the official reader cannot read, and the result is read whole."""
    original = read_whole(debug_recording)
    raw = debug_recording.read_bytes()
    partial = tmp_path / (debug_recording.name + ".partial")
    partial.write_bytes(raw[: int(0.6 * summary_start(debug_recording))])  # a crash: the tail never written

    run = teleop_replay(["recover", partial.name], tmp_path)
    assert run.returncode == 3, run.stdout + run.stderr
    out = tmp_path / debug_recording.name  # the partial is repaired in place and takes its name
    assert not partial.exists() and out.exists()
    kept = read_whole(out)
    assert f"{partial.name} -> {out.name}: recovered" in run.stdout
    assert f"kept {len(kept)} messages" in run.stdout, run.stdout
    assert 0.2 * len(original) < len(kept) < len(original)
    assert set(kept) <= set(original)  # every recovered message is exactly one that was recorded
    meta = metadata(out)
    assert meta["recording_end"]["outcome"] == "crashed" and "recovery" in meta
    assert meta["recording_start"] == metadata(debug_recording)["recording_start"]


@pytest.mark.slow
def test_recover_to_out_of_a_file_without_summary_loses_nothing(debug_recording: Path, tmp_path: Path) -> None:
    """README: ``teleop-replay recover FILE [-o OUT]  # exit 0 nothing lost``."""
    cut = tmp_path / "no_summary.mcap"
    raw = debug_recording.read_bytes()
    cut.write_bytes(raw[: summary_start(debug_recording)])  # every record there, summary and footer gone
    run = teleop_replay(["recover", cut.name, "-o", "fixed.mcap"], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "-> fixed.mcap: repaired" in run.stdout, run.stdout
    assert sorted(read_whole(tmp_path / "fixed.mcap")) == sorted(read_whole(debug_recording))
    assert cut.read_bytes() == raw[: summary_start(debug_recording)]  # the input is left as it was


@pytest.mark.slow
def test_recover_of_a_file_with_nothing_recoverable_exits_1_and_writes_nothing(
    debug_recording: Path, tmp_path: Path
) -> None:
    """README: ``teleop-replay recover FILE [-o OUT]  # … 1 unrecoverable``."""
    junk = tmp_path / "junk.mcap.partial"
    junk.write_bytes(debug_recording.read_bytes()[1000:3000])  # no magic, no header
    run = teleop_replay(["recover", junk.name, "-o", "out.mcap"], tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "nothing could be recovered" in run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [junk.name]


# -- export -------------------------------------------------------------------------------------------------
def test_export_hdf5_writes_droids_trajectory_layout(camera_recording: Path, tmp_path: Path) -> None:
    """README: ``teleop-replay export FILE --to hdf5 -o OUT``: DROID's ``trajectory.h5`` layout —
    ``observation/controller_info``, ``camera_type``, ``camera_extrinsics`` (a wrist camera follows the
    hand), ``camera_intrinsics``, DROID's timestamps, joint velocities and every action field."""
    ticks = Counter(t for t, *_ in read_whole(camera_recording))[S.TOPIC_EE_POSE]
    run = teleop_replay(["export", str(camera_recording), "--to", "hdf5", "-o", "trajectory.h5"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "wrote trajectory.h5"
    with h5py.File(tmp_path / "trajectory.h5", "r") as f:
        lengths = {}
        f.visititems(lambda name, item: lengths.update({name: len(item)}) if isinstance(item, h5py.Dataset) else None)
        assert set(lengths.values()) == {ticks}, f"DROID reads one row per step from every dataset: {lengths}"
        obs = f["observation"]
        assert set(obs["controller_info"]) == {"movement_enabled", "controller_on", "success", "failure"}
        assert {k: int(obs["camera_type"][k][0]) for k in obs["camera_type"]} == {"front": 2, "wrist": 0}
        assert set(obs["camera_intrinsics"]) == {"front_left", "wrist_left"}
        k = obs["camera_intrinsics/front_left"][0]
        assert k.shape == (3, 3) and k[0, 2] == pytest.approx(80.0) and k[1, 2] == pytest.approx(60.0)
        front = obs["camera_extrinsics/front_left"][:]
        wrist = obs["camera_extrinsics/wrist_left"][:]
        hand = obs["robot_state/cartesian_position"][:]
        assert np.allclose(front, front[0]) and np.allclose(front[0, :3], MOUNTS["front"].position)
        assert np.ptp(wrist[:, 0]) > 0.01  # the wrist camera moves ...
        offset = np.linalg.norm(wrist[:, :3] - hand[:, :3], axis=1)  # ... held at its mount from the hand
        assert np.allclose(offset, np.linalg.norm(MOUNTS["wrist"].position), atol=1e-6)
        assert set(obs["timestamp/robot_state"]) >= {"robot_timestamp_seconds", "robot_timestamp_nanos",
                                                      "read_start", "read_end"}
        assert set(obs["timestamp/control"]) >= {"step_start", "control_start"}
        assert set(obs["timestamp/cameras"]) == {"front_estimated_capture", "front_frame_received",
                                                  "wrist_estimated_capture", "wrist_frame_received"}
        vel = obs["robot_state/joint_velocities"][:]
        assert vel.shape == (ticks, 7) and np.isfinite(vel).all() and np.abs(vel).max() > 0
        assert set(f["action"]) >= {"cartesian_position", "cartesian_velocity", "gripper_position",
                                    "gripper_velocity", "joint_position", "joint_velocity",
                                    "target_cartesian_position", "target_gripper_position", "robot_state"}
        assert f.attrs["outcome"] == "success" and bool(f.attrs["success"])


def test_export_mp4_writes_one_decodable_video_per_camera(camera_recording: Path, tmp_path: Path) -> None:
    """README: ``teleop-replay export FILE --to mp4 -o OUT``: one MP4 per camera, every recorded frame."""
    counts = Counter(t for t, *_ in read_whole(camera_recording))
    run = teleop_replay(["export", str(camera_recording), "--to", "mp4", "-o", "videos"], tmp_path)
    assert run.returncode == 0, run.stderr
    stem = camera_recording.name[: -len(".mcap")]
    expected = {f"{stem}.{name}.mp4" for name in CAMS}
    assert {Path(line.removeprefix("wrote ")).name for line in run.stdout.splitlines()} == expected
    for name, (w, h) in CAMS.items():
        with av.open(str(tmp_path / "videos" / f"{stem}.{name}.mp4")) as container:
            frames = [fr.to_ndarray(format="rgb24") for fr in container.decode(video=0)]
        assert len(frames) == counts[f"/camera/{name}/image"] > 10
        assert frames[0].shape == (h, w, 3)
        assert max(float(np.abs(a.astype(int) - b).mean()) for a, b in zip(frames, frames[1:])) > 1.0  # moving


@pytest.mark.slow
def test_export_dir_to_lerobot_success_only_at_10_fps(tmp_path: Path) -> None:
    """README: ``teleop-replay export DIR --to lerobot --fps 10 --success-only -o DATASET`` makes a
    LeRobot v3 dataset of the successful recordings only, one frame per 1/10 s."""
    recordings = tmp_path / "recordings"
    durations = {"success/a.mcap": 2.0, "success/b.mcap": 1.5, "failure/c.mcap": 2.0}
    for name, seconds in durations.items():
        (recordings / name).parent.mkdir(parents=True, exist_ok=True)
        write_synthetic(recordings / name, seconds=seconds, cameras={"front": CAMS["front"]},
                        outcome=name.split("/")[0], metadata={"task": f"task {name[-6]}"})
    run = teleop_replay(["export", "recordings", "--to", "lerobot", "--fps", "10", "--success-only", "-o",
                         "DATASET"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "2 of 3 recordings ended in success" in run.stderr
    ds = tmp_path / "DATASET"
    info = json.loads((ds / "meta" / "info.json").read_text())
    # frames on the exact 1/10 s grid from each episode's first tick to its last (ticks at 40 Hz)
    frames = [int(np.floor((round(s * 40) - 1) / 40 * 10 + 1e-3)) + 1 for s in (2.0, 1.5)]
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert info["total_episodes"] == 2 and info["total_frames"] == sum(frames)
    assert info["features"]["observation.images.front"]["dtype"] == "video"
    data = pq.read_table(ds / "data" / "chunk-000" / "file-000.parquet")
    assert data.num_rows == sum(frames)
    assert sorted(Counter(data.column("episode_index").to_pylist()).values()) == sorted(frames)
    ts = np.array(data.column("timestamp").to_pylist())
    assert np.allclose(np.diff(ts[: frames[0]]), 0.1)
    tasks = pq.read_table(ds / "meta" / "tasks.parquet").to_pylist()
    assert sorted(str(row.get("task", row.get("__index_level_0__"))) for row in tasks) == ["task a", "task b"]
    episodes = pq.read_table(ds / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    assert episodes.num_rows == 2
    video = ds / "videos" / "observation.images.front" / "chunk-000" / "file-000.mp4"
    with av.open(str(video)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == sum(frames)


@pytest.mark.slow
def test_export_dir_to_lerobot_png_frames_task_one_hot_at_80x60(tmp_path: Path) -> None:
    """README (Training a policy, step 2): ``teleop-replay export DIR --to lerobot --fps 10
    --success-only --image-storage png --task-feature --size 80x60 -o DATASET``: the frames as 80×60
    PNGs in the data parquet (no videos) and the one-hot of each recording's task."""
    assert ("teleop-replay export DIR --to lerobot --fps 10 --success-only --image-storage png --task-feature "
            "--size 80x60 -o DATASET") in " ".join(README.split())
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for name, task in (("a.mcap", "pick up the red cube"), ("b.mcap", "pick up the blue cube")):
        write_synthetic(recordings / name, seconds=1.0, cameras={"front": CAMS["front"]}, outcome="success",
                        metadata={"task": task})
    run = teleop_replay(["export", "recordings", "--to", "lerobot", "--fps", "10", "--success-only",
                         "--image-storage", "png", "--task-feature", "--size", "80x60", "-o", "DATASET"], tmp_path)
    assert run.returncode == 0, run.stderr
    ds = tmp_path / "DATASET"
    info = json.loads((ds / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.front"]["dtype"] == "image"
    assert info["features"]["observation.images.front"]["shape"] == [60, 80, 3]
    assert info["features"]["observation.environment_state"]["names"] == ["pick up the red cube",
                                                                          "pick up the blue cube"]
    assert not (ds / "videos").exists()
    data = pq.read_table(ds / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    one_hot = np.asarray(data["observation.environment_state"])
    assert one_hot.shape == (info["total_frames"], 2)
    np.testing.assert_array_equal(one_hot, np.eye(2)[data["task_index"]])
    png = data["observation.images.front"][0]["bytes"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    bad = teleop_replay(["export", "recordings", "--to", "lerobot", "--size", "80", "-o", "D2"], tmp_path)
    assert bad.returncode == 2 and "expected WIDTHxHEIGHT such as 80x60, got '80'" in bad.stderr, bad.stderr


# -- play ---------------------------------------------------------------------------------------------------
PLAY_SENT = re.compile(r"sent (\d+)/(\d+) commands in ([\d.]+) s \(([\d.]+) s recorded, speed ([\d.]+)×\), "
                       r"(\d+) errors, (\d+) timeouts")
PLAY_DEPARTURE = re.compile(r"RMS ([\d.]+) mm, max ([\d.]+) mm, final ([\d.]+) mm \((\d+) samples\)")
PLAY_PATH = re.compile(r"paths lie within ([\d.]+) mm of each other; at rest ([\d.]+) mm from the last target")


def motion_extent_mm(path: Path) -> float:
    """The largest distance between two measured hand positions of the recording, mm."""
    pos = np.array([[m.body.pose.position.x, m.body.pose.position.y, m.body.pose.position.z]
                    for m in read_episode(path).topic(S.TOPIC_EE_POSE)])
    return float(np.linalg.norm(pos.max(axis=0) - pos.min(axis=0)) * 1e3)


@pytest.mark.slow
@pytest.mark.parametrize("speed", [None, "2"])
def test_play_start_sim_re_runs_every_command_and_the_arm_follows(
    debug_recording: Path, tmp_path: Path, speed: str | None
) -> None:
    """README: ``teleop-replay play FILE --start-sim [--speed 2]  # re-run the commands on the sim``: every
    recorded command is sent to the simulator, whose measured hand follows the recorded one."""
    commands = Counter(t for t, *_ in read_whole(debug_recording))[S.TOPIC_COMMAND]
    extent = motion_extent_mm(debug_recording)
    assert commands > 20 and extent > 50, (commands, extent)
    run = teleop_replay(["play", str(debug_recording), "--start-sim", *(["--speed", speed] if speed else [])], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^started the simulator on 127\.0\.0\.1:\d+$", run.stdout, re.M), run.stdout
    sent = PLAY_SENT.search(run.stdout)
    departure = PLAY_DEPARTURE.search(run.stdout)
    assert sent and departure, run.stdout
    n_sent, total, wall, recorded, shown_speed, errors, timeouts = (float(g) for g in sent.groups())
    assert n_sent == total == commands and errors == 0 and timeouts == 0, run.stdout
    assert shown_speed == float(speed or 1)
    assert wall >= recorded / shown_speed - 0.05  # paced on the recorded spacing, never faster
    rms, mx, final, samples = (float(g) for g in departure.groups())
    assert samples == commands
    path = PLAY_PATH.search(run.stdout)
    assert path, run.stdout
    path_mm, rest_mm = (float(g) for g in path.groups())
    print(f"speed {shown_speed:g}: timed departure max {mx:.1f} mm, final {final:.1f} mm; path within "
          f"{path_mm:.1f} mm, at rest {rest_mm:.1f} mm from the last target (motion extent {extent:.0f} mm)")
    # The arm traces the recorded path and ends where it ended, however late the clock finds it (a
    # loaded machine, twice the speed): an arm left where it started would be half the extent off.
    assert path_mm < 0.25 * extent and rest_mm < 0.15 * extent, (run.stdout, extent)
    assert "safety: 0 withheld" in run.stdout and " box " not in run.stdout


@pytest.mark.slow
def test_play_start_sim_goes_through_the_safety_section_of_config(debug_recording: Path, tmp_path: Path) -> None:
    """README: ``play … --start-sim  # through the live command gate (--config: its safety:)``: a
    workspace box that cuts the recorded motion clamps the replayed targets."""
    ys = [m.body.pose.position.y for m in read_episode(debug_recording).topic(S.TOPIC_EE_TARGET)]
    y_max = float(np.percentile(ys, 50))
    (tmp_path / "daemon.yaml").write_text(f"safety:\n  workspace_max: [0.75, {y_max:.4f}, 0.7]\n")
    run = teleop_replay(["play", str(debug_recording), "--start-sim", "--config", "daemon.yaml"], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    box = re.search(r"\bbox (\d+)\b", run.stdout)
    assert box and int(box.group(1)) >= 0.3 * len(ys), run.stdout
    departure = PLAY_DEPARTURE.search(run.stdout)
    assert departure, run.stdout
    assert float(departure.group(2)) > 0.5 * (max(ys) - y_max) * 1e3  # held back from the recorded path


@pytest.mark.slow
def test_export_dir_success_only_applies_to_hdf5_and_mp4_too(tmp_path: Path) -> None:
    """README: ``teleop-replay export FILE_OR_DIR --to hdf5|mp4|lerobot [-o OUT] [--fps HZ] [--success-only]``:
    --success-only keeps the successful recordings whatever the format; --fps (the dataset's frame rate)
    is refused where it cannot apply instead of being ignored."""
    recordings = tmp_path / "recordings"
    for name in ("success/a.mcap", "failure/b.mcap", "success/c.mcap"):
        (recordings / name).parent.mkdir(parents=True, exist_ok=True)
        write_synthetic(recordings / name, seconds=1.0, cameras={"front": CAMS["front"]}, outcome=name.split("/")[0])
    run = teleop_replay(["export", "recordings", "--to", "hdf5", "--success-only", "-o", "h5"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "2 of 3 recordings ended in success" in run.stderr
    assert sorted(p.name for p in (tmp_path / "h5").iterdir()) == ["a.h5", "c.h5"]
    for name in ("a", "c"):
        with h5py.File(tmp_path / "h5" / f"{name}.h5", "r") as f:
            assert f.attrs["outcome"] == "success" and len(f["timestamps"]) == 40

    run = teleop_replay(["export", "recordings", "--to", "mp4", "--success-only", "-o", "mp4"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "mp4").glob("*.mp4")) == ["a.front.mp4", "c.front.mp4"]

    run = teleop_replay(["export", "recordings/failure", "--to", "hdf5", "--success-only", "-o", "none"], tmp_path)
    assert run.returncode == 1 and "none of the 1 recordings" in run.stderr and "ended in success" in run.stderr
    assert not (tmp_path / "none").exists()

    run = teleop_replay(["export", "recordings", "--to", "mp4", "--fps", "10", "-o", "fps"], tmp_path)
    assert run.returncode == 2 and "--fps sets the frame rate of a LeRobot dataset" in run.stderr, run.stderr
    assert not (tmp_path / "fps").exists()
