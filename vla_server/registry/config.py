"""`RegistryConfig`: how many models stay loaded, how they are evicted, health checks, devices."""

from __future__ import annotations

import math
from dataclasses import dataclass

from vla_server.constants import (
    DEFAULT_HEALTH_INTERVAL_S,
    DEFAULT_IDLE_TTL_S,
    DEFAULT_INFER_TIMEOUT_S,
    DEFAULT_LOAD_TIMEOUT_S,
    DEFAULT_MAX_MODELS,
    DEFAULT_MEMORY_BUDGET_MB,
    DEFAULT_NEW_MODEL_ESTIMATE_MB,
    DEFAULT_PING_TIMEOUT_S,
    DEFAULT_RESTART_BACKOFF_MAX_S,
    DEFAULT_RESTART_BACKOFF_S,
)
from vla_server.registry.devices import ASSIGNMENTS, DeviceSpec
from vla_server.registry.eviction import EVICTION_POLICIES


@dataclass(frozen=True)
class RegistryConfig:
    """Registry settings.

    Attributes:
        eviction: ``lru`` or ``lfu``.
        memory_budget_mb: measured RSS of all workers must stay within this (MiB).
        max_models: workers alive at once.
        idle_ttl_s: a warm model unused this long (and with no open session) is unloaded; 0 = never.
        pinned: models loaded at start and never evicted or idle-unloaded.
        preload: models loaded at start (evictable).
        health_interval_s: period of worker pings and memory measurement.
        ping_timeout_s: a ping unanswered this long marks the worker hung (killed, restarted).
        load_timeout_s: a worker not ready within this is killed (load failure).
        infer_timeout_s: a request unanswered this long marks the worker hung.
        restart_backoff_s / restart_backoff_max_s: delay before restarting a crashed worker,
            doubling per crash in a row up to the maximum.
        max_restarts: crashes in a row (each within a minute of the last) before giving up
            (state ``failed``; the next use tries again).
        load_retry_s: after a failed load, requests fail at once with the load's error for this
            long instead of spawning again (an explicit load retries at once).
        new_model_estimate_mb: memory assumed for a model never measured, to make room before
            loading it (replaced by its measured RSS afterwards).
        devices: the device inventory (``cpu`` plus configured GPUs).
        assignment: ``round_robin`` or ``least_loaded`` over GPUs.
    """

    eviction: str = "lru"
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB
    max_models: int = DEFAULT_MAX_MODELS
    idle_ttl_s: float = DEFAULT_IDLE_TTL_S
    pinned: tuple[str, ...] = ()
    preload: tuple[str, ...] = ()
    health_interval_s: float = DEFAULT_HEALTH_INTERVAL_S
    ping_timeout_s: float = DEFAULT_PING_TIMEOUT_S
    load_timeout_s: float = DEFAULT_LOAD_TIMEOUT_S
    infer_timeout_s: float = DEFAULT_INFER_TIMEOUT_S
    restart_backoff_s: float = DEFAULT_RESTART_BACKOFF_S
    restart_backoff_max_s: float = DEFAULT_RESTART_BACKOFF_MAX_S
    max_restarts: int = 5
    load_retry_s: float = 5.0
    new_model_estimate_mb: float = DEFAULT_NEW_MODEL_ESTIMATE_MB
    devices: tuple[DeviceSpec, ...] = (DeviceSpec("cpu"),)
    assignment: str = "least_loaded"

    def __post_init__(self) -> None:
        if self.eviction not in EVICTION_POLICIES:
            raise ValueError(f"registry.eviction: expected one of {EVICTION_POLICIES}, got {self.eviction!r}")
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(f"registry.assignment: expected one of {ASSIGNMENTS}, got {self.assignment!r}")
        if not isinstance(self.max_models, int) or self.max_models < 1:
            raise ValueError(f"registry.max_models: expected an integer >= 1, got {self.max_models!r}")
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ValueError(f"registry.max_restarts: expected an integer >= 0, got {self.max_restarts!r}")
        positive = ("memory_budget_mb", "health_interval_s", "ping_timeout_s", "load_timeout_s",
                    "infer_timeout_s", "restart_backoff_s", "restart_backoff_max_s", "new_model_estimate_mb")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"registry.{name}: expected a positive number, got {value!r}")
        if (
            not isinstance(self.load_retry_s, (int, float))
            or not math.isfinite(self.load_retry_s)
            or self.load_retry_s < 0
        ):
            raise ValueError(f"registry.load_retry_s: expected >= 0, got {self.load_retry_s!r}")
        if not isinstance(self.idle_ttl_s, (int, float)) or not math.isfinite(self.idle_ttl_s) or self.idle_ttl_s < 0:
            raise ValueError(f"registry.idle_ttl_s: expected >= 0 (0 = never), got {self.idle_ttl_s!r}")
        if len(self.pinned) > self.max_models:
            raise ValueError(f"registry.pinned: {len(self.pinned)} pinned models exceed max_models {self.max_models}")
