"""`Placement`: where models fit — memory accounting (measured RSS of live workers, reservations
of loading ones), the eviction victim (LRU/LFU through `pick_victim`), making room before a load,
choosing a device, and enforcing the memory budget after one. Called by `ModelRegistry` with its
admission lock held; it evicts through the registry's transition machinery (`evict`, `unload`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from vla_server.registry.config import RegistryConfig
from vla_server.registry.devices import DeviceInventory
from vla_server.registry.entry import ModelEntry
from vla_server.registry.errors import CapacityError
from vla_server.registry.eviction import Candidate, pick_victim
from vla_server.registry.types import ModelState

log = logging.getLogger("vla_server.registry")


class Placement:
    """Capacity decisions over the registry's entries.

    Args:
        entries: model id → entry (the registry's own mapping).
        config: budget, max_models, eviction policy.
        devices: the device inventory.
        evict: ``await evict(model_id)`` unloads a model as an eviction (a registry transition).
        unload: ``await unload(entry, reason)`` stops a model's worker at once.
        clock: monotonic seconds.
    """

    def __init__(self, entries: Mapping[str, ModelEntry], config: RegistryConfig, devices: DeviceInventory,
                 evict: Callable[[str], Awaitable[None]], unload: Callable[[ModelEntry, str], Awaitable[None]],
                 clock: Callable[[], float]) -> None:
        self._entries = entries
        self.config = config
        self.devices = devices
        self._evict = evict
        self._unload = unload
        self._clock = clock

    def used_mb(self) -> float:
        """Memory accounted now: measured RSS of live workers + reservations of loading ones."""
        return sum(self.memory_of(e) for e in self._entries.values())


    @staticmethod
    def is_resident(e: ModelEntry) -> bool:
        return e.state in (ModelState.WARM, ModelState.LOADING, ModelState.RESTARTING, ModelState.UNLOADING)

    def memory_of(self, e: ModelEntry) -> float:
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

    def candidates(self, exclude: tuple[ModelEntry, ...] | list[ModelEntry],
                   device: str | None = None) -> list[Candidate]:
        return [
            Candidate(x.spec.id, x.last_used, x.use_count, x.sessions, x.pinned, x.inflight)
            for x in self._entries.values()
            if x.state is ModelState.WARM and x not in exclude and x.transition is None
            and (device is None or x.device == device)
        ]

    def pick_victim(self, exclude: tuple[ModelEntry, ...] | list[ModelEntry], device: str | None = None) -> str | None:
        return pick_victim(self.candidates(exclude, device), self.config.eviction)

    async def evict(self, victim_id: str) -> None:
        await self._evict(victim_id)

    async def make_room(self, e: ModelEntry, need_mb: float) -> None:
        budget, max_models = self.config.memory_budget_mb, self.config.max_models
        while True:
            others = [x for x in self._entries.values() if x is not e and self.is_resident(x)]
            used = sum(self.memory_of(x) for x in others)
            if len(others) + 1 <= max_models and used + need_mb <= budget:
                return
            victim = self.pick_victim(exclude=(e,))
            if victim is None:
                held = ", ".join(
                    f"{x.spec.id} ({x.state.value}{', pinned' if x.pinned else ''}"
                    f"{f', {x.inflight} in flight' if x.inflight else ''}, {self.memory_of(x):.0f} MiB)"
                    for x in others
                )
                raise CapacityError(
                    f"cannot load {e.spec.id!r} (needs ~{need_mb:.0f} MiB): memory budget {budget:.0f} MiB, "
                    f"max_models {max_models}, and nothing can be evicted: {held or 'none loaded'}"
                )
            log.info("evicting", extra={"event": "evict", "model": victim, "for": e.spec.id,
                                        "policy": self.config.eviction, "used_mb": round(used, 1)})
            await self.evict(victim)

    async def assign_device(self, e: ModelEntry) -> str:
        while True:
            device = self.devices.choose(e.spec)
            if device is not None:
                return device
            gpu_victims = [
                c for c in self.candidates(exclude=(e,))
                if self._entries[c.model_id].spec.device == "gpu"
            ]
            victim = pick_victim(gpu_victims, self.config.eviction)
            if victim is None:
                raise CapacityError(
                    f"cannot load {e.spec.id!r}: no GPU has {e.spec.gpu_memory_mb:.0f} MiB free "
                    "and no GPU model can be evicted"
                )
            await self.evict(victim)

    async def enforce_budget(self, protect: ModelEntry | None) -> None:
        """Evicts until the measured total is within the budget (called with `_admission` held)."""
        budget = self.config.memory_budget_mb
        while self.used_mb() > budget:
            victim = self.pick_victim(exclude=(protect,) if protect else ())
            if victim is not None:
                await self.evict(victim)
                continue
            if protect is not None and protect.state is ModelState.WARM and self.memory_of(protect) > budget:
                msg = (f"model {protect.spec.id!r} measured {self.memory_of(protect):.0f} MiB, above the memory "
                       f"budget {budget:.0f} MiB")
                await self._unload(protect, "unloaded")
                protect.state, protect.last_error, protect.failed_at = ModelState.FAILED, msg, self._clock()
                raise CapacityError(msg)
            log.warning("over the memory budget and nothing can be evicted",
                        extra={"event": "over_budget", "used_mb": round(self.used_mb(), 1), "budget_mb": budget})
            return
