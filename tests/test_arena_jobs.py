"""Jobs: the store, the job manager on the in-thread and process-pool executors (same results bit for
bit as in-process), progress, logs, cancel, a worker killed mid-job, restart recovery, and workers
that never outlive their parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.arena_fakes import TestProvider
from vla_server.arena.config import EpisodeSpec
from vla_server.arena.episode import run_episode
from vla_server.arena.executors.inline import InlineExecutor
from vla_server.arena.executors.local import LocalPoolExecutor
from vla_server.arena.jobs import JobManager
from vla_server.arena.models import ModelNotFound, ProviderRef
from vla_server.arena.store import ArenaStore, StoreError
from vla_server.arena.work import CANCELLED, DONE, FAILED, QUEUED, RUNNING

ROOT = Path(__file__).resolve().parents[1]
TEST_PROVIDER = ProviderRef("tests.arena_fakes:TestProvider")


def spec(model: str = "reach", **kw: object) -> EpisodeSpec:
    base = {"model": model, "instruction": "pick up the red cube", "steps": 10, "width": 96, "height": 72}
    return EpisodeSpec(**(base | kw))  # type: ignore[arg-type]


def wait_until(cond, timeout_s: float = 60.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_inline_job_stores_files_progress_and_log(tmp_path: Path) -> None:
    store = ArenaStore(tmp_path)
    jobs = JobManager(store, InlineExecutor(), TEST_PROVIDER)
    try:
        eid = jobs.submit(spec(video=True, trajectory=True))
        ep = jobs.wait(eid, 120)
        assert ep["status"] == DONE and ep["step"] == ep["total"] == 10
        assert set(ep["files"]) >= {"video.mp4", "trajectory.mcap", "thumb.jpg", "start.blob", "final.blob"}
        assert store.file_path(eid, "video.mp4").read_bytes()[4:8] == b"ftyp"  # type: ignore[union-attr]
        assert ep["metrics"]["success"] is False and ep["metrics"]["task"] == "lift:red_cube"
        log = "\n".join(jobs.log_lines(eid))
        assert "queued on inline" in log and "started on" in log and "step 10/10" in log and "done" in log
        with pytest.raises(ModelNotFound, match="unknown model 'nope'"):
            jobs.submit(spec("nope"))
        assert store.count_episodes() == 1  # nothing stored for the refused request
        failed = jobs.wait(jobs.submit(spec("failing")), 60)
        assert failed["status"] == FAILED and "model exploded" in failed["error"]
        assert "Traceback" in "\n".join(jobs.log_lines(failed["id"]))
    finally:
        jobs.shutdown()
        store.close()


def test_pool_results_equal_in_process_results_bit_for_bit(tmp_path: Path) -> None:
    """Determinism in another process: the pool's spawned worker gives the same trajectory and blob."""
    s = spec("reach-283", steps=20)
    p = TestProvider()
    local = run_episode(dataclass_replace(s, video=False, trajectory=False), p.policy(s.model), p.spec(s.model))
    store = ArenaStore(tmp_path)
    pool = LocalPoolExecutor(workers=1)
    jobs = JobManager(store, pool, TEST_PROVIDER)
    try:
        eid = jobs.submit(s)
        ep = jobs.wait(eid, 180)
        assert ep["status"] == DONE, ep["error"]
        assert ep["metrics"]["trajectory_sha256"] == local.metrics["trajectory_sha256"]
        assert store.file_path(eid, "final.blob").read_text() == local.final_blob  # type: ignore[union-attr]
        assert ep["worker"].split(":")[-1] != str(os.getpid())
    finally:
        jobs.shutdown()
        store.close()


def dataclass_replace(s: EpisodeSpec, **kw: object) -> EpisodeSpec:
    import dataclasses

    return dataclasses.replace(s, **kw)  # type: ignore[arg-type]


