"""The `lerobot` backend: clear errors without its environment, catalog entries, and (slow) a tiny
ACT trained here with real LeRobot code, served through /v1/stream and the openpi endpoint and
run in arena episodes, a battle against color-reach and the leaderboard (`vla-arena` as users
run it). The contract every backend passes is in test_policies_contract.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.lerobot_env import ENV_COMMAND, ROOT, tiny_checkpoint
from tests.policy_sim import front_image, observation
from vla_server.catalog import CatalogError, load_catalog
from vla_server.models import ModelSpec
from vla_server.policies.factory import build_policy
from vla_server.policies.lerobot_policy import (
    VOCABULARY_FILE,
    LeRobotEnvMissing,
    LeRobotPolicyError,
    normalize_task,
    read_vocabulary,
    write_vocabulary,
)
from vla_server.workers.errors import WorkerBadInput, WorkerStartError
from vla_server.workers.local import WorkerPolicy


def test_without_lerobot_the_error_names_the_env_command(tmp_path: Path) -> None:
    p = build_policy(ModelSpec(id="act", backend="lerobot", params={"path": str(tmp_path)}))
    with pytest.raises(LeRobotEnvMissing, match=ENV_COMMAND):  # this interpreter (.venv) has no LeRobot
        p.load()


def test_a_missing_worker_interpreter_names_the_env_command(tmp_path: Path) -> None:
    spec = ModelSpec(id="act", backend="lerobot", python=str(tmp_path / "nope" / "bin" / "python"),
                     params={"path": str(tmp_path)})
    p = build_policy(spec, emulate_latency=False)
    assert isinstance(p, WorkerPolicy)
    with pytest.raises(WorkerStartError, match="make_lerobot_env.sh"):
        p.load()


def test_catalog_resolves_the_checkpoint_and_interpreter_beside_the_file(tmp_path: Path) -> None:
    cat = tmp_path / "cat.yaml"
    cat.write_text(yaml.safe_dump({"models": [{"id": "act", "backend": "lerobot", "python": "env/bin/python",
                                               "params": {"path": "models/act"}}]}))
    spec = load_catalog(cat)["act"]
    assert spec.python == str(tmp_path / "env" / "bin" / "python")
    assert spec.params["path"] == str(tmp_path / "models" / "act")
    cat.write_text(yaml.safe_dump({"models": [{"id": "act", "backend": "lerobot", "params": {"path": "x",
                                                                                              "threads": 0}}]}))
    with pytest.raises(CatalogError, match="threads"):
        load_catalog(cat)
    cat.write_text(yaml.safe_dump({"models": [{"id": "act", "backend": "lerobot", "params": {}}]}))
    with pytest.raises(CatalogError, match="path"):
        load_catalog(cat)


def test_task_vocabulary_round_trip_and_clear_errors(tmp_path: Path) -> None:
    assert normalize_task("  Pick up the  RED cube. ") == "pick up the red cube"
    write_vocabulary(tmp_path, ["pick up the red cube", "pick up the blue cube"], [0.25, 0.75])
    tasks, mean = read_vocabulary(tmp_path, 2)
    assert tasks == ["pick up the red cube", "pick up the blue cube"] and mean.tolist() == [0.25, 0.75]
    with pytest.raises(LeRobotPolicyError, match="2 tasks .* of 3 values"):
        read_vocabulary(tmp_path, 3)
    write_vocabulary(tmp_path, ["pick up the red cube", "Pick up the red cube."])
    with pytest.raises(LeRobotPolicyError, match="1 distinct"):
        read_vocabulary(tmp_path, 2)
    (tmp_path / VOCABULARY_FILE).write_text("{not json")
    with pytest.raises(LeRobotPolicyError, match="unreadable"):
        read_vocabulary(tmp_path, 2)
    (tmp_path / VOCABULARY_FILE).unlink()
    with pytest.raises(LeRobotPolicyError, match=f"{VOCABULARY_FILE} is missing.*--task-feature"):
        read_vocabulary(tmp_path, 2)


# ---- with the env: a checkpoint trained here ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first one makes the checkpoint (~1-3 min); workers load torch
def test_reads_features_from_the_checkpoint_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = tiny_checkpoint()
    cfg = json.loads((made.path / "config.json").read_text())
    assert cfg["type"] == "act" and cfg["pretrained_backbone_weights"] is None
    worker_tmp = tmp_path / "tmp"
    worker_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(worker_tmp))  # the worker's temporary folder
    p = build_policy(ModelSpec(id="act-tiny", backend="lerobot", python=made.python,
                               params={"path": str(made.path.parents[2])}))  # the training folder
    p.load()
    try:
        # torch keeps one cache folder there (torchinductor_<user>), reused; nothing per load
        left = [f.name for f in worker_tmp.iterdir() if not f.name.startswith("torchinductor_")]
        assert left == [], f"loading the checkpoint left {left} in the temporary folder"
        info = p.info()
        assert info.backend == "lerobot" and info.action_horizon == cfg["n_action_steps"] == 10
        image, _ = front_image()
        chunk = p.infer(observation(image, session="s"))
        assert chunk.shape == (10, 7) and np.all(np.abs(chunk) <= 1.0)
    finally:
        p.close()


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first one makes the checkpoint (~1-3 min); workers load torch
def test_the_instruction_selects_the_task_input(tmp_path: Path) -> None:
    """The tiny ACT was trained on red and green episodes with the instruction's one-hot: the
    checkpoint carries that vocabulary, the instruction picks the input (the chunk changes with the
    cube named, not with case or a final period), an instruction outside it is a clear error
    naming the tasks, and a checkpoint without the vocabulary file does not load."""
    made = tiny_checkpoint()
    vocab = json.loads((made.path / VOCABULARY_FILE).read_text())
    assert vocab["tasks"] == ["pick up the red cube", "pick up the green cube"]
    cfg = json.loads((made.path / "config.json").read_text())
    assert cfg["input_features"]["observation.environment_state"]["shape"] == [2]
    p = build_policy(ModelSpec(id="act-tiny", backend="lerobot", python=made.python,
                               params={"path": str(made.path)}), emulate_latency=False)
    p.load()
    try:
        image, _ = front_image()
        red = p.infer(observation(image, "pick up the red cube", session="a"))
        again = p.infer(observation(image, "Pick up the RED cube.", session="b"))
        green = p.infer(observation(image, "pick up the green cube", session="c"))
        np.testing.assert_array_equal(red, again)
        assert not np.array_equal(red, green)
        assert p.info().extra["tasks"] == ["pick up the red cube", "pick up the green cube"]  # through the worker
        with pytest.raises(WorkerBadInput,
                           match="UnknownInstruction: .*'pick up the blue cube' is not one this policy was trained on"):
            p.infer(observation(image, "pick up the blue cube", session="d"))
    finally:
        p.close()
    copy = tmp_path / "pretrained_model"
    shutil.copytree(made.path, copy)
    (copy / VOCABULARY_FILE).unlink()
    q = WorkerPolicy(ModelSpec(id="novocab", backend="lerobot", python=made.python, params={"path": str(copy)}))
    with pytest.raises(WorkerStartError, match=f"{VOCABULARY_FILE} is missing"):
        q.load()


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first one makes the checkpoint (~1-3 min); workers load torch
def test_a_bad_checkpoint_folder_is_a_clear_load_error(tmp_path: Path) -> None:
    made = tiny_checkpoint()
    p = WorkerPolicy(ModelSpec(id="bad", backend="lerobot", python=made.python, params={"path": str(tmp_path)}))
    with pytest.raises(WorkerStartError, match="no LeRobot checkpoint"):
        p.load()
    assert issubclass(LeRobotEnvMissing, LeRobotPolicyError)


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first one makes the checkpoint (~1-3 min); workers load torch
def test_served_through_v1_stream_and_the_openpi_endpoint(tmp_path: Path) -> None:
    from tests.openpi_service import service_with_openpi
    from vla_client import OpenPIClient, SyncVLAStreamingClient, Timeout

    made = tiny_checkpoint()
    models = [{"id": "act-tiny", "backend": "lerobot", "python": made.python, "params": {"path": str(made.path)}}]
    image, _ = front_image()
    state = {"pose": [0.45, 0.0, 0.3, 3.1, 0.0, 0.0], "velocity": [0.0] * 6, "gripper": -1.0}
    with service_with_openpi(tmp_path, models) as svc:
        with SyncVLAStreamingClient(f"ws://127.0.0.1:{svc.port}/v1/stream", svc.key) as c:
            c.connect("act-tiny", target_fps=5, enable_smoothing=False)
            got = []
            for _ in range(2):
                c.send_frame(image, "pick up the red cube", state)
                got.append(c.receive_action(timeout=120))  # the first frame loads the model
            assert [a.frame_id for a in got] == [0, 1]
            assert all(np.all(np.isfinite(a.action)) and np.all(np.abs(a.action) <= 1.0) for a in got)

        async def openpi() -> None:
            async with OpenPIClient(f"ws://127.0.0.1:{svc.openpi_port}", svc.key) as oc:
                await oc.connect("act-tiny", target_fps=5)
                assert oc.metadata["model"] == "act-tiny" and oc.metadata["action_dim"] == 7
                a = None
                for _ in range(600):
                    await oc.send_frame(image, "pick up the red cube", state)
                    with contextlib.suppress(Timeout):
                        a = await oc.receive_action(timeout=0.2, latest=True)
                        break
                assert a is not None and np.all(np.abs(a.action) <= 1.0)

        asyncio.run(openpi())


def _arena(*args: str, data: Path, catalog: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    cmd = [str(Path(sys.executable).parent / "vla-arena"), "--data", str(data), "--catalog", str(catalog),
           "--executor", "inline", *args]
    return subprocess.run(cmd, cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first one makes the checkpoint (~1-3 min); workers load torch
def test_arena_episode_battle_and_leaderboard_with_the_trained_policy(tmp_path: Path) -> None:
    made = tiny_checkpoint()
    data = tmp_path / "arena"
    r = _arena("run", "--model", made.model_id, "--scene", "shuffled", "--seed", "5", "--steps", "8",
               "--instruction", "pick up the red cube", "--no-video", "--json", data=data, catalog=made.catalog)
    assert r.returncode == 0, r.stderr[-3000:]
    ep = json.loads(r.stdout)
    assert ep["status"] == "done" and ep["model"] == made.model_id and ep["metrics"]["steps"] == 8
    assert ep["metrics"]["inference_ms_p50"] > 0 and ep["success"] in (True, False)
    r = _arena("battle", "--model-a", made.model_id, "--model-b", "color-reach", "--scene", "shuffled", "--seed", "7",
               "--steps", "8", "--instruction", "pick up the red cube", "--no-video", "--json", data=data,
               catalog=made.catalog)
    assert r.returncode == 0, r.stderr[-3000:]
    r = _arena("leaderboard", "--json", data=data, catalog=made.catalog)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(r.stdout)
    assert {row["model"] for row in (rows if isinstance(rows, list) else rows["rows"])} >= {made.model_id,
                                                                                          "color-reach"}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_trained_policy_assists_through_the_daemons_local_service(tmp_path: Path) -> None:
    """`--assist act-tiny --assist-catalog CATALOG` in --debug starts this local service."""
    from oculus_server.assist.local_service import LocalService
    from vla_client import SyncVLAStreamingClient

    made = tiny_checkpoint()
    svc = LocalService(made.model_id, log_path=tmp_path / "svc.log", catalog=str(made.catalog))
    svc.start(timeout_s=600)  # the model is pinned: loaded before the service says ready
    try:
        image, _ = front_image()
        with SyncVLAStreamingClient(svc.url, svc.key) as client:
            client.connect(made.model_id, target_fps=5)
            client.send_frame(image, "pick up the red cube", {"pose": [0.45, 0.0, 0.3, 3.1, 0.0, 0.0]})
            action = client.receive_action(timeout=120)
            assert action.action.shape == (7,) and np.all(np.abs(action.action) <= 1.0)
    finally:
        svc.stop()
