"""Exponential moving average over a session's actions.

``s_t = α·a_t + (1 − α)·s_{t−1}``, ``s_0 = a_0``; α = 1 returns the raw actions. Only the six
motion values are smoothed: the gripper value is a discrete command (−1 open, +1 closed) that an
average would turn into a meaningless half-closed target, so it passes through unchanged.
"""

from __future__ import annotations

import numpy as np

from robot_formats.action_space import ACTION_DIM, MOTION_DIM


class EmaSmoother:
    """Per-session EMA state. Not thread-safe (one session task owns it)."""

    def __init__(self, alpha: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"smoothing alpha: expected 0 < alpha <= 1, got {alpha}")
        self.alpha = float(alpha)
        self._state: np.ndarray | None = None

    def apply(self, action: np.ndarray) -> np.ndarray:
        """Returns the smoothed (7,) action and updates the state; `action` must be finite."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (ACTION_DIM,):
            raise ValueError(f"expected an action of shape ({ACTION_DIM},), got {a.shape}")
        if self._state is None:
            self._state = a.copy()
        else:
            self._state[:MOTION_DIM] = self.alpha * a[:MOTION_DIM] + (1.0 - self.alpha) * self._state[:MOTION_DIM]
            self._state[MOTION_DIM:] = a[MOTION_DIM:]
        return self._state.copy()

    def reset(self) -> None:
        """Forgets the history (the next action passes unchanged)."""
        self._state = None
