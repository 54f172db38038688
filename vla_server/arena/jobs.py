"""`JobManager`: episodes as jobs — queued, run by an executor, with progress, logs and cancel.

The store is the truth (every state change is committed when it happens); the manager adds the
live view (progress of running jobs, the recent log lines) and routes executor callbacks. On
start it recovers from a restart: episodes that were running are marked failed with a log line,
episodes still queued are queued again. Finished jobs can be rerun under the same id.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vla_server.arena.config import LOG_TAIL_LINES, PROGRESS_DB_EVERY_S, EpisodeSpec
from vla_server.arena.executors.base import Executor
from vla_server.arena.live import LiveOptions
from vla_server.arena.models import ModelNotFound, PolicyProvider, ProviderRef
from vla_server.arena.store import ArenaStore, StoreError
from vla_server.arena.work import (
    CANCELLED,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    JobEvent,
    JobPayload,
    JobResult,
)

log = logging.getLogger(__name__)

FinishedHook = Callable[[str], None]


@dataclass
class _Live:
    status: str = QUEUED
    step: int = 0
    total: int = 0
    lines: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=LOG_TAIL_LINES))
    last_db: float = 0.0
    live: dict[str, Any] | None = None  # asked to be served live: {} until the worker reports its links


class JobManager:
    """Runs episode jobs on an executor and keeps the store up to date.

    Args:
        store: the arena store.
        executor: where jobs run.
        provider: policy provider recipe given to the jobs (also used here to check model ids).
        recover: run the restart recovery now.
    """

    def __init__(self, store: ArenaStore, executor: Executor, provider: ProviderRef | None = None,
                 recover: bool = True) -> None:
        self.store = store
        self.executor = executor
        self.provider = provider or ProviderRef()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._live: dict[str, _Live] = {}
        self._hooks: list[FinishedHook] = []
        self._closed = False
        self.recovered_failed: list[str] = []
        if recover:
            failed, queued = store.recover_interrupted()
            self.recovered_failed = failed
            for eid in queued:
                self._dispatch(eid, store.spec(eid))
            if failed or queued:
                log.warning("arena restart recovery: %d interrupted episode(s) marked failed, %d re-queued",
                            len(failed), len(queued))

    # -- models ---------------------------------------------------------------------------------
    def provider_instance(self) -> PolicyProvider:
        return self.provider.build()

    def check_model(self, model_id: str) -> None:
        """Raises `ModelNotFound` for a model the provider does not know."""
        self.provider.build().spec(model_id)

    def models(self) -> list[dict[str, Any]]:
        return [{"id": s.id, "backend": s.backend, "latency_ms": s.latency_ms, "description": s.description}
                for s in self.provider.build().models()]

    # -- submitting -----------------------------------------------------------------------------
    def on_finished(self, hook: FinishedHook) -> None:
        """Calls `hook(episode_id)` after every episode ends (from the executor's thread)."""
        self._hooks.append(hook)

    def submit(self, spec: EpisodeSpec, battle_id: str | None = None, side: str | None = None,
               live: LiveOptions | None = None) -> str:
        """Stores and queues an episode (served live by its worker with `live`); returns its id.

        Raises:
            ModelNotFound: unknown model (nothing stored).
        """
        self.check_model(spec.model)
        eid = self.store.create_episode(spec, battle_id, side)
        self.store.append_log(eid, f"queued on {self.executor.describe()}")
        self._dispatch(eid, spec, live)
        return eid

    def _dispatch(self, eid: str, spec: EpisodeSpec, live: LiveOptions | None = None) -> None:
        with self._lock:
            self._live[eid] = _Live(total=spec.steps, live=None if live is None else {})
        self.executor.submit(JobPayload(eid, spec, self.provider, live=live), self._on_event, self._on_done)

    def rerun(self, episode_id: str) -> None:
        """Queues a finished (failed, cancelled or done) episode again under its id."""
        spec = self.store.reset_for_rerun(episode_id)
        self._dispatch(episode_id, spec)

    def cancel(self, episode_id: str) -> bool:
        """Cancels a queued or running episode; False if it has already finished."""
        row = self.store.episode(episode_id)
        if row["status"] in FINISHED:
            return False
        if self.executor.cancel(episode_id):
            self.store.append_log(episode_id, "cancel requested")
            return True
        # known to the store but not to this executor (e.g. queued before a restart without recovery)
        self._on_done(JobResult(episode_id, CANCELLED, "cancelled"))
        return True

    # -- callbacks (executor thread) -----------------------------------------------------------
    def _on_event(self, ev: JobEvent) -> None:
        eid = ev.job_id
        with self._lock:
            live = self._live.setdefault(eid, _Live())
        try:
            if ev.kind == "started":
                live.status = RUNNING
                self.store.mark_running(eid, str(ev.data.get("worker", "")))
                host, _, pid = str(ev.data.get("worker", "?")).rpartition(":")
                where = f"{host}, worker process {pid}" if host and pid.isdigit() else pid
                self.store.append_log(eid, f"started on {where}")  # "started on vm, worker process 11408"
            elif ev.kind == "progress":
                live.step, live.total = int(ev.data["step"]), int(ev.data["total"])
                now = time.monotonic()
                if now - live.last_db >= PROGRESS_DB_EVERY_S or live.step >= live.total:
                    live.last_db = now
                    self.store.set_progress(eid, live.step, live.total)
            elif ev.kind == "live":
                live.live = dict(ev.data)
            elif ev.kind == "log":
                line = str(ev.data.get("line", ""))
                self.store.append_log(eid, line)
                live.lines.extend(line.splitlines())
        except StoreError:
            log.exception("arena event for unknown episode %s", eid)
        with self._changed:
            self._changed.notify_all()

    def _on_done(self, result: JobResult) -> None:
        eid = result.job_id
        if self._closed and result.status == CANCELLED:  # the service is stopping, nobody cancelled it
            if not self._started(eid):
                self.store.append_log(eid, "the service stopped before this episode started; it runs after "
                                           "the restart")
                return  # stays queued: `recover_interrupted` queues it again
            result = dataclasses.replace(result, status=FAILED,
                                         error="interrupted: the service stopped while this episode ran; rerun it")
        try:
            self.store.finish_episode(result)
            self.store.append_log(eid, f"{result.status}" + (f": {result.error}" if result.error else ""))
        except StoreError:
            log.exception("arena result for unknown episode %s", eid)
            return
        for hook in self._hooks:
            try:
                hook(eid)
            except Exception:  # a hook's failure must not lose the result
                log.exception("arena finished-hook failed for %s", eid)
        with self._changed:  # finished for waiters only once its hooks (battle decisions) ran
            live = self._live.get(eid)
            if live is not None:
                live.status = result.status
            self._changed.notify_all()

    # -- reading --------------------------------------------------------------------------------
    def status(self, episode_id: str) -> dict[str, Any]:
        """The stored episode with live progress when it is running, and ``live`` while an episode
        asked to be watched is queued or running: ``{"state": "waiting"}`` (queued or starting),
        ``{"state": "on", "url", "foxglove_web", "foxglove_desktop"}`` or ``{"state":
        "unavailable", "error"}``."""
        row = self.store.episode(episode_id)
        with self._lock:
            live = self._live.get(episode_id)
            if live is not None and row["status"] == RUNNING:
                row["step"], row["total"] = live.step, live.total or row["total"]
            if live is not None and live.live is not None and row["status"] in (QUEUED, RUNNING):
                view = live.live
                state = "unavailable" if "error" in view else "on" if "url" in view else "waiting"
                row["live"] = {"state": state, **view}
        return row

    def log_lines(self, episode_id: str, offset: int = 0) -> list[str]:
        return self.store.read_log(episode_id, offset)

    def wait_change(self, timeout_s: float) -> None:
        """Blocks until any job changes (or `timeout_s`)."""
        with self._changed:
            self._changed.wait(timeout_s)

    def wait(self, episode_id: str, timeout_s: float | None = None) -> dict[str, Any]:
        """Blocks until the episode finished; returns its status.

        Raises:
            TimeoutError: not finished within `timeout_s`.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            st = self.store.episode(episode_id)
            with self._lock:
                live = self._live.get(episode_id)
                settled = live is None or live.status in FINISHED
            if st["status"] in FINISHED and settled:
                return st
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"episode {episode_id} not finished within {timeout_s} s (status {st['status']})")
            with self._changed:
                self._changed.wait(0.5 if left is None else min(0.5, left))

    def _started(self, episode_id: str) -> bool:
        try:
            return bool(self.store.episode(episode_id)["status"] != QUEUED)
        except StoreError:
            return False

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stops the executor: a running episode ends as failed ("interrupted", with its log; it can
        be rerun), a queued one stays queued for the next start."""
        if self._closed:
            return
        self._closed = True
        self.executor.shutdown(timeout_s)


__all__ = ["JobManager", "ModelNotFound"]
