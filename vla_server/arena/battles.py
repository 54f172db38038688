"""Battles: two models from the same start state and instruction; the outcome by metric or vote.

Both episodes get the same spec but the model (same scene and seed, or the same start blob), so
they start from bit-identical states. When both are done: ``outcome_by="metric"`` decides at once
(`metrics.battle_outcome`: success beats failure, the faster of two successes wins, else progress
by a margin, else a tie);
``outcome_by="vote"`` waits for a person. A vote is accepted on any battle whose episodes are
done and overrides the metric; with several votes the majority wins (equal a/b votes: tie).
A battle whose episode failed or was cancelled is "failed" and does not count; rerunning the
episode reopens it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vla_server.arena.config import EpisodeSpec
from vla_server.arena.jobs import JobManager
from vla_server.arena.metrics import battle_outcome
from vla_server.arena.store import (
    AWAITING_VOTE,
    BATTLE_FAILED,
    DECIDED,
    OUTCOME_BY,
    PENDING,
    WINNERS,
    ArenaStore,
    StoreError,
)
from vla_server.arena.work import DONE, FINISHED


class BattleError(ValueError):
    """A battle request that cannot be met."""


class Battles:
    """Creates battles on a job manager and decides them as their episodes finish."""

    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs
        self.store: ArenaStore = jobs.store
        jobs.on_finished(self._episode_finished)

    def create(self, spec: EpisodeSpec, model_b: str, outcome_by: str = "metric") -> str:
        """Starts a battle of ``spec.model`` (side a) against `model_b` (side b); returns its id.

        Raises:
            BattleError: same model twice or a bad `outcome_by`; ModelNotFound: unknown model.
        """
        if outcome_by not in OUTCOME_BY:
            raise BattleError(f"battle outcome_by: expected one of {OUTCOME_BY}, got {outcome_by!r}")
        if model_b == spec.model:
            raise BattleError(f"a battle needs two different models, got {spec.model!r} twice")
        self.jobs.check_model(spec.model)
        self.jobs.check_model(model_b)
        bid = self.store.create_battle(spec.model, model_b, spec.instruction, outcome_by)
        ea = self.jobs.submit(spec, battle_id=bid, side="a")
        eb = self.jobs.submit(dataclasses.replace(spec, model=model_b), battle_id=bid, side="b")
        self.store.set_battle_episodes(bid, ea, eb)
        self._decide(bid)  # in case both finished already
        return bid

    def get(self, battle_id: str) -> dict[str, Any]:
        b = self.store.battle(battle_id)
        b["episodes"] = {side: self.store.episode(b[f"episode_{side}"]) if b[f"episode_{side}"] else None
                         for side in ("a", "b")}
        return b

    def vote(self, battle_id: str, winner: str, voter: str = "") -> dict[str, Any]:
        """Records a vote ("a", "b" or "tie") and decides the battle by the votes so far.

        Raises:
            BattleError: a bad winner, or the battle's episodes are not both done.
        """
        if winner not in WINNERS:
            raise BattleError(f"vote: expected winner one of {WINNERS}, got {winner!r}")
        b = self.store.battle(battle_id)
        for side in ("a", "b"):
            eid = b[f"episode_{side}"]
            if not eid or self.store.episode(eid)["status"] != DONE:
                raise BattleError(
                    f"battle {battle_id}: episode {side} is not done yet; vote when both videos are ready"
                )
        self.store.add_vote(battle_id, winner, voter)
        votes = self.store.battle(battle_id)["votes"]
        outcome = "tie" if votes["a"] == votes["b"] else ("a" if votes["a"] > votes["b"] else "b")
        self.store.set_battle_state(battle_id, DECIDED, outcome=outcome, decided_by="vote")
        return self.get(battle_id)

    def _episode_finished(self, episode_id: str) -> None:
        ep = self.store.episode(episode_id)
        if ep.get("battle_id"):
            self._decide(ep["battle_id"])

    def _decide(self, battle_id: str) -> None:
        try:
            b = self.store.battle(battle_id)
        except StoreError:
            return
        if not b["episode_a"] or not b["episode_b"]:
            return
        eps = [self.store.episode(b["episode_a"]), self.store.episode(b["episode_b"])]
        if not all(e["status"] in FINISHED for e in eps):
            return
        if any(e["status"] != DONE for e in eps):
            self.store.set_battle_state(battle_id, BATTLE_FAILED)
            return
        metric = battle_outcome(eps[0]["metrics"] or {}, eps[1]["metrics"] or {})
        if b["decided_by"] == "vote":
            return
        if b["outcome_by"] == "metric":
            self.store.set_battle_state(battle_id, DECIDED, metric_outcome=metric, outcome=metric, decided_by="metric")
        else:
            self.store.set_battle_state(battle_id, AWAITING_VOTE, metric_outcome=metric)


__all__ = ["PENDING", "BattleError", "Battles"]
