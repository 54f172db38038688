"""`RayExecutor`: episode jobs as tasks on a Ray cluster (``--executor ray --ray-address ADDR``).

Each job is one Ray task running `vla_server.arena.work.execute` on a plain-JSON payload and
returning a plain-JSON result with its files as bytes (nodes share no file system), so a
cluster gives the same results bit for bit as the local pool. Progress and log lines travel
through a `ray.util.queue.Queue` (a small actor) that a watcher thread drains; cancelling calls
``ray.cancel(force=True)``. Ray is an optional extra (``pip install franka-vr-teleop[ray]``).

Pointing it at a lab cluster: start Ray on the nodes (``ray start --head`` on one,
``ray start --address HEAD:6379`` on the others) with this package installed in the same
environment on every node, then run ``vla-arena --executor ray --ray-address HEAD:6379 …`` or
``vla-server serve --arena-executor ray --arena-ray-address HEAD:6379``. Without an address a
local Ray instance is started on this machine (loopback only).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from vla_server.arena.executors.base import Executor, OnDone, OnEvent
from vla_server.arena.work import CANCELLED, FAILED, JobEvent, JobPayload, JobResult

log = logging.getLogger(__name__)

POLL_S = 0.2
QUEUE_MAX = 10_000


def _ray_task(payload: dict[str, Any], events: Any) -> dict[str, Any]:
    """The task body (runs on a Ray worker)."""
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    from vla_server.arena.work import JobPayload as Payload
    from vla_server.arena.work import execute

    def emit(ev: JobEvent) -> None:
        try:
            events.put_nowait((ev.job_id, ev.kind, dict(ev.data)))
        except Exception as exc:  # noqa: BLE001 - a full or gone progress queue never fails the job
            logging.getLogger(__name__).debug("progress event dropped: %s", exc)

    return execute(Payload.from_dict(payload), emit).to_dict()


class RayExecutor(Executor):
    """Runs jobs as Ray tasks.

    Args:
        address: cluster address; None starts a local Ray instance on 127.0.0.1.
        max_in_flight: most tasks submitted at once (default: the cluster's CPUs); the rest wait here.
        runtime_env: Ray runtime environment for the tasks.
        num_cpus: CPUs of a local instance (None: all).
    """

    name = "ray"

    def __init__(self, address: str | None = None, max_in_flight: int | None = None,
                 runtime_env: dict[str, Any] | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError("the Ray executor needs Ray: pip install 'franka-vr-teleop[ray]'") from None
        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "runtime_env": runtime_env or None}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=num_cpus, _node_ip_address="127.0.0.1", **kwargs)
                self._owns = True
        from ray.util.queue import Queue

        self._events = Queue(maxsize=QUEUE_MAX)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.size = int(max_in_flight or max(1, cpus))
        self._lock = threading.Lock()
        self._waiting: list[tuple[JobPayload, OnEvent, OnDone]] = []
        self._running: dict[Any, tuple[JobPayload, OnEvent, OnDone]] = {}  # ObjectRef -> job
        self._by_id: dict[str, tuple[JobPayload, OnEvent, OnDone]] = {}
        self._cancelled: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="arena-ray", daemon=True)
        self._thread.start()

    @property
    def capacity(self) -> int:
        return self.size

    def submit(self, payload: JobPayload, on_event: OnEvent, on_done: OnDone) -> None:
        with self._lock:
            if self._stop.is_set():
                raise RuntimeError("executor is shut down")
            job = (payload, on_event, on_done)
            self._waiting.append(job)
            self._by_id[payload.job_id] = job

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            for job in self._waiting:
                if job[0].job_id == job_id:
                    self._waiting.remove(job)
                    self._by_id.pop(job_id, None)
                    break
            else:
                for ref, job in self._running.items():
                    if job[0].job_id == job_id:
                        self._cancelled.add(job_id)
                        self._ray.cancel(ref, force=True)
                        return True
                return False
        job[2](JobResult(job_id, CANCELLED, "cancelled before it started"))
        return True

    def _launch(self) -> None:
        with self._lock:
            while self._waiting and len(self._running) < self.size:
                job = self._waiting.pop(0)
                ref = self._remote.remote(job[0].to_dict(), self._events)
                self._running[ref] = job

    def _drain_events(self) -> None:
        try:
            batch = self._events.get_nowait_batch(self._events.qsize())
        except Exception:  # noqa: BLE001 - empty, or the actor is gone at shutdown
            return
        for job_id, kind, data in batch:
            job = self._by_id.get(job_id)
            if job is not None:
                job[1](JobEvent(job_id, kind, data))

    def _watch(self) -> None:
        ray = self._ray
        while not self._stop.is_set():
            try:
                self._launch()
                with self._lock:
                    refs = list(self._running)
                if refs:
                    ready, _ = ray.wait(refs, num_returns=1, timeout=POLL_S)
                else:
                    ready = []
                    self._stop.wait(POLL_S)
                self._drain_events()
                for ref in ready:
                    self._finish(ref)
            except Exception:
                log.exception("ray executor watcher error")

    def _finish(self, ref: Any) -> None:
        with self._lock:
            job = self._running.pop(ref)
            self._by_id.pop(job[0].job_id, None)
        jid = job[0].job_id
        try:
            result = JobResult.from_dict(self._ray.get(ref))
        except Exception as exc:  # noqa: BLE001 - TaskCancelledError, WorkerCrashedError, RayTaskError …
            if jid in self._cancelled:
                result = JobResult(jid, CANCELLED, "cancelled while running (Ray task stopped)")
            else:
                result = JobResult(jid, FAILED, f"the Ray task failed: {type(exc).__name__}: {exc}")
        self._cancelled.discard(jid)
        job[2](result)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            waiting, self._waiting = self._waiting, []
            running = dict(self._running)
            self._running.clear()
        self._thread.join(timeout_s)
        for job in waiting:
            job[2](JobResult(job[0].job_id, CANCELLED, "executor shut down before the job started"))
        for ref, job in running.items():
            try:
                self._ray.cancel(ref, force=True)
            except Exception as exc:  # noqa: BLE001 - the task may have ended meanwhile
                log.debug("ray.cancel at shutdown: %s", exc)
            job[2](JobResult(job[0].job_id, CANCELLED, "executor shut down while the job ran"))
        try:
            self._events.shutdown()
        except Exception as exc:  # noqa: BLE001 - the queue actor may be gone with its cluster
            log.debug("progress queue shutdown: %s", exc)
        if self._owns:
            self._ray.shutdown()
