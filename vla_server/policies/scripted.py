"""`scripted`: a deterministic policy defined entirely by its parameters — for tests, benchmarks
and demos of the service machinery (workers, memory accounting, eviction, failures) without a
real model.

Params (all optional):
    action: (7,) returned for every frame (default: hold, gripper open).
    sequence: list of (7,) actions; frame ``step`` gets ``sequence[step % len]`` (wins over action).
    horizon: rows of the returned chunk (row k is the action of step + k); default 1.
    infer_ms: wall time each `infer` spends busy (real compute stand-in; default 0).
    load_ms: wall time `load` takes (cold-start stand-in; default 0).
    memory_mb: MiB allocated and touched at load, so the worker's measured RSS grows (default 0).
    fail_instruction: `infer` raises RuntimeError when the instruction contains this text.
    reject_instruction: `infer` raises `BadInput` (the request's fault) when the instruction contains it.
    nan_instruction: `infer` returns NaN actions when the instruction contains this text.
    load_error: `load` raises RuntimeError with this text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from vla_server.policies.base import BadInput, Observation, Policy, PolicyInfo
from vla_server.policies.scripted_params import parse_scripted_params


class ScriptedPolicy(Policy):
    """Returns parameter-defined actions; see the module docstring for `params`."""

    def __init__(self, name: str = "scripted", params: Mapping[str, Any] | None = None) -> None:
        p = parse_scripted_params(params)
        self.name = name
        self._sequence = np.asarray(p.rows, dtype=np.float64)
        self._horizon = p.horizon
        self._offsets = np.arange(self._horizon)
        self._infer_s = p.infer_s
        self._load_s = p.load_s
        self._memory_mb = p.memory_mb
        self._fail = p.fail_instruction
        self._reject = p.reject_instruction
        self._nan = p.nan_instruction
        self._load_error = p.load_error
        self._ballast: np.ndarray | None = None

    def info(self) -> PolicyInfo:
        return PolicyInfo(
            name=self.name,
            backend="scripted",
            action_horizon=self._horizon,
            description="deterministic parameter-defined actions (tests, benchmarks)",
            extra={"memory_mb": self._memory_mb, "infer_ms": self._infer_s * 1000.0},
        )

    def load(self) -> None:
        if self._load_s > 0:
            time.sleep(self._load_s)
        if self._load_error:
            raise RuntimeError(str(self._load_error))
        if self._memory_mb > 0:
            self._ballast = np.ones(int(self._memory_mb * 1024 * 1024), dtype=np.uint8)  # touched: resident

    def infer(self, obs: Observation) -> np.ndarray:
        if self._infer_s > 0:
            time.sleep(self._infer_s)
        if self._fail and self._fail in obs.instruction:
            raise RuntimeError(f"scripted failure requested by instruction {obs.instruction!r}")
        if self._reject and self._reject in obs.instruction:
            raise BadInput(f"instruction {obs.instruction!r} is not one this policy knows")
        chunk = self._sequence[(obs.step + self._offsets) % len(self._sequence)]  # a copy (fancy indexing)
        if self._nan and self._nan in obs.instruction:
            chunk[:] = np.nan
        return chunk

    def close(self) -> None:
        self._ballast = None
