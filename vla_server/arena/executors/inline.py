"""`InlineExecutor`: one job at a time in a thread of this process (CLI runs, tests, debugging)."""

from __future__ import annotations

import collections
import threading

from vla_server.arena.executors.base import Executor, OnDone, OnEvent
from vla_server.arena.work import CANCELLED, JobPayload, JobResult, execute


class InlineExecutor(Executor):
    """Runs jobs one after another in a daemon thread (the provider's policies stay loaded)."""

    name = "inline"

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[JobPayload, OnEvent, OnDone]] = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._current: str | None = None
        self._cancel: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="arena-inline", daemon=True)
        self._thread.start()

    @property
    def capacity(self) -> int:
        return 1

    def submit(self, payload: JobPayload, on_event: OnEvent, on_done: OnDone) -> None:
        with self._cond:
            if self._stop:
                raise RuntimeError("executor is shut down")
            self._queue.append((payload, on_event, on_done))
            self._cond.notify()

    def cancel(self, job_id: str) -> bool:
        with self._cond:
            for item in list(self._queue):
                if item[0].job_id == job_id:
                    self._queue.remove(item)
                    item[2](JobResult(job_id, CANCELLED, "cancelled before it started"))
                    return True
            if self._current == job_id:
                self._cancel.add(job_id)
                return True
        return False

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
                payload, on_event, on_done = self._queue.popleft()
                self._current = payload.job_id
            jid = payload.job_id
            def cancelled(jid: str = jid) -> bool:
                return jid in self._cancel or self._stop

            result = execute(payload, on_event, cancelled)
            with self._cond:
                self._current = None
                self._cancel.discard(jid)
            on_done(result)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            left = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for payload, _, on_done in left:
            on_done(JobResult(payload.job_id, CANCELLED, "executor shut down before the job started"))
        self._thread.join(timeout_s)
