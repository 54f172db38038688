"""Battles: same start for both sides, outcome by metric or by vote (ties allowed), failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vla_server.arena.battles import BattleError, Battles
from vla_server.arena.config import EpisodeSpec
from vla_server.arena.executors.inline import InlineExecutor
from vla_server.arena.jobs import JobManager
from vla_server.arena.metrics import battle_outcome
from vla_server.arena.models import ProviderRef
from vla_server.arena.store import ArenaStore

SPEC = EpisodeSpec(model="reach", instruction="pick up the red cube", steps=8, width=64, height=48,
                   video=False, trajectory=False)


@pytest.fixture
def arena(tmp_path: Path) -> Iterator[tuple[JobManager, Battles]]:
    store = ArenaStore(tmp_path)
    jobs = JobManager(store, InlineExecutor(), ProviderRef("tests.arena_fakes:TestProvider"))
    yield jobs, Battles(jobs)
    jobs.shutdown()
    store.close()


def wait_battle(jobs: JobManager, battles: Battles, bid: str) -> dict:
    b = battles.get(bid)
    for side in ("a", "b"):
        jobs.wait(b[f"episode_{side}"], 120)
    return battles.get(bid)


def test_both_sides_start_from_the_same_state_and_metric_decides(arena: tuple[JobManager, Battles]) -> None:
    jobs, battles = arena
    bid = battles.create(SPEC, "reach-slow")
    b = wait_battle(jobs, battles, bid)
    a_dir, b_dir = (jobs.store.episode_dir(b[f"episode_{s}"]) for s in "ab")
    assert (a_dir / "start.blob").read_text() == (b_dir / "start.blob").read_text()
    ea, eb = b["episodes"]["a"], b["episodes"]["b"]
    assert b["status"] == "decided" and b["decided_by"] == "metric"
    assert b["outcome"] == battle_outcome(ea["metrics"], eb["metrics"])
    assert jobs.store.decided_battles() == [("reach", "reach-slow", b["outcome"])]


def test_vote_battle_waits_for_a_person_and_majority_decides(arena: tuple[JobManager, Battles]) -> None:
    jobs, battles = arena
    bid = battles.create(SPEC, "counter", outcome_by="vote")
    b = wait_battle(jobs, battles, bid)
    assert b["status"] == "awaiting_vote" and b["outcome"] is None and b["metric_outcome"] in ("a", "b", "tie")
    assert jobs.store.decided_battles() == []
    assert battles.vote(bid, "b", "alice")["outcome"] == "b"
    assert battles.vote(bid, "a", "bob")["outcome"] == "tie"  # one each
    b = battles.vote(bid, "tie", "carol")
    assert b["outcome"] == "tie" and b["votes"] == {"a": 1, "b": 1, "tie": 1} and b["decided_by"] == "vote"
    with pytest.raises(BattleError, match="expected winner one of"):
        battles.vote(bid, "draw")


def test_failed_side_fails_the_battle_and_refuses_votes(arena: tuple[JobManager, Battles]) -> None:
    jobs, battles = arena
    bid = battles.create(SPEC, "failing")
    b = wait_battle(jobs, battles, bid)
    assert b["status"] == "failed" and b["outcome"] is None
    with pytest.raises(BattleError, match="episode b is not done"):
        battles.vote(bid, "a")
    with pytest.raises(BattleError, match="two different models"):
        battles.create(SPEC, "reach")


@pytest.mark.parametrize(("a", "b", "want"), [
    ({"success": True, "progress": 100}, {"success": False, "progress": 99}, "a"),
    ({"success": False, "progress": 40}, {"success": False, "progress": 60}, "b"),
    ({"success": False, "progress": 40}, {"success": False, "progress": 43}, "tie"),
    ({"success": True, "progress": 100}, {"success": True, "progress": 100}, "tie"),
    ({"success": None, "progress": None}, {"success": None, "progress": None}, "tie"),
])
def test_metric_outcome(a: dict, b: dict, want: str) -> None:
    assert battle_outcome(a, b) == want
