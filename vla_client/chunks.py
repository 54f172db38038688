"""Scheduling of action chunks from policies that answer one observation with H future actions.

Timing model (all times on one monotonic clock, seconds): a chunk answers the observation taken
at ``t_obs``; its row ``i`` is the action for the interval ``[t_obs + i·dt, t_obs + (i+1)·dt)``
(``dt``: the policy's action period). A chunk arriving at ``t_arr`` (inference plus network
latency later) has its first ``floor((t_arr − t_obs) / dt)`` rows already in the past: they are
skipped (latency-aware prefix skipping, as in real-time chunking), and a chunk whose every row is
past is discarded. A chunk is never used for a time before it arrived.

At time ``t`` every kept chunk whose rows cover ``t`` proposes its row for ``t``; the scheme picks:

* ``"ensemble"`` — temporal ensembling as in ACT (Zhao et al., 2023): the proposals, ordered
  oldest observation first (j = 0, 1, …), are averaged with weights ``w_j = exp(−k·j)``,
  normalised. ``k > 0`` favours older chunks (ACT's choice, smoother; ACT uses k = 0.01),
  ``k = 0`` is a plain mean, ``k < 0`` favours newer ones (more reactive). At most
  `max_chunks` newest proposals take part.
* ``"latest"`` — the chunk from the newest observation alone (no blending).

The blend is a convex combination, so every component stays within the proposals' range (and in
[−1, 1] when they are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Scheme = Literal["ensemble", "latest"]
SCHEMES: tuple[Scheme, ...] = ("ensemble", "latest")
_EPS = 1e-9  # s; guards floor() against float error at row boundaries


@dataclass(frozen=True)
class Chunk:
    """One reply: rows (H, D) answering the observation `frame_id` taken at `t_obs`."""

    frame_id: int
    t_obs: float
    t_arrival: float
    actions: np.ndarray
    first_row: int  # rows before this were already past on arrival

    def row_at(self, t: float, dt: float) -> int | None:
        """The row covering time `t`, or None (before arrival, skipped, or beyond the horizon)."""
        if t + _EPS < self.t_arrival:
            return None
        i = math.floor((t - self.t_obs) / dt + _EPS)
        if i < self.first_row or i >= len(self.actions):
            return None
        return i

    def end(self, dt: float) -> float:
        """When its last row's interval ends, s."""
        return self.t_obs + len(self.actions) * dt


@dataclass(frozen=True)
class ScheduledAction:
    """The action for time `t` and where it came from.

    Attributes:
        t: the time it is for, s (scheduler clock).
        action: (D,) the blended row.
        frame_id, t_obs: the newest contributing observation.
        sources: (frame_id, row, weight) of every contributing chunk, weights summing to 1.
    """

    t: float
    action: np.ndarray
    frame_id: int
    t_obs: float
    sources: tuple[tuple[int, int, float], ...]


class ChunkScheduler:
    """Keeps recent chunks and answers `action_at(t)`; pure (no clock of its own).

    Args:
        dt_s: the policy's action period, s (row spacing).
        scheme: ``"ensemble"`` or ``"latest"`` (see the module docstring).
        ensemble_k: ACT's weight decay per chunk (ensemble only).
        max_chunks: most proposals blended; older chunks beyond it are ignored.
    """

    def __init__(self, dt_s: float, scheme: Scheme = "ensemble", ensemble_k: float = 0.01, max_chunks: int = 8) -> None:
        if not (math.isfinite(dt_s) and dt_s > 0):
            raise ValueError(f"dt_s: expected a positive period in s, got {dt_s}")
        if scheme not in SCHEMES:
            raise ValueError(f"scheme: expected one of {SCHEMES}, got {scheme!r}")
        if not math.isfinite(ensemble_k) or abs(ensemble_k) > 10:
            raise ValueError(f"ensemble_k: expected a finite decay in [-10, 10], got {ensemble_k}")
        if max_chunks < 1:
            raise ValueError(f"max_chunks: expected >= 1, got {max_chunks}")
        self.dt = dt_s
        self.scheme = scheme
        self.k = ensemble_k
        self.max_chunks = max_chunks
        self.chunks: list[Chunk] = []
        self.chunks_added = 0
        self.chunks_discarded = 0  # wholly past on arrival
        self.rows_skipped = 0  # past on arrival (prefix skipping), including discarded chunks' rows

    def add(self, frame_id: int, t_obs: float, t_arrival: float, actions: np.ndarray) -> int:
        """Adds a chunk; returns how many of its rows were already past on arrival.

        Raises:
            ValueError: not an (H, D) finite array with H >= 1, D matching earlier chunks, or
                arriving before its observation.
        """
        rows = np.asarray(actions, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] < 1 or rows.shape[1] < 1:
            raise ValueError(f"chunk: expected actions of shape (H, D), got {rows.shape}")
        if self.chunks and rows.shape[1] != self.chunks[-1].actions.shape[1]:
            raise ValueError(f"chunk: expected width {self.chunks[-1].actions.shape[1]}, got {rows.shape[1]}")
        if not np.all(np.isfinite(rows)):
            raise ValueError("chunk: actions contain NaN or inf")
        if not (math.isfinite(t_obs) and math.isfinite(t_arrival)) or t_arrival + _EPS < t_obs:
            raise ValueError(f"chunk: arrival {t_arrival} before its observation {t_obs}")
        first = max(0, math.floor((t_arrival - t_obs) / self.dt + _EPS))
        self.chunks_added += 1
        self.prune(t_arrival)
        if first >= len(rows):
            self.chunks_discarded += 1
            self.rows_skipped += len(rows)
            return len(rows)
        self.rows_skipped += first
        self.chunks.append(Chunk(frame_id, t_obs, t_arrival, rows, first))
        self.chunks.sort(key=lambda c: (c.t_obs, c.t_arrival))
        return first

    def prune(self, now: float) -> None:
        """Forgets chunks whose last row ended before `now`."""
        self.chunks = [c for c in self.chunks if c.end(self.dt) > now + _EPS]

    def covered_until(self, now: float) -> float:
        """The latest time any kept chunk covers from `now` on, or `now` when none (s)."""
        ends = [c.end(self.dt) for c in self.chunks if c.t_arrival <= now + _EPS]
        return max(ends, default=now)

    def action_at(self, t: float) -> ScheduledAction | None:
        """The action for time `t`, or None when no chunk that has arrived covers `t`."""
        proposals = [(c, i) for c in self.chunks if (i := c.row_at(t, self.dt)) is not None]
        if not proposals:
            return None
        proposals = proposals[-self.max_chunks :]  # ordered oldest observation first
        if self.scheme == "latest":
            proposals = proposals[-1:]
        weights = np.exp(-self.k * np.arange(len(proposals), dtype=np.float64))
        weights /= weights.sum()
        rows = np.stack([c.actions[i] for c, i in proposals])
        action = weights @ rows
        # a convex combination: clamp float error so it never leaves the proposals' range
        action = np.clip(action, rows.min(axis=0), rows.max(axis=0))
        newest = proposals[-1][0]
        sources = tuple((c.frame_id, i, float(w)) for (c, i), w in zip(proposals, weights, strict=True))
        return ScheduledAction(t, action, newest.frame_id, newest.t_obs, sources)
