"""`LocalPoolExecutor`: episode jobs in a pool of worker processes on this machine.

Each worker is a *spawned* interpreter (no state inherited from the service) that keeps its
policies and renderers loaded between jobs. The parent gives a worker one job at a time over its
own pipe; workers report events and results on one shared queue, read by a dispatcher thread
that also notices a dead worker (its job fails with the exit code, a new worker takes its place)
and hands queued jobs to idle workers. Cancelling a running job sets the worker's cancel cell to
the job's sequence number; the episode checks it once per control step.

Workers never outlive the service: each watches its parent (`frankateach.lifeline.ParentWatch`:
a kernel death signal when started from the main thread, and parent-pid polling), and
`shutdown` stops, then terminates, then kills them.

Each worker's temporary files (an episode's folder) live in a folder of the pool's own
(``arena-pool-*/worker-N-*``, its ``TMPDIR``): a killed worker's leftovers are removed when its
replacement starts, the whole folder at `shutdown`.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing as mp
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frankateach.lifeline import child_death_signal
from vla_server.arena.config import default_workers
from vla_server.arena.executors.base import Executor, OnDone, OnEvent
from vla_server.arena.work import CANCELLED, FAILED, JobEvent, JobPayload, JobResult

log = logging.getLogger(__name__)

POLL_S = 0.2  # dispatcher wake-up when idle; worker parent checks
START_TIMEOUT_S = 60.0


def _worker_main(idx: int, tasks: Any, events: Any, cancel_cell: Any, parent_pid: int, death_signal: int,
                 tmp_dir: str) -> None:
    """Entry point of a worker process: run jobs from `tasks` until None or the parent is gone."""
    os.environ["TMPDIR"] = tmp_dir  # the pool's folder for this worker (removed by the parent)
    tempfile.tempdir = tmp_dir
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    os.environ.setdefault("LP_NUM_THREADS", "1")  # one software-render thread per worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from frankateach.lifeline import ParentWatch

    gone = threading.Event()
    ParentWatch(parent_pid, gone.set, death_signal=death_signal).start()
    from vla_server.arena.work import JobPayload as Payload
    from vla_server.arena.work import execute

    events.put((idx, -1, "ready", {"pid": os.getpid()}))
    while not gone.is_set():
        try:
            if not tasks.poll(POLL_S):
                continue
            msg = tasks.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        seq, payload_dict = msg
        payload = Payload.from_dict(payload_dict)

        def emit(ev: JobEvent, seq: int = seq) -> None:
            events.put((idx, seq, "event", {"job_id": ev.job_id, "kind": ev.kind, "data": dict(ev.data)}))

        def cancelled(seq: int = seq) -> bool:
            return bool(cancel_cell.value == seq or gone.is_set())

        result = execute(payload, emit, cancelled)
        events.put((idx, seq, "result", result.to_dict()))


@dataclass
class _Worker:
    idx: int
    proc: Any
    conn: Any  # parent's end of the task pipe
    cancel: Any  # shared int: sequence number of the job to cancel
    tmp: Path  # this worker's temporary folder (the parent removes it when the worker is gone)
    job: tuple[int, JobPayload, OnEvent, OnDone] | None = None
    ready: bool = False


class LocalPoolExecutor(Executor):
    """A pool of `workers` processes (default: cores − 1).

    Args:
        workers: pool size.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.size = int(workers or default_workers())
        if self.size < 1:
            raise ValueError(f"workers: expected >= 1, got {workers}")
        self._ctx = mp.get_context("spawn")
        self._events = self._ctx.Queue()
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[int, JobPayload, OnEvent, OnDone]] = collections.deque()
        self._seq = 0
        self._stop = threading.Event()
        self._tmp_root = Path(tempfile.mkdtemp(prefix="arena-pool-"))
        self._workers = [self._start_worker(i) for i in range(self.size)]
        self._thread = threading.Thread(target=self._dispatch_loop, name="arena-pool", daemon=True)
        self._thread.start()

    @property
    def capacity(self) -> int:
        return self.size

    def pids(self) -> list[int]:
        """Worker process ids (for tests and status pages)."""
        return [w.proc.pid for w in self._workers if w.proc.pid is not None]

    def _start_worker(self, idx: int) -> _Worker:
        recv, send = self._ctx.Pipe(duplex=False)
        cancel = self._ctx.Value("q", -1, lock=False)
        tmp = Path(tempfile.mkdtemp(prefix=f"worker-{idx}-", dir=self._tmp_root))
        proc = self._ctx.Process(
            target=_worker_main, name=f"arena-worker-{idx}", daemon=True,
            args=(idx, recv, self._events, cancel, os.getpid(), child_death_signal(signal.SIGKILL), str(tmp)),
        )
        proc.start()
        recv.close()
        return _Worker(idx, proc, send, cancel, tmp)

    # -- API ------------------------------------------------------------------------------------
    def submit(self, payload: JobPayload, on_event: OnEvent, on_done: OnDone) -> None:
        with self._lock:
            if self._stop.is_set():
                raise RuntimeError("executor is shut down")
            self._seq += 1
            self._queue.append((self._seq, payload, on_event, on_done))
        self._events.put((-1, -1, "wake", {}))

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            for item in list(self._queue):
                if item[1].job_id == job_id:
                    self._queue.remove(item)
                    break
            else:
                item = None
            if item is None:
                for w in self._workers:
                    if w.job is not None and w.job[1].job_id == job_id:
                        w.cancel.value = w.job[0]
                        return True
                return False
        item[3](JobResult(job_id, CANCELLED, "cancelled before it started"))
        return True

    def shutdown(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            left = list(self._queue)
            self._queue.clear()
        for _, payload, _, on_done in left:
            on_done(JobResult(payload.job_id, CANCELLED, "executor shut down before the job started"))
        for w in self._workers:
            if w.job is not None:
                w.cancel.value = w.job[0]
            try:
                w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        self._thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        for w in self._workers:
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(1.0)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(1.0)
            if w.job is not None:
                w.job[3](JobResult(w.job[1].job_id, CANCELLED, "executor shut down while the job ran"))
                w.job = None
            w.conn.close()
        self._events.close()
        self._events.join_thread()
        shutil.rmtree(self._tmp_root, ignore_errors=True)

    # -- dispatcher -----------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                idx, seq, kind, data = self._events.get(timeout=POLL_S)
            except queue.Empty:
                idx = -1
                kind = ""
            except (OSError, ValueError, EOFError):
                return
            try:
                if idx >= 0:
                    self._handle(idx, seq, kind, data)
                self._check_workers()
                self._assign()
            except Exception:  # a broken callback must not stop the pool
                log.exception("arena pool dispatcher error")
        # drain results of jobs that ended while stopping
        while True:
            try:
                idx, seq, kind, data = self._events.get(timeout=0.05)
            except (queue.Empty, OSError, ValueError, EOFError):
                return
            if idx >= 0 and kind == "result":
                self._handle(idx, seq, kind, data)

    def _handle(self, idx: int, seq: int, kind: str, data: dict[str, Any]) -> None:
        w = self._workers[idx]
        if kind == "ready":
            w.ready = True
            return
        job = w.job
        if job is None or job[0] != seq:
            return  # a late message of a job already ended (e.g. its worker was replaced)
        if kind == "event":
            job[2](JobEvent(data["job_id"], data["kind"], data["data"]))
        elif kind == "result":
            with self._lock:
                w.job = None
            job[3](JobResult.from_dict(data))

    def _check_workers(self) -> None:
        for i, w in enumerate(self._workers):
            if w.proc.is_alive() or self._stop.is_set():
                continue
            code = w.proc.exitcode
            log.error("arena worker %d (pid %s) died with exit code %s; starting a new one", i, w.proc.pid, code)
            job = w.job
            with self._lock:
                w.job = None
            w.conn.close()
            shutil.rmtree(w.tmp, ignore_errors=True)  # what the dead worker's episode left
            self._workers[i] = self._start_worker(i)
            if job is not None:
                job[3](
                    JobResult(
                        job[1].job_id, FAILED, f"the worker process died (exit code {code}) while running the job"
                    )
                )

    def _assign(self) -> None:
        while True:
            with self._lock:
                idle = [w for w in self._workers if w.job is None and w.proc.is_alive()]
                if not idle or not self._queue:
                    return
                w = idle[0]
                item = self._queue.popleft()
                w.job = item
                w.cancel.value = -1
            try:
                w.conn.send((item[0], item[1].to_dict()))
            except (OSError, BrokenPipeError) as exc:
                with self._lock:
                    w.job = None
                item[3](JobResult(item[1].job_id, FAILED, f"could not hand the job to a worker: {exc}"))
