"""Bradley–Terry leaderboard: the fit is the penalised MLE, ties count half, intervals are reproducible,
and the table does not depend on battle order or on which side a model played."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from vla_server.arena.config import BT_PRIOR
from vla_server.arena.leaderboard import fit_bradley_terry, leaderboard

MODELS = ["a", "b", "c", "d"]


def penalised_nll(theta: np.ndarray, outcomes: list[tuple[str, str, str]]) -> float:
    total = 0.5 * BT_PRIOR * float(theta @ theta)
    for x, y, o in outcomes:
        d = theta[MODELS.index(x)] - theta[MODELS.index(y)]
        w = {"a": 1.0, "b": 0.0, "tie": 0.5}[o]
        total += w * np.logaddexp(0, -d) + (1 - w) * np.logaddexp(0, d)
    return total


outcome_lists = st.lists(
    st.tuples(st.sampled_from(MODELS), st.sampled_from(MODELS), st.sampled_from(["a", "b", "tie"]))
    .filter(lambda t: t[0] != t[1]),
    min_size=1, max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(outcome_lists)
def test_fit_is_the_penalised_maximum_likelihood(outcomes: list[tuple[str, str, str]]) -> None:
    theta = fit_bradley_terry(outcomes, MODELS)
    ref = minimize(penalised_nll, np.zeros(len(MODELS)), args=(outcomes,), method="BFGS", options={"gtol": 1e-10})
    assert penalised_nll(theta, outcomes) <= ref.fun + 1e-7
    assert abs(theta.sum()) < 1e-9


@settings(max_examples=30, deadline=None)
@given(outcome_lists, st.randoms())
def test_order_and_sides_do_not_matter(outcomes: list[tuple[str, str, str]], rnd) -> None:  # type: ignore[no-untyped-def]
    flipped = [
        (y, x, {"a": "b", "b": "a", "tie": "tie"}[o]) if rnd.random() < 0.5 else (x, y, o) for x, y, o in outcomes
    ]
    rnd.shuffle(flipped)
    assert np.allclose(fit_bradley_terry(outcomes, MODELS), fit_bradley_terry(flipped, MODELS), atol=1e-8)


def test_undefeated_model_stays_finite_and_ties_are_half_wins() -> None:
    theta = fit_bradley_terry([("a", "b", "a")] * 20, ["a", "b"])
    assert np.all(np.isfinite(theta)) and theta[0] > 2.0
    tied = fit_bradley_terry([("a", "b", "tie")] * 10, ["a", "b"])
    half = fit_bradley_terry([("a", "b", "a"), ("a", "b", "b")] * 5, ["a", "b"])
    assert np.allclose(tied, 0.0) and np.allclose(half, tied)


def test_table_counts_and_intervals_from_thirty_battles() -> None:
    rng = np.random.default_rng(5)
    strength = {"strong": 1.5, "mid": 0.0, "weak": -1.5}
    pairs = [("strong", "mid"), ("mid", "weak"), ("strong", "weak")]
    outcomes = []
    for i in range(30):
        x, y = pairs[i % 3]
        p = 1 / (1 + np.exp(-(strength[x] - strength[y])))
        outcomes.append((x, y, "a" if rng.random() < p else "b"))
    stats = {"strong": {"episodes": 20, "success_rate": 0.9, "mean_progress": 95.0}}
    rows = leaderboard(outcomes, stats, rounds=100, seed=1)
    assert [r.model for r in rows] == ["strong", "mid", "weak"]
    assert sum(r.battles for r in rows) == 60
    for r in rows:
        assert r.ci_low <= r.rating <= r.ci_high
        assert r.wins + r.losses + r.ties == r.battles
    assert rows[0].episodes == 20 and rows[0].success_rate == 0.9
    assert [r.to_dict() for r in leaderboard(outcomes, stats, rounds=100, seed=1)] == [r.to_dict() for r in rows]
    assert leaderboard([], {}) == []


def test_bad_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 'a', 'b' or 'tie'"):
        fit_bradley_terry([("a", "b", "draw")], ["a", "b"])
