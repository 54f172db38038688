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
    nan_instruction: `infer` returns NaN actions when the instruction contains this text.
    load_error: `load` raises RuntimeError with this text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_formats.action_space import ACTION_DIM, GRIPPER_OPEN
from vla_server.policies.base import Observation, Policy, PolicyInfo

_KNOWN = {"action", "sequence", "horizon", "infer_ms", "load_ms", "memory_mb", "fail_instruction",
          "nan_instruction", "load_error"}


class ScriptedPolicy(Policy):
    """Returns parameter-defined actions; see the module docstring for `params`."""

    def __init__(self, name: str = "scripted", params: Mapping[str, Any] | None = None) -> None:
        p = dict(params or {})
        unknown = set(p) - _KNOWN
        if unknown:
            raise ValueError(f"scripted params: unknown keys {sorted(unknown)}; allowed {sorted(_KNOWN)}")
        self.name = name
        default = [0.0] * (ACTION_DIM - 1) + [GRIPPER_OPEN]
        rows = p.get("sequence") or [p.get("action", default)]
        self._sequence = np.asarray(rows, dtype=np.float64)
        if self._sequence.ndim != 2 or self._sequence.shape[1] != ACTION_DIM or len(self._sequence) == 0:
            raise ValueError(
                f"scripted action/sequence: expected rows of {ACTION_DIM} numbers, got shape {self._sequence.shape}"
            )
        self._horizon = int(p.get("horizon", 1))
        if self._horizon < 1:
            raise ValueError(f"scripted horizon: expected >= 1, got {self._horizon}")
        self._offsets = np.arange(self._horizon)
        self._infer_s = float(p.get("infer_ms", 0.0)) / 1000.0
        self._load_s = float(p.get("load_ms", 0.0)) / 1000.0
        self._memory_mb = float(p.get("memory_mb", 0.0))
        self._fail = p.get("fail_instruction")
        self._nan = p.get("nan_instruction")
        self._load_error = p.get("load_error")
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
        chunk = self._sequence[(obs.step + self._offsets) % len(self._sequence)]  # a copy (fancy indexing)
        if self._nan and self._nan in obs.instruction:
            chunk[:] = np.nan
        return chunk

    def close(self) -> None:
        self._ballast = None
