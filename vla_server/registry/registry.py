"""`ModelRegistry`: the catalog's models, each loaded on first use into its own worker process,
kept warm, and unloaded again by eviction (LRU/LFU), idle TTL or an explicit request.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_server.models import ModelSpec
from vla_server.policies.base import Observation
from vla_server.registry.config import RegistryConfig
from vla_server.registry.devices import DeviceInventory, NoDeviceError
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
from vla_server.registry.eviction import Candidate, pick_victim
from vla_server.registry.stats import ModelStats
from vla_server.registry.types import InferResult, ModelEvent, ModelState
from vla_server.workers.errors import (
    WorkerBadInput,
    WorkerCrashed,
    WorkerRequestError,
    WorkerStartError,
    WorkerTimeout,
)
from vla_server.workers.process import WorkerExit, WorkerProcess
from vla_server.workers.wire import EncodedObservation

log = logging.getLogger("vla_server.registry")

_UNLOAD_DRAIN_S = 5.0  # an unload waits this long for requests in flight to finish
_STOP_TIMEOUT_S = 2.0  # a worker asked to shut down is killed after this long
_RESTART_STABLE_S = 60.0  # a crash more than this after the previous one starts a new streak


@dataclass
class _Entry:
    spec: ModelSpec
    state: ModelState = ModelState.COLD
    worker: WorkerProcess | None = None
    device: str | None = None
    pinned: bool = False
    sessions: int = 0
    inflight: int = 0
    use_count: int = 0  # requests since the current load (LFU)
    last_used: float = 0.0  # monotonic s
    last_used_wall: float | None = None  # unix s
    loaded_at_wall: float | None = None
    measured_mb: float | None = None  # RSS of the current worker, MiB
    last_measured_mb: float | None = None  # last RSS ever measured for this model
    reserved_mb: float = 0.0  # accounted while loading / restarting
    last_error: str | None = None
    crash_streak: int = 0
    last_crash: float = -1e18
    failed_at: float = -1e18  # monotonic s of the last failed load
    transition: asyncio.Task[None] | None = None
    stats: ModelStats = field(default_factory=ModelStats)


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
        self._entries = {mid: _Entry(spec) for mid, spec in catalog.items()}
        for mid in config.pinned:
            self._entries[mid].pinned = True
        self.devices = DeviceInventory(config.devices, config.assignment)
        self._admission = asyncio.Lock()
        self._listeners: list[Callable[[ModelEvent], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # ---- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the health and idle loops, then loads pinned and preloaded models."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._health_loop(), name="registry-health")]
        if self.config.idle_ttl_s > 0:
            self._tasks.append(loop.create_task(self._idle_loop(), name="registry-idle"))
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
        return sum(self._memory_of(e) for e in self._entries.values())

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
            "last_error": e.last_error,
            "stats": e.stats.to_dict(),
        }

    def statuses(self) -> list[dict[str, Any]]:
        return [self.status(mid) for mid in self._entries]

    def summary(self) -> dict[str, Any]:
        """Registry-wide figures: policy, budget, use, loaded models, the next eviction victim."""
        resident = [e for e in self._entries.values() if self._is_resident(e)]
        return {
            "eviction": self.config.eviction,
            "memory_budget_mb": self.config.memory_budget_mb,
            "memory_used_mb": round(self.used_mb(), 1),
            "max_models": self.config.max_models,
            "loaded": len(resident),
            "idle_ttl_s": self.config.idle_ttl_s,
            "next_eviction": self._pick_victim(exclude=()),
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

    def _get(self, model_id: str) -> _Entry:
        try:
            return self._entries[model_id]
        except KeyError:
            raise UnknownModel(f"unknown model {model_id!r}; available: {sorted(self._entries)}") from None

    async def _run_transition(self, e: _Entry, coro: Coroutine[Any, Any, None]) -> None:
        """Runs `coro` as the model's one transition task and waits for it."""
        task = asyncio.get_running_loop().create_task(coro, name=f"transition-{e.spec.id}")
        self._set_transition(e, task)
        await asyncio.shield(task)

    def _set_transition(self, e: _Entry, task: asyncio.Task[None]) -> None:
        e.transition = task

        def done(t: asyncio.Task[None]) -> None:
            if e.transition is t:
                e.transition = None
            if not t.cancelled():
                t.exception()  # retrieved here; waiters get it through await

        task.add_done_callback(done)

    async def _ensure_warm(self, e: _Entry, explicit: bool = False) -> WorkerProcess:
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

    async def _load(self, e: _Entry) -> None:
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
            await self._make_room(e, need)
            device = await self._assign_device(e)
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
            await self._enforce_budget(protect=e)

    async def _start_worker(self, e: _Entry) -> None:
        """Spawns the worker for `e` on `e.device` and marks it warm (measuring its memory)."""
        t0 = time.perf_counter()
        worker = await WorkerProcess.start(
            e.spec, device=e.device or "cpu", load_timeout_s=self.config.load_timeout_s,
            log_dir=self.log_dir, on_exit=lambda w, ex: self._on_worker_exit(e, w, ex),
        )
        cold_ms = (time.perf_counter() - t0) * 1000.0
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

    async def _unload(self, e: _Entry, reason: str) -> None:
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

    # ---- internals: capacity --------------------------------------------------------------------

    @staticmethod
    def _is_resident(e: _Entry) -> bool:
        return e.state in (ModelState.WARM, ModelState.LOADING, ModelState.RESTARTING, ModelState.UNLOADING)

    def _memory_of(self, e: _Entry) -> float:
        if e.state is ModelState.WARM and e.worker is not None:
            measured = e.worker.rss_mb()
            if measured is not None:
                e.measured_mb = measured
                e.last_measured_mb = measured
            return e.measured_mb or 0.0
        if e.state in (ModelState.LOADING, ModelState.RESTARTING):
            return e.reserved_mb
        if e.state is ModelState.UNLOADING:
            return e.measured_mb or 0.0
        return 0.0

    def _candidates(self, exclude: tuple[_Entry, ...] | list[_Entry], device: str | None = None) -> list[Candidate]:
        return [
            Candidate(x.spec.id, x.last_used, x.use_count, x.sessions, x.pinned, x.inflight)
            for x in self._entries.values()
            if x.state is ModelState.WARM and x not in exclude and x.transition is None
            and (device is None or x.device == device)
        ]

    def _pick_victim(self, exclude: tuple[_Entry, ...] | list[_Entry], device: str | None = None) -> str | None:
        return pick_victim(self._candidates(exclude, device), self.config.eviction)

    async def _evict(self, victim_id: str) -> None:
        await self._run_transition(self._entries[victim_id], self._unload(self._entries[victim_id], reason="evicted"))

    async def _make_room(self, e: _Entry, need_mb: float) -> None:
        budget, max_models = self.config.memory_budget_mb, self.config.max_models
        while True:
            others = [x for x in self._entries.values() if x is not e and self._is_resident(x)]
            used = sum(self._memory_of(x) for x in others)
            if len(others) + 1 <= max_models and used + need_mb <= budget:
                return
            victim = self._pick_victim(exclude=(e,))
            if victim is None:
                held = ", ".join(
                    f"{x.spec.id} ({x.state.value}{', pinned' if x.pinned else ''}"
                    f"{f', {x.inflight} in flight' if x.inflight else ''}, {self._memory_of(x):.0f} MiB)"
                    for x in others
                )
                raise CapacityError(
                    f"cannot load {e.spec.id!r} (needs ~{need_mb:.0f} MiB): memory budget {budget:.0f} MiB, "
                    f"max_models {max_models}, and nothing can be evicted: {held or 'none loaded'}"
                )
            log.info("evicting", extra={"event": "evict", "model": victim, "for": e.spec.id,
                                        "policy": self.config.eviction, "used_mb": round(used, 1)})
            await self._evict(victim)

    async def _assign_device(self, e: _Entry) -> str:
        while True:
            device = self.devices.choose(e.spec)
            if device is not None:
                return device
            gpu_victims = [
                c for c in self._candidates(exclude=(e,))
                if self._entries[c.model_id].spec.device == "gpu"
            ]
            victim = pick_victim(gpu_victims, self.config.eviction)
            if victim is None:
                raise CapacityError(
                    f"cannot load {e.spec.id!r}: no GPU has {e.spec.gpu_memory_mb:.0f} MiB free "
                    "and no GPU model can be evicted"
                )
            await self._evict(victim)

    async def _enforce_budget(self, protect: _Entry | None) -> None:
        """Evicts until the measured total is within the budget (called with `_admission` held)."""
        budget = self.config.memory_budget_mb
        while self.used_mb() > budget:
            victim = self._pick_victim(exclude=(protect,) if protect else ())
            if victim is not None:
                await self._evict(victim)
                continue
            if protect is not None and protect.state is ModelState.WARM and self._memory_of(protect) > budget:
                msg = (f"model {protect.spec.id!r} measured {self._memory_of(protect):.0f} MiB, above the memory "
                       f"budget {budget:.0f} MiB")
                await self._unload(protect, reason="unloaded")
                protect.state, protect.last_error, protect.failed_at = ModelState.FAILED, msg, self._clock()
                raise CapacityError(msg)
            log.warning("over the memory budget and nothing can be evicted",
                        extra={"event": "over_budget", "used_mb": round(self.used_mb(), 1), "budget_mb": budget})
            return

    # ---- internals: crashes, health, idle ---------------------------------------------------------

    def _on_worker_exit(self, e: _Entry, worker: WorkerProcess, exit_info: WorkerExit) -> None:
        if e.worker is not worker or self._closed:
            return
        now = self._clock()
        e.worker, e.measured_mb = None, None
        e.stats.crashes += 1
        e.crash_streak = e.crash_streak + 1 if now - e.last_crash < _RESTART_STABLE_S else 1
        e.last_crash = now
        e.last_error = f"worker {exit_info.reason}"
        if e.crash_streak > self.config.max_restarts:
            e.state, e.failed_at = ModelState.FAILED, now
            self.devices.release(e.spec.id)
            msg = f"model {e.spec.id!r} worker {exit_info.reason}; {e.crash_streak} crashes in a row, not restarting"
            log.error("worker crashed; giving up", extra={"event": "worker_failed", "model": e.spec.id})
            self._emit(ModelEvent(e.spec.id, "failed", msg))
            return
        delay = min(self.config.restart_backoff_max_s, self.config.restart_backoff_s * 2 ** (e.crash_streak - 1))
        e.state, e.reserved_mb = ModelState.RESTARTING, e.last_measured_mb or 0.0
        log.error("worker crashed; restarting", extra={"event": "worker_crashed", "model": e.spec.id,
                                                       "pid": worker.pid, "exit": exit_info.reason,
                                                       "restart_in_s": delay, "streak": e.crash_streak})
        self._emit(ModelEvent(e.spec.id, "crashed",
                              f"model {e.spec.id!r} worker {exit_info.reason}; restarting in {delay:.1f} s"))
        self._set_transition(
            e, asyncio.get_running_loop().create_task(self._restart(e, delay), name=f"restart-{e.spec.id}")
        )

    async def _restart(self, e: _Entry, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        try:
            await self._start_worker(e)
        except WorkerStartError as exc:
            e.stats.load_failures += 1
            e.state, e.last_error, e.failed_at = ModelState.FAILED, str(exc), self._clock()
            self.devices.release(e.spec.id)
            self._emit(ModelEvent(e.spec.id, "failed", f"model {e.spec.id!r} failed to restart: {exc}"))
            raise ModelLoadError(str(exc)) from None
        e.stats.restarts += 1
        self._emit(
            ModelEvent(
                e.spec.id, "restarted", f"model {e.spec.id!r} restarted (pid {e.worker.pid if e.worker else '?'})"
            )
        )

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval_s)
            warm = [e for e in self._entries.values() if e.state is ModelState.WARM and e.worker is not None]
            await asyncio.gather(*(self._check(e) for e in warm))
            if not self._admission.locked():
                async with self._admission:
                    with contextlib.suppress(CapacityError):
                        await self._enforce_budget(protect=None)

    async def _check(self, e: _Entry) -> None:
        worker = e.worker
        if worker is None:
            return
        try:
            await worker.ping(self.config.ping_timeout_s)
        except WorkerTimeout:
            e.stats.health_failures += 1
            log.error("health check failed; killing the worker", extra={"event": "health_failed", "model": e.spec.id,
                                                                       "pid": worker.pid})
            worker.kill()
            return
        except (WorkerCrashed, WorkerRequestError):
            return
        self._memory_of(e)

    async def _idle_loop(self) -> None:
        ttl = self.config.idle_ttl_s
        period = max(0.05, min(ttl / 4.0, 5.0))
        while True:
            await asyncio.sleep(period)
            now = self._clock()
            for e in list(self._entries.values()):
                if (e.state is ModelState.WARM and not e.pinned and e.inflight == 0 and e.sessions == 0
                        and e.transition is None and now - e.last_used > ttl):
                    log.info("idle model", extra={"event": "idle_unload", "model": e.spec.id,
                                                  "idle_s": round(now - e.last_used, 1)})
                    async with self._admission:
                        if e.state is ModelState.WARM and e.inflight == 0 and e.transition is None:
                            await self._run_transition(e, self._unload(e, reason="idle"))

    def _emit(self, event: ModelEvent) -> None:
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:  # a listener's bug must not break the registry
                log.exception("model event listener failed", extra={"event": "listener_failed"})
