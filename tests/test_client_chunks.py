"""Chunk scheduling: stale-prefix skipping, ACT-style ensembling, the latest-only scheme, and
hypothesis invariants over random chunk streams (times are plain numbers: an injected clock)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_client.chunks import ChunkScheduler

DT = 0.1


def _rows(h: int, value: float, d: int = 7) -> np.ndarray:
    return np.full((h, d), value) + np.arange(h)[:, None] / 100.0


def test_single_chunk_rows_follow_the_clock() -> None:
    s = ChunkScheduler(DT)
    assert s.add(0, t_obs=10.0, t_arrival=10.0, actions=_rows(5, 0.0)) == 0
    for i in range(5):
        a = s.action_at(10.0 + i * DT + 0.05)
        assert a is not None and a.sources == ((0, i, 1.0),)
        assert np.allclose(a.action, i / 100.0)
    assert s.action_at(10.0 + 5 * DT + 0.01) is None  # past the horizon
    assert s.action_at(9.99) is None  # before the observation


def test_stale_prefix_is_skipped_on_arrival() -> None:
    s = ChunkScheduler(DT)
    skipped = s.add(3, t_obs=1.0, t_arrival=1.0 + 0.25, actions=_rows(5, 0.0))  # 250 ms latency
    assert skipped == 2 and s.rows_skipped == 2
    a = s.action_at(1.25)
    assert a is not None and a.sources == ((3, 2, 1.0),) and a.frame_id == 3 and a.t_obs == 1.0
    assert s.action_at(1.15) is None  # a row for before the arrival is never used


def test_wholly_stale_chunk_is_discarded() -> None:
    s = ChunkScheduler(DT)
    assert s.add(0, t_obs=0.0, t_arrival=0.6, actions=_rows(5, 0.0)) == 5
    assert s.chunks_discarded == 1 and s.chunks == [] and s.action_at(0.6) is None


def test_ensemble_weights_follow_act() -> None:
    k = 0.5
    s = ChunkScheduler(DT, "ensemble", ensemble_k=k)
    s.add(0, 0.0, 0.0, np.zeros((10, 7)))
    s.add(1, 0.2, 0.2, np.ones((10, 7)))
    s.add(2, 0.4, 0.4, np.full((10, 7), 2.0))
    a = s.action_at(0.45)
    assert a is not None
    w = np.exp(-k * np.arange(3))
    w /= w.sum()
    assert np.allclose(a.action, w @ np.array([0.0, 1.0, 2.0]))
    assert [src[:2] for src in a.sources] == [(0, 4), (1, 2), (2, 0)]  # rows for t = 0.45
    assert a.frame_id == 2


def test_latest_scheme_uses_only_the_newest_observation() -> None:
    s = ChunkScheduler(DT, "latest")
    s.add(0, 0.0, 0.0, np.zeros((10, 7)))
    s.add(1, 0.2, 0.3, np.ones((10, 7)))
    early, late = s.action_at(0.25), s.action_at(0.35)
    assert early is not None and np.all(early.action == 0.0)  # chunk 1 has not arrived yet
    assert late is not None and np.all(late.action == 1.0)


def test_max_chunks_bounds_the_blend() -> None:
    s = ChunkScheduler(DT, ensemble_k=0.0, max_chunks=2)
    for j in range(4):
        s.add(j, j * 0.01, j * 0.01, np.full((10, 7), float(j)))
    a = s.action_at(0.05)
    assert a is not None and [src[0] for src in a.sources] == [2, 3] and np.allclose(a.action, 2.5)


def test_prune_and_coverage() -> None:
    s = ChunkScheduler(DT)
    s.add(0, 0.0, 0.0, _rows(3, 0.0))
    assert s.covered_until(0.1) == pytest.approx(0.3)
    s.prune(0.31)
    assert s.chunks == [] and s.covered_until(0.31) == 0.31


@pytest.mark.parametrize(
    "actions, t_obs, t_arr, fragment",
    [
        (np.zeros(7), 0.0, 0.0, "shape"),
        (np.zeros((0, 7)), 0.0, 0.0, "shape"),
        (np.full((2, 7), np.nan), 0.0, 0.0, "NaN"),
        (np.zeros((2, 7)), 1.0, 0.5, "before its observation"),
    ],
)
def test_bad_chunks_are_refused(actions: np.ndarray, t_obs: float, t_arr: float, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ChunkScheduler(DT).add(0, t_obs, t_arr, actions)


def test_width_must_not_change() -> None:
    s = ChunkScheduler(DT)
    s.add(0, 0.0, 0.0, np.zeros((2, 7)))
    with pytest.raises(ValueError, match="width"):
        s.add(1, 0.0, 0.0, np.zeros((2, 8)))


@pytest.mark.parametrize("kwargs", [{"dt_s": 0}, {"dt_s": DT, "scheme": "mean"}, {"dt_s": DT, "max_chunks": 0},
                                    {"dt_s": DT, "ensemble_k": math.inf}])
def test_config_is_validated(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ChunkScheduler(**kwargs)


# ---- invariants over random streams -------------------------------------------------------------

_event = st.tuples(
    st.floats(0.0, 0.3),  # time since the previous observation
    st.floats(0.0, 0.8),  # inference latency
    st.integers(1, 12),  # horizon
    st.floats(-1.0, 1.0),  # row values base
)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(_event, min_size=1, max_size=12),
    scheme=st.sampled_from(["ensemble", "latest"]),
    k=st.floats(-2.0, 2.0),
    max_chunks=st.integers(1, 6),
    probes=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6),
)
def test_scheduler_invariants(events: list, scheme: str, k: float, max_chunks: int, probes: list[float]) -> None:
    s = ChunkScheduler(DT, scheme, ensemble_k=k, max_chunks=max_chunks)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    t_obs = 0.0
    added: dict[int, tuple[float, float, np.ndarray]] = {}
    arrivals = []
    for fid, (gap, latency, h, base) in enumerate(events):
        t_obs += gap
        rows = np.clip(base + rng.uniform(-0.5, 0.5, size=(h, 7)), -1, 1)
        arrivals.append((t_obs + latency, fid, t_obs, rows))
    arrivals.sort(key=lambda a: a[0])  # replies may arrive out of order
    now = 0.0
    for t_arr, fid, t_o, rows in arrivals:
        for p in sorted(probes):  # probe times between arrivals, monotonic
            t = now + p * max(0.0, t_arr - now)
            _check(s, t, added)
        now = t_arr
        skipped = s.add(fid, t_o, t_arr, rows)
        assert skipped == min(len(rows), max(0, math.floor((t_arr - t_o) / DT + 1e-9)))
        added[fid] = (t_o, t_arr, rows)
        for p in sorted(probes):
            _check(s, t_arr + p * 0.5, added)
            now = max(now, t_arr + p * 0.5)


def _check(s: ChunkScheduler, t: float, added: dict[int, tuple[float, float, np.ndarray]]) -> None:
    a = s.action_at(t)
    covering = [
        (fid, i)
        for fid, (t_o, t_arr, rows) in added.items()
        if t_arr <= t + 1e-9 and 0 <= (i := math.floor((t - t_o) / DT + 1e-9)) < len(rows)
    ]
    if a is None:
        assert not covering, f"no action at {t} though chunks {covering} cover it"
        return
    assert covering
    weights = np.array([w for _, _, w in a.sources])
    assert np.all(weights > 0) and math.isclose(weights.sum(), 1.0, rel_tol=1e-9)
    used = []
    for fid, i, _ in a.sources:
        t_o, t_arr, rows = added[fid]
        assert t_arr <= t + 1e-9, "a chunk was used before it arrived"
        assert t_o + i * DT <= t + 1e-9 < t_o + (i + 1) * DT + 2e-9, "a row was used outside its interval"
        assert t_o + (i + 1) * DT > t_arr - 1e-9, "a row already past on arrival was used"
        used.append(rows[i])
    used_arr = np.array(used)
    assert np.all(np.isfinite(a.action))
    assert np.all(a.action >= used_arr.min(axis=0) - 1e-12) and np.all(a.action <= used_arr.max(axis=0) + 1e-12)
    assert np.all(np.abs(a.action) <= 1.0)
    assert np.allclose(a.action, weights @ used_arr)
    newest_obs = max(added[fid][0] for fid, _ in covering)
    if s.scheme == "latest":
        assert len(a.sources) == 1 and added[a.sources[0][0]][0] == newest_obs
    assert a.t_obs == newest_obs