@pytest.mark.slow
def test_pool_cancel_kill_and_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ArenaStore(tmp_path)
    system_tmp = tmp_path / "tmp"  # the pool's temporary files go here (and must not stay)
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    pool = LocalPoolExecutor(workers=1)
    jobs = JobManager(store, pool, TEST_PROVIDER)
    try:
        long = spec(steps=3000, width=64, height=48)
        a = jobs.submit(long)
        b = jobs.submit(spec())  # queued behind `a` (one worker)
        wait_until(lambda: jobs.status(a)["status"] == RUNNING and jobs.status(a)["step"] > 2, 120, "a running")
        assert jobs.status(b)["status"] == QUEUED
        assert jobs.cancel(b) and jobs.wait(b, 10)["status"] == CANCELLED
        assert jobs.cancel(a)
        ep = jobs.wait(a, 60)
        assert ep["status"] == CANCELLED and "cancelled at step" in ep["error"]
        assert not jobs.cancel(a)  # already finished

        c = jobs.submit(long)
        wait_until(lambda: jobs.status(c)["step"] > 2, 120, "c running")
        victim = pool.pids()[0]
        os.kill(victim, signal.SIGKILL)
        ep = jobs.wait(c, 60)
        assert ep["status"] == FAILED and "worker process died (exit code -9)" in ep["error"]
        wait_until(lambda: pool.pids() and pool.pids()[0] != victim, 30, "replacement worker")
        pool_dirs = list(system_tmp.iterdir())
        assert len(pool_dirs) == 1 and pool_dirs[0].name.startswith("arena-pool-")
        workers = list(pool_dirs[0].iterdir())  # the killed worker's episode folder is gone with it
        assert len(workers) == 1 and list(workers[0].iterdir()) == [], workers

        jobs.rerun(b)
        ep = jobs.wait(b, 120)
        assert ep["status"] == DONE and ep["attempts"] == 2
        assert "--- rerun (attempt 2) ---" in "\n".join(jobs.log_lines(b))
    finally:
        jobs.shutdown()
        store.close()
    assert list(system_tmp.iterdir()) == []


@pytest.mark.slow
def test_restart_marks_the_running_episode_failed_and_it_reruns(tmp_path: Path) -> None:
    """A `vla-arena run` killed with SIGKILL mid-episode; the next start recovers the data folder."""
    cmd = [sys.executable, "-m", "vla_server.arena.cli", "--data", str(tmp_path), "--provider",
           "tests.arena_fakes:TestProvider", "run", "--model", "reach", "--instruction", "pick up the red cube",
           "--steps", "3000", "--width", "64", "--height", "48", "--no-video"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl")))
    try:
        store = ArenaStore(tmp_path)

        def running() -> bool:
            eps = store.list_episodes()
            return bool(eps) and eps[0]["status"] == RUNNING and eps[0]["step"] > 0

        wait_until(running, 120, "the episode to run")
        eid = store.list_episodes()[0]["id"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    store.close()
    store = ArenaStore(tmp_path)
    jobs = JobManager(store, InlineExecutor(), TEST_PROVIDER)
    try:
        ep = jobs.status(eid)
        assert ep["status"] == FAILED and ep["error"] == "interrupted by a service restart"
        assert jobs.recovered_failed == [eid]
        assert "interrupted: the service stopped while this episode ran" in "\n".join(jobs.log_lines(eid))
        store._q("UPDATE episodes SET spec_json = ? WHERE id = ?",  # a shorter rerun keeps the test quick
                 (spec(steps=5).to_json(), eid))
        jobs.rerun(eid)
        assert jobs.wait(eid, 120)["status"] == DONE
    finally:
        jobs.shutdown()
        store.close()


def test_queued_episodes_are_queued_again_after_a_restart(tmp_path: Path) -> None:
    store = ArenaStore(tmp_path)
    eid = store.create_episode(spec())  # stored, never run: the service stopped before it started
    jobs = JobManager(store, InlineExecutor(), TEST_PROVIDER)
    try:
        assert jobs.wait(eid, 120)["status"] == DONE
    finally:
        jobs.shutdown()
        store.close()


def test_store_refuses_bad_ids_and_reruns_only_finished(tmp_path: Path) -> None:
    store = ArenaStore(tmp_path)
    try:
        with pytest.raises(StoreError, match="bad episode id"):
            store.episode_dir("../etc")
        with pytest.raises(StoreError, match="no episode"):
            store.episode("ffff")
        eid = store.create_episode(spec())
        with pytest.raises(StoreError, match="only a finished one can be rerun"):
            store.reset_for_rerun(eid)
        with pytest.raises(StoreError, match="unknown file"):
            store.file_path(eid, "../../arena.sqlite3")
    finally:
        store.close()


@pytest.mark.slow
def test_pool_workers_do_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import json, sys, time
        from vla_server.arena.executors.local import LocalPoolExecutor
        pool = LocalPoolExecutor(workers=2)
        time.sleep(1.0)
        print(json.dumps(pool.pids()), flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        pids = json.loads(line)
        assert len(pids) == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie waiting for init to reap it is gone too
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        except OSError:
            return True

    wait_until(lambda: all(gone(p) for p in pids), 10, "pool workers to exit")
