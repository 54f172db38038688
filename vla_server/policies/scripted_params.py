"""The `scripted` backend's parameters, checked without numpy: the service checks every catalog
entry at start (`vla_server.policies.factory.check_spec`) and builds the policy only in its worker
(`vla_server.policies.scripted`, which reads them through `parse_scripted_params` too)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from robot_formats.action_limits import ACTION_DIM, GRIPPER_OPEN

KNOWN = frozenset({"action", "sequence", "horizon", "infer_ms", "load_ms", "memory_mb", "fail_instruction",
                   "reject_instruction", "nan_instruction", "load_error"})


@dataclass(frozen=True)
class ScriptedParams:
    """Checked parameters (see `vla_server.policies.scripted` for their meaning); times in s."""

    rows: tuple[tuple[float, ...], ...]
    horizon: int
    infer_s: float
    load_s: float
    memory_mb: float
    fail_instruction: Any
    reject_instruction: Any
    nan_instruction: Any
    load_error: Any


def _shape(value: object) -> tuple[int, ...]:
    """The shape numpy would give `value` (nested lists of equal lengths), for the error text."""
    if not isinstance(value, (list, tuple)):
        return ()
    inner = {_shape(v) for v in value}
    return (len(value), *next(iter(inner))) if len(inner) == 1 else (len(value),)


def parse_scripted_params(params: Mapping[str, Any] | None) -> ScriptedParams:
    """Checks `params`; raises ValueError (unknown key, rows that are not (N, 7) numbers, horizon < 1)."""
    p = dict(params or {})
    unknown = set(p) - KNOWN
    if unknown:
        raise ValueError(f"scripted params: unknown keys {sorted(unknown)}; allowed {sorted(KNOWN)}")
    default = [0.0] * (ACTION_DIM - 1) + [GRIPPER_OPEN]
    rows = p.get("sequence") or [p.get("action", default)]
    shape = _shape(rows)
    if len(shape) != 2 or shape[1] != ACTION_DIM or shape[0] == 0:
        raise ValueError(f"scripted action/sequence: expected rows of {ACTION_DIM} numbers, got shape {shape}")
    horizon = int(p.get("horizon", 1))
    if horizon < 1:
        raise ValueError(f"scripted horizon: expected >= 1, got {horizon}")
    return ScriptedParams(
        rows=tuple(tuple(float(v) for v in row) for row in rows),
        horizon=horizon,
        infer_s=float(p.get("infer_ms", 0.0)) / 1000.0,
        load_s=float(p.get("load_ms", 0.0)) / 1000.0,
        memory_mb=float(p.get("memory_mb", 0.0)),
        fail_instruction=p.get("fail_instruction"),
        reject_instruction=p.get("reject_instruction"),
        nan_instruction=p.get("nan_instruction"),
        load_error=p.get("load_error"),
    )
