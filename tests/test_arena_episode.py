"""The episode executor: determinism (repeat, split runs), latency in sim time, rendering that
cannot perturb physics, failures, cancel, and the MCAP trajectory read by `teleop-replay`."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from oculus_server.replay.cli import main as replay_main
from robot_formats.recording.reader import RecordingReader
from tests.arena_fakes import TestProvider
from vla_server.arena.config import EpisodeSpec, SpecError
from vla_server.arena.episode import (
    EpisodeCancelled,
    EpisodeError,
    EpisodeResult,
    run_episode,
)

PROVIDER = TestProvider()
SMALL = {"width": 96, "height": 72, "video": False, "trajectory": False}


def run(model: str = "reach", **kw: object) -> EpisodeResult:
    spec = EpisodeSpec(**({"model": model, "instruction": "pick up the red cube", **SMALL} | kw))  # type: ignore[arg-type]
    return run_episode(spec, PROVIDER.policy(model), PROVIDER.spec(model), episode_id=f"t-{model}")


def concat(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) if a[k].size else b[k] for k in a}


def assert_same_arrays(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> None:
    for k, value in x.items():
        assert value.shape == y[k].shape, k
        assert np.array_equal(value, y[k], equal_nan=True), f"{k} differs"


def test_same_episode_twice_is_bit_identical() -> None:
    a, b = run("reach-283"), run("reach-283")
    assert a.metrics["trajectory_sha256"] == b.metrics["trajectory_sha256"]
    assert a.final_blob == b.final_blob and a.start_blob == b.start_blob
    assert_same_arrays(a.trajectory.arrays(), b.trajectory.arrays())


@pytest.mark.parametrize("model", ["reach-283", "counter"])
def test_split_20_plus_30_equals_50(model: str) -> None:
    """Actions in flight (283 ms) and the policy's exported memory (counter) cross the split."""
    full = run(model, steps=50)
    first = run(model, steps=20)
    second = run(model, steps=30, start_blob=first.final_blob)
    if model == "reach-283":
        assert first.metrics["actions_in_flight_end"] >= 1  # the split really cuts an action in flight
    assert second.final_blob == full.final_blob
    assert_same_arrays(concat(first.trajectory.arrays(), second.trajectory.arrays()), full.trajectory.arrays())


def test_split_at_another_step_and_seeded_jitter() -> None:
    kw = {"latency_ms": 150.0, "latency_jitter_ms": 60.0, "scene": "shuffled", "seed": 11}
    full = run("reach", steps=12, **kw)
    first = run("reach", steps=7, **kw)
    second = run("reach", steps=5, start_blob=first.final_blob, **kw)
    assert second.final_blob == full.final_blob
    delays = full.trajectory.arrays()["delay_steps"]
    assert len(set(delays.tolist())) > 1  # jitter drew different latencies …
    assert np.all((delays >= 45) & (delays <= 105))  # … within 150 ± 60 ms (2 ms steps)


def test_rendering_does_not_change_the_trajectory(tmp_path: Path) -> None:
    plain = run("reach-283", steps=20)
    spec = EpisodeSpec(model="reach-283", instruction="pick up the red cube", steps=20, width=96, height=72,
                       camera="wrist", video=True, trajectory=True)
    rendered = run_episode(spec, PROVIDER.policy("reach-283"), PROVIDER.spec("reach-283"), tmp_path / "out")
    assert rendered.metrics["video_frames"] == 61  # 2 s at 30 fps, both ends
    assert rendered.final_blob == plain.final_blob
    assert rendered.metrics["trajectory_sha256"] == plain.metrics["trajectory_sha256"]


def test_latency_changes_the_trajectory_reproducibly_without_costing_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sleep(_s: float) -> None:
        raise AssertionError("the arena must never sleep")

    monkeypatch.setattr(time, "sleep", no_sleep)
    fast = [run("reach", latency_ms=0.0, steps=20) for _ in range(2)]
    slow = [run("reach", latency_ms=200.0, steps=20) for _ in range(2)]
    assert fast[0].metrics["trajectory_sha256"] == fast[1].metrics["trajectory_sha256"]
    assert slow[0].metrics["trajectory_sha256"] == slow[1].metrics["trajectory_sha256"]
    assert fast[0].metrics["trajectory_sha256"] != slow[0].metrics["trajectory_sha256"]
    # the same work either way: same sim time, same number of policy calls and physics samples
    for key in ("sim_time_s", "steps"):
        assert fast[0].metrics[key] == slow[0].metrics[key]
    assert len(fast[0].trajectory.obs_step) == len(slow[0].trajectory.obs_step) == 20


