"""The Ray executor on a local Ray instance (``ray.init`` on 127.0.0.1): same results bit for bit as
in-process, progress and log lines through the Ray queue, cancel."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.arena_fakes import TestProvider
from vla_server.arena.config import EpisodeSpec
from vla_server.arena.episode import run_episode
from vla_server.arena.jobs import JobManager
from vla_server.arena.models import ProviderRef
from vla_server.arena.store import ArenaStore
from vla_server.arena.work import CANCELLED, DONE, RUNNING

ray = pytest.importorskip("ray", reason="the Ray executor is an optional extra: pip install '.[ray]'")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobManager]:
    from vla_server.arena.executors.ray_exec import RayExecutor

    env = {"env_vars": {"PYTHONPATH": str(ROOT), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}}
    executor = RayExecutor(max_in_flight=2, runtime_env=env, num_cpus=2)
    store = ArenaStore(tmp_path_factory.mktemp("ray-arena"))
    jobs = JobManager(store, executor, ProviderRef("tests.arena_fakes:TestProvider"))
    yield jobs
    jobs.shutdown(10)
    store.close()
    assert not ray.is_initialized()  # the executor started the local instance and stopped it


def test_ray_results_equal_in_process_results(ray_jobs: JobManager) -> None:
    spec = EpisodeSpec(model="reach-283", instruction="pick up the red cube", steps=15, width=64, height=48)
    p = TestProvider()
    local = run_episode(spec, p.policy(spec.model), p.spec(spec.model))
    eid = ray_jobs.submit(spec)
    ep = ray_jobs.wait(eid, 300)
    assert ep["status"] == DONE, ep["error"]
    assert ep["metrics"]["trajectory_sha256"] == local.metrics["trajectory_sha256"]
    assert ray_jobs.store.file_path(eid, "final.blob").read_text() == local.final_blob  # type: ignore[union-attr]
    assert ray_jobs.store.file_path(eid, "video.mp4").read_bytes()[4:8] == b"ftyp"  # type: ignore[union-attr]
    log = "\n".join(ray_jobs.log_lines(eid))
    assert "step 10/15" in log and "started on" in log  # progress and log travelled through Ray
    assert ep["worker"].split(":")[-1] != str(os.getpid())


def test_ray_cancel(ray_jobs: JobManager) -> None:
    spec = EpisodeSpec(model="reach", instruction="pick up the red cube", steps=3000, width=64, height=48,
                       video=False, trajectory=False)
    eid = ray_jobs.submit(spec)
    deadline = time.monotonic() + 120
    while not (ray_jobs.status(eid)["status"] == RUNNING and ray_jobs.status(eid)["step"] > 0):
        assert time.monotonic() < deadline, "the Ray task did not start"
        time.sleep(0.1)
    assert ray_jobs.cancel(eid)
    assert ray_jobs.wait(eid, 60)["status"] == CANCELLED
