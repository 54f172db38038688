"""`ModelSpec`: how a model is named, built and run — the catalog entry shared by the registry,
its worker processes, the arena and the UI. Defined once; crosses the process boundary as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

BACKENDS = ("color-reach", "lerobot", "onnx", "openpi-remote", "scripted")
DEVICES = ("cpu", "gpu")


class ModelSpecError(ValueError):
    """A catalog entry that does not validate; the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class ModelSpec:
    """One model in the catalog.

    Attributes:
        id: the name clients use (``"color-reach"``, ``"color-reach-283ms"``, ``"onnx-tiny"``).
        backend: which `Policy` class builds it (one of `BACKENDS`).
        params: backend-specific keyword arguments (JSON-able).
        latency_ms: inference latency to emulate on top of the backend's own time (the latency
            wrapper; the arena counts it in sim time, the service in wall time). 0 = none.
        device: ``"cpu"`` or ``"gpu"``; GPU models take a device from the inventory.
        gpu_memory_mb: memory the model needs on its device (GPU accounting only).
        python: interpreter for this model's worker process (None: the service's own).
        description: one line for humans.
    """

    id: str
    backend: str
    params: Mapping[str, Any] = field(default_factory=dict)
    latency_ms: float = 0.0
    device: str = "cpu"
    gpu_memory_mb: float = 0.0
    python: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or any(c.isspace() or c == "/" for c in self.id):
            raise ModelSpecError(f"model id: expected a non-empty name without spaces or '/', got {self.id!r}")
        if self.backend not in BACKENDS:
            raise ModelSpecError(f"model {self.id!r} backend: expected one of {BACKENDS}, got {self.backend!r}")
        if self.device not in DEVICES:
            raise ModelSpecError(f"model {self.id!r} device: expected one of {DEVICES}, got {self.device!r}")
        if not isinstance(self.latency_ms, (int, float)) or not 0 <= float(self.latency_ms) <= 60_000:
            raise ModelSpecError(f"model {self.id!r} latency_ms: expected 0..60000, got {self.latency_ms!r}")
        if not isinstance(self.params, Mapping):
            raise ModelSpecError(f"model {self.id!r} params: expected a mapping, got {type(self.params).__name__}")

    def to_json(self) -> str:
        """Serialises the spec (the worker process receives it this way)."""
        d = asdict(self)
        d["params"] = dict(self.params)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Parses `to_json` output."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        """Builds a spec from a mapping (YAML catalog entry), refusing unknown keys."""
        allowed = set(cls.__dataclass_fields__)
        unknown = set(d) - allowed
        if unknown:
            raise ModelSpecError(f"model spec: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "id" not in d or "backend" not in d:
            raise ModelSpecError(f"model spec: 'id' and 'backend' are required, got keys {sorted(d)}")
        return cls(**dict(d))