@pytest.mark.parametrize(
    ("latency", "steps", "stale"), [(0.0, 0, 0.0), (50.0, 25, 0.5), (200.0, 100, 1.0), (283.0, 142, 1.0)]
)
def test_latency_is_counted_in_sim_time(latency: float, steps: int, stale: float) -> None:
    r = run("reach", latency_ms=latency, steps=10)
    arr = r.trajectory.arrays()
    assert np.all(arr["applied_step"] - arr["applied_obs_step"] == steps)
    assert arr["applied_step"][0] == arr["obs_step"][0] + steps  # nothing takes effect before its latency
    assert r.metrics["stale_action_ratio"] == pytest.approx(stale)
    assert r.metrics["latency_applied_ms_mean"] == pytest.approx(steps * 2.0)
    # the held target changes only when an action takes effect: one target per application
    assert len(arr["target_pos"]) == len(arr["applied_step"]) == min(10, (500 - steps) // 50 + 1)


def test_observation_uses_model_default_latency() -> None:
    r = run("reach-slow", steps=5)  # the test model's own latency is 200 ms
    assert r.metrics["latency_ms"] == 200.0 and r.metrics["latency_applied_ms_mean"] == 200.0


def test_policy_failure_and_garbage_fail_the_episode() -> None:
    with pytest.raises(EpisodeError, match=r"'failing' failed at observation 2: RuntimeError: model exploded"):
        run("failing", steps=5)
    with pytest.raises(EpisodeError, match=r"'nan' answered a bad action at observation 0: expected finite"):
        run("nan", steps=5)


def test_cancel_stops_at_a_control_step() -> None:
    seen: list[int] = []
    spec = EpisodeSpec(model="reach", instruction="pick up the red cube", **SMALL)  # type: ignore[arg-type]
    with pytest.raises(EpisodeCancelled, match="cancelled at step 3 of 50"):
        run_episode(spec, PROVIDER.policy("reach"), PROVIDER.spec("reach"),
                    progress=lambda k, n: seen.append(k), cancelled=lambda: len(seen) >= 3)
    assert seen == [1, 2, 3]


def test_bad_specs_are_refused_with_the_rule() -> None:
    with pytest.raises(SpecError, match="control_hz: expected a rate whose period"):
        EpisodeSpec(model="m", instruction="x", control_hz=15.0)
    with pytest.raises(SpecError, match="width: expected an even number"):
        EpisodeSpec(model="m", instruction="x", width=321)
    with pytest.raises(SpecError, match="unknown fields"):
        EpisodeSpec.from_dict({"model": "m", "instruction": "x", "speed": 2})
    with pytest.raises(SpecError, match="camera: expected one of"):
        dataclasses.replace(EpisodeSpec(model="m", instruction="x"), camera="top")


def test_trajectory_mcap_has_the_teleop_topics_and_replay_tools_read_it(tmp_path: Path) -> None:
    spec = EpisodeSpec(model="reach", instruction="pick up the red cube", steps=12, width=96, height=72)
    r = run_episode(spec, PROVIDER.policy("reach"), PROVIDER.spec("reach"), tmp_path / "ep", episode_id="mcap")
    path = r.files["trajectory.mcap"]
    with RecordingReader(path) as rec:
        counts = rec.topic_counts()
        meta = rec.metadata()
    for topic in ("/robot/ee_pose", "/robot/joint_states", "/robot/command", "/action", "/camera/front/image",
                  "/robot/ee_target", "/events", "/tf"):
        assert counts.get(topic, 0) > 0, topic
    assert counts["/action"] == 12 and counts["/camera/front/image"] == 12
    assert counts["/robot/ee_pose"] == 37  # 1.2 s of sim time at 30 Hz, and the final state
    assert meta["recording_end"]["final_blob"] == r.final_blob
    assert replay_main(["info", str(path)]) == 0
    assert replay_main(["plot", str(path), "-o", str(tmp_path / "plot.png")]) == 0
    assert (tmp_path / "plot.png").stat().st_size > 10_000
    assert replay_main(["export", str(path), "--to", "hdf5", "-o", str(tmp_path / "ep.h5")]) == 0
    assert (tmp_path / "ep.h5").is_file()


def test_exported_frames_pair_each_observation_with_the_action_decided_there(tmp_path: Path) -> None:
    """`teleop-replay export --to lerobot --fps <control rate>` of an arena episode: frame k holds
    observation k's state and image and the action decided from it (what a policy learns)."""
    import json

    import pyarrow.parquet as pq

    spec = EpisodeSpec(model="reach", instruction="pick up the red cube", steps=8, width=96, height=72,
                       video=False, scene="shuffled", seed=3)
    r = run_episode(spec, PROVIDER.policy("reach"), PROVIDER.spec("reach"), tmp_path / "ep", episode_id="pair")
    out = tmp_path / "ds"
    assert replay_main(["export", str(r.files["trajectory.mcap"]), "--to", "lerobot", "--fps", "10",
                        "-o", str(out)]) == 0
    table = pq.read_table(out / "data/chunk-000/file-000.parquet")
    actions = np.array(table.column("action").to_pylist())
    states = np.array(table.column("observation.state").to_pylist())
    tr = r.trajectory
    np.testing.assert_allclose(actions[:8], np.array(tr.action), atol=1e-6)
    np.testing.assert_allclose(states[:8, :3], np.array(tr.obs_tcp_pos), atol=1e-6)
    assert json.loads((out / "meta/info.json").read_text())["fps"] == 10


def test_export_success_only_keeps_the_successful_episodes(tmp_path: Path) -> None:
    spec = EpisodeSpec(model="reach", instruction="pick up the red cube", steps=4, width=96, height=72, video=False)
    for i in range(2):
        run_episode(spec, PROVIDER.policy("reach"), PROVIDER.spec("reach"), tmp_path / "eps" / f"e{i}",
                    episode_id=f"s{i}")
    rc = replay_main(["export", str(tmp_path / "eps"), "--to", "lerobot", "--success-only", "-o", str(tmp_path / "d")])
    assert rc != 0 and not (tmp_path / "d" / "meta").exists()  # 4 steps lift nothing: no episode to export
