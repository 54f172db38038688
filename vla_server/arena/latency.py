"""Inference latency in sim time: actions in flight, applied when their latency has elapsed.

An observation taken at physics step ``s`` yields an action whose target is fixed at once
(relative to the pose the policy saw) and applied at step ``s + d``, where ``d`` is the latency
rounded *up* to whole 2 ms physics steps (283 ms → 142 steps = 284 ms). Until then the
controller keeps the target in effect: the previous action's *effect* is held, not applied again.
Nothing waits in wall time.

If jitter lets a newer observation's action arrive first, the older one is dropped when it
arrives (counted as superseded): a robot never goes back to an older decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vla_server.arena.config import PHYSICS_HZ


@dataclass(frozen=True)
class LatencyModel:
    """Latency of one model: `mean_ms`, plus a uniform ± `jitter_ms` draw per inference."""

    mean_ms: float
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean_ms) and self.mean_ms >= 0):
            raise ValueError(f"latency: expected mean_ms >= 0, got {self.mean_ms}")
        if not (math.isfinite(self.jitter_ms) and self.jitter_ms >= 0):
            raise ValueError(f"latency: expected jitter_ms >= 0, got {self.jitter_ms}")

    def draw_ms(self, rng: np.random.Generator) -> float:
        """One latency, ms (the RNG is only used when there is jitter)."""
        if self.jitter_ms <= 0:
            return float(self.mean_ms)
        return max(0.0, float(self.mean_ms + rng.uniform(-self.jitter_ms, self.jitter_ms)))

    @staticmethod
    def to_steps(ms: float) -> int:
        """Latency in physics steps, rounded up (a 0 ms latency is 0 steps)."""
        return math.ceil(ms * PHYSICS_HZ / 1000.0 - 1e-9) if ms > 0 else 0


@dataclass(frozen=True)
class PendingAction:
    """An action computed but not applied yet.

    Attributes:
        apply_step: physics step at which it takes effect.
        obs_step: physics step of the observation it was computed from.
        action: (7,) the policy's action (see `robot_formats.action_space`).
        target_pos: (3,) TCP target it sets, m, base frame.
        target_quat_xyzw: (4,) TCP target orientation.
        gripper: gripper target, −1 open … +1 closed.
    """

    apply_step: int
    obs_step: int
    action: np.ndarray
    target_pos: np.ndarray
    target_quat_xyzw: np.ndarray
    gripper: float


class ActionPipeline:
    """Actions in flight, in the order they take effect.

    Attributes:
        held_obs_step: observation step of the action in effect (−1: none yet).
        superseded: actions dropped because a newer decision was already in effect.
    """

    def __init__(self, pending: list[PendingAction] | None = None, held_obs_step: int = -1) -> None:
        self._pending: list[PendingAction] = sorted(pending or [], key=lambda p: (p.apply_step, p.obs_step))
        self.held_obs_step = int(held_obs_step)
        self.superseded = 0

    @property
    def pending(self) -> list[PendingAction]:
        return list(self._pending)

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, item: PendingAction) -> None:
        self._pending.append(item)
        self._pending.sort(key=lambda p: (p.apply_step, p.obs_step))

    def next_due(self) -> int | None:
        """The step of the next action to take effect, or None when nothing is in flight."""
        return self._pending[0].apply_step if self._pending else None

    def pop_due(self, step: int) -> list[PendingAction]:
        """Removes and returns the actions due at or before `step` that still count, in order."""
        out: list[PendingAction] = []
        while self._pending and self._pending[0].apply_step <= step:
            item = self._pending.pop(0)
            if item.obs_step <= self.held_obs_step:
                self.superseded += 1
                continue
            self.held_obs_step = item.obs_step
            out.append(item)
        return out
