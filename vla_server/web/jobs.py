"""`JobRunner`: slow derived-file jobs (an MP4 from a recording) run one at a time off the event loop.

One daemon worker thread takes jobs from a queue; each job has a key (the same key twice runs once),
a state, a progress fraction and an error text. `stop()` sets one stop event that the running job
sees through its progress callback (it raises `JobCancelled`), so shutdown never waits for an
encode to finish.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("vla_server.web.jobs")

# job states
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"

Progress = Callable[[str, int, int], None]  # (phase, done, total)
JobFn = Callable[[Progress], None]


class JobCancelled(Exception):
    """Raised inside a job's progress callback when the runner is stopping."""


@dataclass
class JobStatus:
    """What the UI shows about one job. `progress` is 0…1 within `phase`; times are Unix seconds."""

    key: str
    state: str = QUEUED
    phase: str = "queued"
    progress: float = 0.0
    error: str = ""
    queued_at: float = 0.0
    finished_at: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.state, "phase": self.phase, "progress": round(self.progress, 4), "error": self.error,
            "queued_at": self.queued_at, "finished_at": self.finished_at,
        }


class JobRunner:
    """Runs submitted jobs one after another in a daemon thread.

    Args:
        max_queued: refuse new jobs beyond this many waiting (a busy service says so, it does not pile up).
    """

    def __init__(self, max_queued: int = 8) -> None:
        self._q: queue.Queue[tuple[str, JobFn]] = queue.Queue(maxsize=max_queued)
        self._jobs: dict[str, JobStatus] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web-jobs", daemon=True)
        self._thread.start()

    def submit(self, key: str, fn: JobFn) -> JobStatus:
        """Queues `fn` under `key` unless a job with that key is queued or running; returns its status.

        A failed job is retried by submitting again. Raises `RuntimeError` when the queue is full or
        the runner stopped.
        """
        with self._lock:
            current = self._jobs.get(key)
            if current is not None and current.state in (QUEUED, RUNNING):
                return current
            if self._stop.is_set():
                raise RuntimeError("the job runner is stopping")
            status = JobStatus(key, queued_at=time.time())
            try:
                self._q.put_nowait((key, fn))
            except queue.Full:
                raise RuntimeError(f"too many jobs waiting ({self._q.maxsize}); try again in a moment") from None
            self._jobs[key] = status
            return status

    def status(self, key: str) -> JobStatus | None:
        """The job's status (a copy), or None if never submitted."""
        with self._lock:
            s = self._jobs.get(key)
            return None if s is None else JobStatus(**vars(s))

    def forget(self, key: str) -> None:
        """Drops a finished job's status (its output is gone and it may run again)."""
        with self._lock:
            s = self._jobs.get(key)
            if s is not None and s.state in (DONE, FAILED):
                del self._jobs[key]

    def stop(self, timeout_s: float = 2.0) -> None:
        """Cancels the running job at its next progress report and ends the worker thread."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _progress_for(self, status: JobStatus) -> Progress:
        def report(phase: str, done: int, total: int) -> None:
            if self._stop.is_set():
                raise JobCancelled("the service is stopping")
            with self._lock:
                status.phase = phase
                status.progress = min(1.0, done / total) if total > 0 else 0.0
        return report

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                key, fn = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            with self._lock:
                status = self._jobs[key]
                status.state, status.phase = RUNNING, "starting"
            try:
                fn(self._progress_for(status))
            except JobCancelled as exc:
                self._finish(status, FAILED, str(exc))
            except Exception as exc:  # a job's failure is reported to the UI, never kills the runner
                log.warning("job %s failed: %s", key, exc, exc_info=not isinstance(exc, (OSError, ValueError)))
                self._finish(status, FAILED, f"{type(exc).__name__}: {exc}")
            else:
                self._finish(status, DONE, "")

    def _finish(self, status: JobStatus, state: str, error: str) -> None:
        with self._lock:
            status.state, status.error, status.finished_at = state, error, time.time()
            if state == DONE:
                status.progress, status.phase = 1.0, "done"
