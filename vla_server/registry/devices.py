"""Device inventory: which device a model's worker runs on, and GPU memory accounting.

CPU models always run on ``cpu``. GPU models (``ModelSpec.device == "gpu"``) take a configured
``cuda:N`` device with room for ``ModelSpec.gpu_memory_mb``: ``round_robin`` walks the devices
in order from where it last stopped, ``least_loaded`` takes the one with the most free memory
(ties: fewer models, then configuration order). The worker sees only its GPU
(CUDA_VISIBLE_DEVICES).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vla_server.models import ModelSpec

ASSIGNMENTS = ("round_robin", "least_loaded")


@dataclass(frozen=True)
class DeviceSpec:
    """A configured device: ``cpu`` or ``cuda:N`` with its memory (MiB)."""

    id: str
    memory_mb: float = 0.0

    def __post_init__(self) -> None:
        if self.id != "cpu":
            idx = self.id.split(":", 1)[1] if self.id.startswith("cuda:") else ""
            if not idx.isdigit():
                raise ValueError(f"device id: expected 'cpu' or 'cuda:N', got {self.id!r}")
            if not (math.isfinite(self.memory_mb) and self.memory_mb > 0):
                raise ValueError(f"device {self.id}: memory_mb must be > 0, got {self.memory_mb}")

    @property
    def is_gpu(self) -> bool:
        return self.id != "cpu"


class NoDeviceError(ValueError):
    """No configured device can ever hold the model (no GPU, or every GPU too small)."""


class DeviceInventory:
    """Assignments of loaded models to devices. Not thread-safe (the registry's loop owns it)."""

    def __init__(self, devices: Sequence[DeviceSpec], strategy: str = "least_loaded") -> None:
        if strategy not in ASSIGNMENTS:
            raise ValueError(f"device assignment: expected one of {ASSIGNMENTS}, got {strategy!r}")
        ids = [d.id for d in devices]
        if len(set(ids)) != len(ids):
            raise ValueError(f"devices: duplicate ids in {ids}")
        self.strategy = strategy
        self.gpus = [d for d in devices if d.is_gpu]
        self._rr = 0
        self._assigned: dict[str, tuple[str, float]] = {}  # model id -> (device id, MiB)

    def used_mb(self, device_id: str) -> float:
        return sum(mb for dev, mb in self._assigned.values() if dev == device_id)

    def models_on(self, device_id: str) -> list[str]:
        return [m for m, (dev, _) in self._assigned.items() if dev == device_id]

    def device_of(self, model_id: str) -> str | None:
        entry = self._assigned.get(model_id)
        return entry[0] if entry else None

    def check_possible(self, spec: ModelSpec) -> None:
        """Raises `NoDeviceError` when no device could hold `spec` even with every GPU empty."""
        if spec.device != "gpu":
            return
        if not self.gpus:
            raise NoDeviceError(f"model {spec.id!r} needs a GPU; the configured devices have none")
        biggest = max(d.memory_mb for d in self.gpus)
        if spec.gpu_memory_mb > biggest:
            raise NoDeviceError(
                f"model {spec.id!r} needs {spec.gpu_memory_mb:.0f} MiB of GPU memory; "
                f"the largest GPU has {biggest:.0f} MiB"
            )

    def choose(self, spec: ModelSpec) -> str | None:
        """The device `spec` would get now, or None when every GPU is too full (evict first)."""
        self.check_possible(spec)
        if spec.device != "gpu":
            return "cpu"
        need = spec.gpu_memory_mb
        fits = [d for d in self.gpus if d.memory_mb - self.used_mb(d.id) >= need]
        if not fits:
            return None
        if self.strategy == "least_loaded":
            order = {d.id: i for i, d in enumerate(self.gpus)}
            best = max(fits, key=lambda d: (d.memory_mb - self.used_mb(d.id), -len(self.models_on(d.id)), -order[d.id]))
            return best.id
        for k in range(len(self.gpus)):
            d = self.gpus[(self._rr + k) % len(self.gpus)]
            if d in fits:
                self._rr = (self.gpus.index(d) + 1) % len(self.gpus)
                return d.id
        return None  # pragma: no cover -- fits is non-empty

    def allocate(self, model_id: str, device_id: str, memory_mb: float) -> None:
        self._assigned[model_id] = (device_id, memory_mb)

    def release(self, model_id: str) -> None:
        self._assigned.pop(model_id, None)

    def snapshot(self) -> list[dict[str, Any]]:
        """Per device: id, total and used MiB (GPUs), models on it."""
        out: list[dict[str, Any]] = [{"id": "cpu", "memory_mb": None, "used_mb": None, "models": self.models_on("cpu")}]
        for d in self.gpus:
            out.append(
                {"id": d.id, "memory_mb": d.memory_mb, "used_mb": self.used_mb(d.id), "models": self.models_on(d.id)}
            )
        return out
