"""`build_policy(spec)`: the one place a `ModelSpec` becomes a `Policy`.

Backends are imported lazily, so a worker process only imports what its model needs (a worker
for `scripted` does not pay for onnxruntime or MuJoCo).
"""

from __future__ import annotations

from collections.abc import Callable

from vla_server.models import ModelSpec
from vla_server.policies.base import Policy


def _scripted(spec: ModelSpec) -> Policy:
    from vla_server.policies.scripted import ScriptedPolicy

    return ScriptedPolicy(spec.id, spec.params)


BUILDERS: dict[str, Callable[[ModelSpec], Policy]] = {
    "scripted": _scripted,
}


def build_policy(spec: ModelSpec, emulate_latency: bool = True) -> Policy:
    """Builds (does not load) the policy `spec` names.

    Args:
        spec: the catalog entry.
        emulate_latency: wrap it in the latency wrapper when ``spec.latency_ms > 0`` (the service
            does; the arena counts latency in sim time instead).

    Raises:
        ValueError: the backend is not available in this build.
    """
    builder = BUILDERS.get(spec.backend)
    if builder is None:
        raise ValueError(f"model {spec.id!r}: backend {spec.backend!r} is not available; built: {sorted(BUILDERS)}")
    policy = builder(spec)
    if emulate_latency and spec.latency_ms > 0:
        from vla_server.policies.latency import LatencyPolicy  # type: ignore[import-not-found]

        policy = LatencyPolicy(policy, spec.latency_ms)
    return policy
