"""`ModelRegistry`: the catalog's models, each loaded on first use into its own worker process,
kept warm, and unloaded again by eviction (LRU/LFU), idle TTL or an explicit request.

Split by concern: this module is the life cycle (load, unload, transitions, inference, the
public API); `vla_server.registry.placement.Placement` decides capacity (memory accounting,
eviction victims, devices); `vla_server.registry.supervision.Supervisor` watches workers
(crash restarts, health, idle unloads); `vla_server.registry.entry.ModelEntry` is a model's state.

Memory accounting uses the workers' measured resident memory (/proc), re-measured on every health
tick; before a load, room is made for the model's last measured size (or
`new_model_estimate_mb` for a model never measured), and after the load the measured total is
enforced again. A crashed worker is restarted after a backoff; listeners (the stream sessions)
hear about it through `ModelEvent`s. Everything runs on one asyncio loop; state transitions of a
model (load, unload, restart) run as one task each, which requests wait on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vla_server.models import ModelSpec
from vla_server.registry.config import RegistryConfig
from vla_server.registry.devices import DeviceInventory, NoDeviceError
from vla_server.registry.entry import ModelEntry
from vla_server.registry.errors import (
    CapacityError,
    InferenceFailed,
    InferenceTimeout,
    InvalidInput,
    ModelCrashed,
    ModelLoadError,
    RegistryClosed,
    UnknownModel,
)
from vla_server.registry.placement import Placement
from vla_server.registry.supervision import Supervisor
from vla_server.registry.types import InferResult, ModelEvent, ModelState
from vla_server.workers.errors import (
    WorkerBadInput,
    WorkerCrashed,
    WorkerRequestError,
    WorkerStartError,
    WorkerTimeout,
)
from vla_server.workers.process import WorkerProcess

if TYPE_CHECKING:  # types only: numpy is imported when a frame first needs it
    from vla_server.policies.base import Observation
    from vla_server.workers.wire import EncodedObservation

log = logging.getLogger("vla_server.registry")

_UNLOAD_DRAIN_S = 5.0  # an unload waits this long for requests in flight to finish
_STOP_TIMEOUT_S = 2.0  # a worker asked to shut down is killed after this long


class ModelRegistry:
    """Loads, keeps and evicts models; the async API used by sessions, the openpi endpoint and HTTP.

    Args:
        catalog: model id → spec.
        config: limits and timing.
        log_dir: where worker stdout/stderr go (``<id>.log``); None = the service's stderr.
        clock: monotonic seconds (injected in tests).
    """

    def __init__(
        self,
        catalog: Mapping[str, ModelSpec],
        config: RegistryConfig | None = None,
        *,
        log_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        config = config or RegistryConfig()
        for mid in (*config.pinned, *config.preload):
            if mid not in catalog:
                raise ValueError(f"registry: pinned/preloaded model {mid!r} is not in the catalog {sorted(catalog)}")
        self.config = config
        self.log_dir = log_dir
        self._clock = clock
        self._entries = {mid: ModelEntry(spec) for mid, spec in catalog.items()}
        for mid in config.pinned:
            self._entries[mid].pinned = True
        self.devices = DeviceInventory(config.devices, config.assignment)
        self.placement = Placement(self._entries, config, self.devices, self._evict_model, self._unload, clock)
        self.supervisor = Supervisor(self)
        self._admission = asyncio.Lock()
        self._listeners: list[Callable[[ModelEvent], None]] = []
        self.hand_over_openpi = False  # workers started from now on can serve openpi connections
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # ---- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the health and idle loops, then loads pinned and preloaded models."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.supervisor.health_loop(), name="registry-health")]
        if self.config.idle_ttl_s > 0:
            self._tasks.append(loop.create_task(self.supervisor.idle_loop(), name="registry-idle"))
        for mid in dict.fromkeys((*self.config.pinned, *self.config.preload)):
            try:
                await self.load(mid)
            except (CapacityError, ModelLoadError) as exc:
                log.error("preload failed", extra={"event": "preload_failed", "model": mid, "error": str(exc)})

    async def aclose(self) -> None:
        """Stops every worker and background task (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for t in self._tasks:
            t.cancel()
        for e in self._entries.values():
            if e.transition is not None:
                e.transition.cancel()
        await asyncio.gather(*self._tasks, *(e.transition for e in self._entries.values() if e.transition),
                             return_exceptions=True)
        stops = []
        for e in self._entries.values():
            if e.worker is not None:
                stops.append(e.worker.stop(_STOP_TIMEOUT_S))
                e.worker = None
            e.state = ModelState.COLD
        await asyncio.gather(*stops, return_exceptions=True)

    def add_listener(self, callback: Callable[[ModelEvent], None]) -> None:
        """`callback(event)` is called on the loop for crashes, restarts, evictions, unloads."""
        self._listeners.append(callback)

    # ---- queries ------------------------------------------------------------------------------

    def has_model(self, model_id: str) -> bool:
        return model_id in self._entries

    def model_ids(self) -> list[str]:
        return list(self._entries)

    def spec(self, model_id: str) -> ModelSpec:
        return self._get(model_id).spec

    def state(self, model_id: str) -> ModelState:
        return self._get(model_id).state

    def worker_pid(self, model_id: str) -> int | None:
        w = self._get(model_id).worker
        return w.pid if w is not None else None

    def used_mb(self) -> float:
        """Memory accounted now: measured RSS of live workers + reservations of loading ones."""
        return self.placement.used_mb()

    def status(self, model_id: str) -> dict[str, Any]:
        """One model as `GET /v1/models` shows it."""
        e = self._get(model_id)
        w = e.worker
        now_wall = time.time()
        return {
            "id": e.spec.id,
            "backend": e.spec.backend,
            "description": e.spec.description,
            "state": e.state.value,
            "device": e.device if e.state is not ModelState.COLD else None,
            "requested_device": e.spec.device,
            "memory_mb": None if e.measured_mb is None else round(e.measured_mb, 1),
            "last_memory_mb": None if e.last_measured_mb is None else round(e.last_measured_mb, 1),
            "pid": w.pid if w is not None else None,
            "pinned": e.pinned,
            "sessions": e.sessions,
            "inflight": e.inflight,
            "last_used": e.last_used_wall,
            "loaded_at": e.loaded_at_wall,
            "uptime_s": None if e.loaded_at_wall is None or w is None else round(now_wall - e.loaded_at_wall, 1),
            "latency_ms": e.spec.latency_ms,
            "action_horizon": (w.info.get("action_horizon") if w is not None else None),
            "info": (dict(w.info.get("extra") or {}) if w is not None else None),  # the backend's own (e.g. tasks)
            "last_error": e.last_error,
            "stats": e.stats.to_dict(),
        }

    def statuses(self) -> list[dict[str, Any]]:
        return [self.status(mid) for mid in self._entries]

    def summary(self) -> dict[str, Any]:
        """Registry-wide figures: policy, budget, use, loaded models, the next eviction victim."""
        resident = [e for e in self._entries.values() if self.placement.is_resident(e)]
        return {
            "eviction": self.config.eviction,
            "memory_budget_mb": self.config.memory_budget_mb,
            "memory_used_mb": round(self.used_mb(), 1),
            "max_models": self.config.max_models,
            "loaded": len(resident),
            "idle_ttl_s": self.config.idle_ttl_s,
            "next_eviction": self.placement.pick_victim(exclude=()),
            "assignment": self.config.assignment,
            "devices": self.devices.snapshot(),
        }

    def stats(self, model_id: str) -> dict[str, Any]:
        return self._get(model_id).stats.to_dict()

    # ---- sessions -----------------------------------------------------------------------------

    def acquire_session(self, model_id: str) -> None:
        """A stream session uses the model (not idle-unloaded; evicted last)."""
        self._get(model_id).sessions += 1

    def release_session(self, model_id: str) -> None:
        e = self._get(model_id)
        e.sessions = max(0, e.sessions - 1)

    async def end_session(self, model_id: str, session: str) -> None:
        """Tells a warm worker to forget `session` (best effort)."""
        e = self._get(model_id)
        if e.state is ModelState.WARM and e.worker is not None:
            with contextlib.suppress(WorkerCrashed, WorkerTimeout, WorkerRequestError):
                await e.worker.end_session(session, self.config.ping_timeout_s)

    async def worker_for(self, model_id: str) -> WorkerProcess:
        """The model's live worker, loading it first (for handing it a connection).

        Raises:
            UnknownModel, CapacityError, ModelLoadError, RegistryClosed.
        """
        return await self._ensure_warm(self._get(model_id))

    def _note_requests(self, e: ModelEntry, n: int) -> None:
        """`n` requests served on connections handed to `e`'s worker (they count as use)."""
        e.use_count += n
        e.last_used = self._clock()
        e.last_used_wall = time.time()
        e.stats.requests += n

    # ---- inference ----------------------------------------------------------------------------

    async def infer(self, model_id: str, obs: Observation | EncodedObservation,
                    tenant: str | None = None) -> InferResult:
        """Runs `model_id` on `obs` (images decoded, or JPEG bytes the worker decodes), loading
        the model first if needed. The worker serves `tenant`s (API keys; default the
        observation's session) round-robin, so one cannot take more than its share.

        Raises:
            UnknownModel, CapacityError, ModelLoadError, ModelCrashed, InferenceFailed,
            InferenceTimeout, InvalidInput (the observation, not the model), RegistryClosed.
        """
        e = self._get(model_id)
        t0 = time.perf_counter()
        worker = await self._ensure_warm(e)
        t1 = time.perf_counter()
        e.inflight += 1
        e.use_count += 1
        e.last_used = self._clock()
        e.last_used_wall = time.time()
        e.stats.requests += 1
        try:
            actions, model_ms = await worker.infer(obs, self.config.infer_timeout_s, tenant)
        except WorkerTimeout as exc:
            e.stats.failures += 1
            e.stats.timeouts += 1
            log.error("inference timeout; killing the worker", extra={"event": "infer_timeout", "model": model_id})
            worker.kill()  # hung: the crash path restarts it
            raise InferenceTimeout(str(exc)) from None
        except WorkerCrashed as exc:
            e.stats.failures += 1
            if e.state in (ModelState.UNLOADING, ModelState.COLD):
                raise ModelCrashed(f"model {model_id!r} was unloaded while this request was pending") from None
            raise ModelCrashed(str(exc)) from None
        except WorkerBadInput as exc:
            e.stats.bad_inputs += 1
            raise InvalidInput(str(exc)) from None
        except WorkerRequestError as exc:
            e.stats.failures += 1
            raise InferenceFailed(str(exc)) from None
        finally:
            e.inflight -= 1
        roundtrip_ms = (time.perf_counter() - t1) * 1000.0
        e.stats.latency.add(roundtrip_ms)
        e.stats.model.add(model_ms)
        return InferResult(actions, model_ms, roundtrip_ms, (t1 - t0) * 1000.0, model_id, worker.pid, worker.device)

    # ---- explicit control -----------------------------------------------------------------------

    async def load(self, model_id: str) -> dict[str, Any]:
        """Loads the model (no-op when warm; retries a failed model at once); returns its status."""
        await self._ensure_warm(self._get(model_id), explicit=True)
        return self.status(model_id)

    async def unload(self, model_id: str) -> dict[str, Any]:
        """Stops the model's worker (waits for a transition in progress first); returns its status."""
        e = self._get(model_id)
        while e.transition is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(e.transition)
        if e.state is ModelState.WARM:
            await self._run_transition(e, self._unload(e, reason="unloaded"))
        elif e.state is ModelState.FAILED:
            e.state = ModelState.COLD
        return self.status(model_id)

    async def pin(self, model_id: str) -> dict[str, Any]:
        """Pins the model (never evicted nor idle-unloaded) and loads it."""
        e = self._get(model_id)
        if not e.pinned:
            pinned = sum(x.pinned for x in self._entries.values())
            if pinned >= self.config.max_models:
                raise CapacityError(
                    f"cannot pin {model_id!r}: {pinned} models are pinned and max_models is {self.config.max_models}"
                )
            e.pinned = True
        try:
            return await self.load(model_id)
        except Exception:
            e.pinned = False
            raise

    async def unpin(self, model_id: str) -> dict[str, Any]:
        """Makes the model evictable again (it stays loaded)."""
        self._get(model_id).pinned = False
        return self.status(model_id)

    # ---- internals: transitions -----------------------------------------------------------------

    def _get(self, model_id: str) -> ModelEntry:
        try:
            return self._entries[model_id]
        except KeyError:
            raise UnknownModel(f"unknown model {model_id!r}; available: {sorted(self._entries)}") from None

    async def _run_transition(self, e: ModelEntry, coro: Coroutine[Any, Any, None]) -> None:
        """Runs `coro` as the model's one transition task and waits for it."""
        task = asyncio.get_running_loop().create_task(coro, name=f"transition-{e.spec.id}")
        self._set_transition(e, task)
        await asyncio.shield(task)

    def _set_transition(self, e: ModelEntry, task: asyncio.Task[None]) -> None:
        e.transition = task

        def done(t: asyncio.Task[None]) -> None:
            if e.transition is t:
                e.transition = None
            if not t.cancelled():
                t.exception()  # retrieved here; waiters get it through await

        task.add_done_callback(done)

    async def _ensure_warm(self, e: ModelEntry, explicit: bool = False) -> WorkerProcess:
        """The model's live worker, loading it (or waiting for a load / restart) first.

        After a failed load, requests fail at once with its error for `load_retry_s`
        (`explicit` loads retry at once), so a broken model is not respawned for every frame.
        """
        deadline = time.monotonic() + self.config.load_timeout_s + _UNLOAD_DRAIN_S + _STOP_TIMEOUT_S
        while True:
            if self._closed:
                raise RegistryClosed("the service is shutting down")
            if e.state is ModelState.WARM and e.worker is not None and e.worker.alive:
                return e.worker
            if e.transition is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ModelLoadError(f"model {e.spec.id!r} did not become ready in time (state {e.state.value})")
                try:
                    await asyncio.wait_for(asyncio.shield(e.transition), remaining)
                except TimeoutError:
                    continue
                except (CapacityError, ModelLoadError, RegistryClosed):
                    if e.state is not ModelState.RESTARTING:
                        raise
                except asyncio.CancelledError:
                    if self._closed:
                        raise RegistryClosed("the service is shutting down") from None
                    raise
                continue
            if e.state is ModelState.FAILED and not explicit:
                wait = e.failed_at + self.config.load_retry_s - self._clock()
                if wait > 0:
                    raise ModelLoadError(f"{e.last_error} (next load attempt in {wait:.1f} s)")
            if e.state in (ModelState.COLD, ModelState.FAILED):
                explicit = False  # one explicit attempt; a waiter that loops sees the outcome
                self._set_transition(e, asyncio.get_running_loop().create_task(self._load(e), name=f"load-{e.spec.id}"))
                continue
            # WARM with a dead worker: the exit callback is about to run; let it.
            await asyncio.sleep(0.01)

    async def _load(self, e: ModelEntry) -> None:
        spec = e.spec
        async with self._admission:
            try:
                self.devices.check_possible(spec)
            except NoDeviceError as exc:
                e.state, e.last_error, e.failed_at = ModelState.FAILED, str(exc), self._clock()
                raise CapacityError(str(exc)) from None
            budget = self.config.memory_budget_mb
            if e.last_measured_mb is not None and e.last_measured_mb > budget:
                msg = (
                    f"model {spec.id!r} measured {e.last_measured_mb:.0f} MiB, above the memory budget {budget:.0f} MiB"
                )
                e.state, e.last_error, e.failed_at = ModelState.FAILED, msg, self._clock()
                raise CapacityError(msg)
            need = (
                e.last_measured_mb if e.last_measured_mb is not None else min(self.config.new_model_estimate_mb, budget)
            )
            await self.placement.make_room(e, need)
            device = await self.placement.assign_device(e)
            e.state, e.device, e.reserved_mb = ModelState.LOADING, device, need
            self.devices.allocate(spec.id, device, spec.gpu_memory_mb if spec.device == "gpu" else 0.0)
        log.info("loading model", extra={"event": "model_loading", "model": spec.id, "device": device})
        try:
            await self._start_worker(e)
        except WorkerStartError as exc:
            self.devices.release(spec.id)
            e.state, e.last_error, e.reserved_mb = ModelState.FAILED, str(exc), 0.0
            e.failed_at = self._clock()
            e.stats.load_failures += 1
            log.error("model load failed", extra={"event": "model_load_failed", "model": spec.id, "error": str(exc)})
            raise ModelLoadError(str(exc)) from None
        except asyncio.CancelledError:
            self.devices.release(spec.id)
            e.state, e.reserved_mb = ModelState.COLD, 0.0
            raise
        e.stats.loads += 1
        async with self._admission:
            await self.placement.enforce_budget(protect=e)

    async def _start_worker(self, e: ModelEntry) -> None:
        """Spawns the worker for `e` on `e.device` and marks it warm (measuring its memory)."""
        t0 = time.perf_counter()
        worker = await WorkerProcess.start(
            e.spec, device=e.device or "cpu", load_timeout_s=self.config.load_timeout_s,
            log_dir=self.log_dir, on_exit=lambda w, ex: self.supervisor.on_worker_exit(e, w, ex),
            openpi_host=self.hand_over_openpi,
        )
        cold_ms = (time.perf_counter() - t0) * 1000.0
        worker.on_requests = lambda n: self._note_requests(e, n)
        e.worker, e.state, e.last_error, e.reserved_mb = worker, ModelState.WARM, None, 0.0
        e.use_count, e.last_used, e.last_used_wall = 0, self._clock(), time.time()
        e.loaded_at_wall = time.time()
        e.measured_mb = worker.rss_mb()
        if e.measured_mb is not None:
            e.last_measured_mb = e.measured_mb
        e.stats.cold_start.add(cold_ms)
        log.info("model warm", extra={"event": "model_warm", "model": e.spec.id, "pid": worker.pid,
                                      "device": worker.device, "cold_start_ms": round(cold_ms, 1),
                                      "policy_load_ms": round(worker.load_ms, 1), "rss_mb": e.measured_mb})
        self._emit(ModelEvent(e.spec.id, "loaded", f"model {e.spec.id!r} is warm"))

    async def _evict_model(self, model_id: str) -> None:
        e = self._entries[model_id]
        await self._run_transition(e, self._unload(e, reason="evicted"))

    async def _unload(self, e: ModelEntry, reason: str) -> None:
        """Stops a warm model's worker. `reason`: ``unloaded``, ``evicted``, ``idle``."""
        worker = e.worker
        if e.state is not ModelState.WARM or worker is None:
            return
        e.state = ModelState.UNLOADING
        deadline = time.monotonic() + _UNLOAD_DRAIN_S
        while e.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        exit_info = await worker.stop(_STOP_TIMEOUT_S)
        stop_ms = (time.perf_counter() - t0) * 1000.0
        e.worker, e.state, e.measured_mb = None, ModelState.COLD, None
        self.devices.release(e.spec.id)
        e.stats.unloads += 1
        if reason == "evicted":
            e.stats.evictions += 1
            e.stats.eviction.add(stop_ms)
        elif reason == "idle":
            e.stats.idle_unloads += 1
        log.info("model unloaded", extra={"event": "model_unloaded", "model": e.spec.id, "reason": reason,
                                          "stop_ms": round(stop_ms, 1), "exit": exit_info.reason})
        self._emit(ModelEvent(e.spec.id, "evicted" if reason == "evicted" else "unloaded",
                              f"model {e.spec.id!r} {'evicted' if reason == 'evicted' else 'unloaded'} ({reason})"))

    def _emit(self, event: ModelEvent) -> None:
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:  # a listener's bug must not break the registry
                log.exception("model event listener failed", extra={"event": "listener_failed"})
