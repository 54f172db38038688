"""`build_policy(spec)`: the one place a `ModelSpec` becomes a `Policy`.

Backends are imported lazily, so a worker process only imports what its model needs (a worker
for `scripted` does not pay for onnxruntime or MuJoCo). Building is cheap and checks the
parameters (`check_spec`); the heavy part (weights, scene, connections) happens in `Policy.load`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vla_server.models import ModelSpec
from vla_server.policies.params import PolicyParamsError, parse_params

if TYPE_CHECKING:  # the backends import numpy; checking a spec needs none (`CHECKERS`)
    from vla_server.policies.base import Policy


def _scripted(spec: ModelSpec) -> Policy:
    from vla_server.policies.scripted import ScriptedPolicy

    try:
        return ScriptedPolicy(spec.id, spec.params)
    except (TypeError, ValueError) as exc:
        raise PolicyParamsError(f"model {spec.id!r}: {exc}") from exc


def _color_reach(spec: ModelSpec) -> Policy:
    from vla_server.policies.color_reach import ColorReachParams, ColorReachPolicy

    return ColorReachPolicy(parse_params(ColorReachParams, spec.params, spec.id))


def _onnx(spec: ModelSpec) -> Policy:
    from vla_server.policies.onnx_policy import OnnxParams, OnnxPolicy

    return OnnxPolicy(parse_params(OnnxParams, spec.params, spec.id))


def _openpi_remote(spec: ModelSpec) -> Policy:
    from vla_server.policies.openpi_remote import OpenPIRemoteParams, OpenPIRemotePolicy

    return OpenPIRemotePolicy(parse_params(OpenPIRemoteParams, spec.params, spec.id))


def _lerobot(spec: ModelSpec) -> Policy:
    from vla_server.policies.lerobot_policy import LeRobotParams, LeRobotPolicy

    return LeRobotPolicy(parse_params(LeRobotParams, spec.params, spec.id))


BUILDERS: dict[str, Callable[[ModelSpec], Policy]] = {
    "color-reach": _color_reach,
    "lerobot": _lerobot,
    "onnx": _onnx,
    "openpi-remote": _openpi_remote,
    "scripted": _scripted,
}


def _check_scripted(spec: ModelSpec) -> None:
    from vla_server.policies.scripted_params import parse_scripted_params

    try:
        parse_scripted_params(spec.params)
    except (TypeError, ValueError) as exc:
        raise PolicyParamsError(f"model {spec.id!r}: {exc}") from exc


CHECKERS: dict[str, Callable[[ModelSpec], None]] = {"scripted": _check_scripted}
"""Backends whose parameters are checked without building the policy (nor importing numpy)."""


def build_policy(spec: ModelSpec, emulate_latency: bool = True, isolate: bool = True) -> Policy:
    """Builds (does not load) the policy `spec` names.

    Args:
        spec: the catalog entry.
        emulate_latency: wrap it in the latency wrapper when ``spec.latency_ms > 0`` (the service
            does; the arena counts latency in sim time instead).
        isolate: a spec naming another interpreter (``python:``) gives a `WorkerPolicy` that runs
            the model in a worker subprocess of that interpreter (the arena); False builds the
            backend here (the worker process itself does).

    Raises:
        ValueError: the backend is not available in this build.
        PolicyParamsError: a parameter is unknown or invalid (a ValueError).
    """
    builder = BUILDERS.get(spec.backend)
    if builder is None:
        raise ValueError(f"model {spec.id!r}: backend {spec.backend!r} is not available; built: {sorted(BUILDERS)}")
    policy = builder(spec)  # checks the parameters even when the model runs elsewhere
    if isolate and spec.python:
        from vla_server.workers.local import WorkerPolicy

        policy.close()
        policy = WorkerPolicy(spec)
    if emulate_latency and spec.latency_ms > 0:
        from vla_server.policies.latency import LatencyPolicy

        policy = LatencyPolicy(policy, spec.latency_ms)
    return policy


def check_spec(spec: ModelSpec) -> None:
    """Validates `spec`'s backend parameters without loading anything.

    Raises:
        ValueError: unknown backend or bad parameters (the message names the model and key).
    """
    check = CHECKERS.get(spec.backend)
    if check is not None and not spec.python:
        check(spec)
        return
    build_policy(spec, emulate_latency=False).close()
