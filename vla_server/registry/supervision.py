"""`Supervisor`: keeps the registry's workers alive and lean — a crashed worker is restarted after
a backoff that doubles per crash in a streak (given up after `max_restarts`, the model FAILED),
a health tick pings every warm worker (a hung one is killed, which is a crash) and re-measures
memory against the budget, and an idle loop unloads models unused for `idle_ttl_s`. Listeners
hear crashes, restarts and failures as `ModelEvent`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from vla_server.registry.entry import ModelEntry
from vla_server.registry.errors import CapacityError, ModelLoadError
from vla_server.registry.types import ModelEvent, ModelState
from vla_server.workers.errors import WorkerCrashed, WorkerRequestError, WorkerStartError, WorkerTimeout
from vla_server.workers.process import WorkerExit, WorkerProcess

if TYPE_CHECKING:
    from vla_server.registry.registry import ModelRegistry

log = logging.getLogger("vla_server.registry")

_RESTART_STABLE_S = 60.0  # a crash more than this after the previous one starts a new streak


class Supervisor:
    """Crash restarts, health checks and idle unloads for `registry` (on its event loop)."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._r = registry


    def on_worker_exit(self, e: ModelEntry, worker: WorkerProcess, exit_info: WorkerExit) -> None:
        if e.worker is not worker or self._r._closed:
            return
        now = self._r._clock()
        e.worker, e.measured_mb = None, None
        e.stats.crashes += 1
        e.crash_streak = e.crash_streak + 1 if now - e.last_crash < _RESTART_STABLE_S else 1
        e.last_crash = now
        e.last_error = f"worker {exit_info.reason}"
        if e.crash_streak > self._r.config.max_restarts:
            e.state, e.failed_at = ModelState.FAILED, now
            self._r.devices.release(e.spec.id)
            msg = f"model {e.spec.id!r} worker {exit_info.reason}; {e.crash_streak} crashes in a row, not restarting"
            log.error("worker crashed; giving up", extra={"event": "worker_failed", "model": e.spec.id})
            self._r._emit(ModelEvent(e.spec.id, "failed", msg))
            return
        delay = min(self._r.config.restart_backoff_max_s, self._r.config.restart_backoff_s * 2 ** (e.crash_streak - 1))
        e.state, e.reserved_mb = ModelState.RESTARTING, e.last_measured_mb or 0.0
        log.error("worker crashed; restarting", extra={"event": "worker_crashed", "model": e.spec.id,
                                                       "pid": worker.pid, "exit": exit_info.reason,
                                                       "restart_in_s": delay, "streak": e.crash_streak})
        self._r._emit(ModelEvent(e.spec.id, "crashed",
                              f"model {e.spec.id!r} worker {exit_info.reason}; restarting in {delay:.1f} s"))
        self._r._set_transition(
            e, asyncio.get_running_loop().create_task(self.restart(e, delay), name=f"restart-{e.spec.id}")
        )

    async def restart(self, e: ModelEntry, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        try:
            await self._r._start_worker(e)
        except WorkerStartError as exc:
            e.stats.load_failures += 1
            e.state, e.last_error, e.failed_at = ModelState.FAILED, str(exc), self._r._clock()
            self._r.devices.release(e.spec.id)
            self._r._emit(ModelEvent(e.spec.id, "failed", f"model {e.spec.id!r} failed to restart: {exc}"))
            raise ModelLoadError(str(exc)) from None
        e.stats.restarts += 1
        self._r._emit(
            ModelEvent(
                e.spec.id, "restarted", f"model {e.spec.id!r} restarted (pid {e.worker.pid if e.worker else '?'})"
            )
        )

    async def health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._r.config.health_interval_s)
            warm = [e for e in self._r._entries.values() if e.state is ModelState.WARM and e.worker is not None]
            await asyncio.gather(*(self.check(e) for e in warm))
            if not self._r._admission.locked():
                async with self._r._admission:
                    with contextlib.suppress(CapacityError):
                        await self._r.placement.enforce_budget(protect=None)

    async def check(self, e: ModelEntry) -> None:
        worker = e.worker
        if worker is None:
            return
        try:
            await worker.ping(self._r.config.ping_timeout_s)
        except WorkerTimeout:
            e.stats.health_failures += 1
            log.error("health check failed; killing the worker", extra={"event": "health_failed", "model": e.spec.id,
                                                                       "pid": worker.pid})
            worker.kill()
            return
        except (WorkerCrashed, WorkerRequestError):
            return
        self._r.placement.memory_of(e)

    async def idle_loop(self) -> None:
        ttl = self._r.config.idle_ttl_s
        period = max(0.05, min(ttl / 4.0, 5.0))
        while True:
            await asyncio.sleep(period)
            now = self._r._clock()
            for e in list(self._r._entries.values()):
                if (e.state is ModelState.WARM and not e.pinned and e.inflight == 0 and e.sessions == 0
                        and e.transition is None and now - e.last_used > ttl):
                    log.info("idle model", extra={"event": "idle_unload", "model": e.spec.id,
                                                  "idle_s": round(now - e.last_used, 1)})
                    async with self._r._admission:
                        if e.state is ModelState.WARM and e.inflight == 0 and e.transition is None:
                            await self._r._run_transition(e, self._r._unload(e, reason="idle"))
