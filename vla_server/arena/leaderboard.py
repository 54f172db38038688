"""The leaderboard: a Bradley–Terry model fitted to every decided battle, with bootstrap CIs.

Model i beats model j with probability ``σ(θ_i − θ_j)``. A tie counts as half a win for each side.
The log-strengths θ maximise the log-likelihood with a weak Gaussian prior (``BT_PRIOR / 2 · Σθ²``),
which keeps an undefeated model's rating finite and makes Σθ = 0; Newton's method converges in a
few iterations (the objective is concave). Ratings are shown on the Elo scale,
``ELO_BASE + ELO_SCALE · θ / ln 10``. Confidence intervals: refit on `BOOTSTRAP_ROUNDS` resamples
of the battles (with replacement, seeded, so the table is reproducible), 2.5th–97.5th percentile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vla_server.arena.config import BOOTSTRAP_ROUNDS, BT_PRIOR, ELO_BASE, ELO_SCALE

Outcome = tuple[str, str, str]  # (model a, model b, "a" | "b" | "tie")


@dataclass(frozen=True)
class Row:
    """One model on the leaderboard."""

    rank: int
    model: str
    rating: float
    ci_low: float
    ci_high: float
    wins: int
    losses: int
    ties: int
    battles: int
    episodes: int
    success_rate: float | None
    mean_progress: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_bradley_terry(outcomes: Sequence[Outcome], models: Sequence[str], prior: float = BT_PRIOR,
                      iters: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Log-strengths θ (one per model in `models`, Σθ = 0) maximising the penalised likelihood."""
    n = len(models)
    idx = {m: i for i, m in enumerate(models)}
    wins = np.zeros((n, n))
    for a, b, outcome in outcomes:
        i, j = idx[a], idx[b]
        if outcome == "a":
            wins[i, j] += 1.0
        elif outcome == "b":
            wins[j, i] += 1.0
        elif outcome == "tie":
            wins[i, j] += 0.5
            wins[j, i] += 0.5
        else:
            raise ValueError(f"battle outcome: expected 'a', 'b' or 'tie', got {outcome!r}")
    games = wins + wins.T
    theta = np.zeros(n)
    for _ in range(iters):
        diff = theta[:, None] - theta[None, :]
        p = 1.0 / (1.0 + np.exp(-diff))  # p[i, j] = P(i beats j)
        grad = (wins - games * p).sum(axis=1) - prior * theta
        w = games * p * (1.0 - p)
        hess = w.copy()
        np.fill_diagonal(hess, 0.0)
        hess[np.diag_indices(n)] = -w.sum(axis=1) + np.diag(w)
        hess -= prior * np.eye(n)
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if float(np.max(np.abs(step))) < tol:
            break
    return theta - theta.mean()


def to_elo(theta: np.ndarray) -> np.ndarray:
    return ELO_BASE + ELO_SCALE * theta / math.log(10.0)


def leaderboard(outcomes: Sequence[Outcome], stats: Mapping[str, Mapping[str, Any]] | None = None,
                rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> list[Row]:
    """The table, best first.

    Args:
        outcomes: decided battles.
        stats: per model "episodes", "success_rate", "mean_progress" (from the store).
        rounds: bootstrap resamples (0: no intervals, they equal the rating).
        seed: bootstrap RNG seed.
    """
    stats = stats or {}
    models = sorted({m for a, b, _ in outcomes for m in (a, b)} | set(stats))
    if not models:
        return []
    theta = fit_bradley_terry(outcomes, models) if outcomes else np.zeros(len(models))
    rating = to_elo(theta)
    lo, hi = rating.copy(), rating.copy()
    if outcomes and rounds > 0:
        rng = np.random.Generator(np.random.PCG64(seed))
        boots = np.empty((rounds, len(models)))
        arr = list(outcomes)
        for r in range(rounds):
            pick = rng.integers(0, len(arr), size=len(arr))
            boots[r] = to_elo(fit_bradley_terry([arr[k] for k in pick], models))
        lo, hi = np.percentile(boots, 2.5, axis=0), np.percentile(boots, 97.5, axis=0)
    record = {m: [0, 0, 0] for m in models}  # wins, losses, ties
    for a, b, o in outcomes:
        if o == "tie":
            record[a][2] += 1
            record[b][2] += 1
        else:
            w, loser = (a, b) if o == "a" else (b, a)
            record[w][0] += 1
            record[loser][1] += 1
    order = sorted(range(len(models)), key=lambda i: (-rating[i], models[i]))
    rows = []
    for rank, i in enumerate(order, start=1):
        m = models[i]
        s = stats.get(m, {})
        wins, losses, ties = record[m]
        rows.append(Row(rank, m, round(float(rating[i]), 1), round(float(lo[i]), 1), round(float(hi[i]), 1),
                        wins, losses, ties, wins + losses + ties, int(s.get("episodes", 0) or 0),
                        None if s.get("success_rate") is None else round(float(s["success_rate"]), 4),
                        None if s.get("mean_progress") is None else round(float(s["mean_progress"]), 2)))
    return rows
