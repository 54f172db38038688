"""Which policy a model id is: providers, and the importable recipe that rebuilds one anywhere.

An episode runs its policy in-process (in a pool worker or a Ray task), built from the same
catalog as the service (`vla_server.catalog`, `vla_server.policies.factory.build_policy`) but
without the latency wrapper: the arena counts latency in sim time. A worker keeps each policy it
has loaded for the next episode.

`ProviderRef` names a provider class by import path plus JSON keyword arguments, so a spawned
process or a Ray worker on another machine can rebuild it (no pickled objects travel).
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vla_server.models import ModelSpec
from vla_server.policies.base import Policy

DEFAULT_PROVIDER = "vla_server.arena.models:CatalogProvider"


class ModelNotFound(KeyError):
    """A model id the provider does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model"


class PolicyProvider(Protocol):
    """Gives loaded policies by model id."""

    def spec(self, model_id: str) -> ModelSpec:
        """The model's catalog entry (raises `ModelNotFound`)."""

    def policy(self, model_id: str) -> Policy:
        """The model's policy, loaded (built and loaded on first use, then reused)."""

    def models(self) -> list[ModelSpec]:
        """Every model the provider can run."""


class CatalogProvider:
    """Policies from the service's model catalog.

    Args:
        catalog: catalog file (YAML); None = the service's default.
    """

    def __init__(self, catalog: str | None = None) -> None:
        self.catalog = catalog
        self._specs: dict[str, ModelSpec] | None = None
        self._policies: dict[str, Policy] = {}
        self._lock = threading.Lock()

    def _load_specs(self) -> dict[str, ModelSpec]:
        if self._specs is None:
            from vla_server.catalog import load_catalog

            loaded: Any = load_catalog(self.catalog) if self.catalog else load_catalog()
            items = loaded.values() if isinstance(loaded, Mapping) else loaded
            self._specs = {s.id: s for s in items}
        return self._specs

    def spec(self, model_id: str) -> ModelSpec:
        specs = self._load_specs()
        if model_id not in specs:
            raise ModelNotFound(f"unknown model {model_id!r}; the catalog has {sorted(specs)}")
        return specs[model_id]

    def policy(self, model_id: str) -> Policy:
        with self._lock:
            if model_id not in self._policies:
                from vla_server.policies.factory import build_policy

                p = build_policy(self.spec(model_id), emulate_latency=False)
                p.load()
                self._policies[model_id] = p
            return self._policies[model_id]

    def models(self) -> list[ModelSpec]:
        return list(self._load_specs().values())


@dataclass(frozen=True)
class ProviderRef:
    """How to build a provider anywhere: ``target`` = "package.module:Class", JSON `kwargs`."""

    target: str = DEFAULT_PROVIDER
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if ":" not in self.target:
            raise ValueError(f"provider: expected 'package.module:Name', got {self.target!r}")
        json.dumps(dict(self.kwargs))  # must be JSON: it crosses process and machine boundaries

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProviderRef:
        return cls(str(d.get("target", DEFAULT_PROVIDER)), dict(d.get("kwargs") or {}))

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def build(self) -> PolicyProvider:
        """The provider, made once per process per recipe (so loaded policies are reused)."""
        with _CACHE_LOCK:
            k = self.key()
            if k not in _CACHE:
                module, name = self.target.split(":", 1)
                factory = getattr(importlib.import_module(module), name)
                _CACHE[k] = factory(**dict(self.kwargs))
            return _CACHE[k]


_CACHE: dict[str, PolicyProvider] = {}
_CACHE_LOCK = threading.Lock()
