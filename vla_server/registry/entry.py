"""`ModelEntry`: what the registry knows about one catalog model — its state, worker, device,
use counters, memory figures, crash streak and the transition (load, unload, restart) running."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from vla_server.models import ModelSpec
from vla_server.registry.stats import ModelStats
from vla_server.registry.types import ModelState
from vla_server.workers.process import WorkerProcess


@dataclass
class ModelEntry:
    """One catalog model's state in the registry (owned by the registry's event loop)."""

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
