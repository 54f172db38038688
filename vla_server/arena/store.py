"""`ArenaStore`: episodes, battles and votes in SQLite; videos, blobs, trajectories and logs on disk.

Layout of the data folder (default ``vla_data/arena``)::

    arena.sqlite3                      episodes, battles, votes (WAL mode)
    episodes/<id>/log.txt              the job's log, appended as it runs (kept on failure)
    episodes/<id>/start.blob           state blob the episode started from
    episodes/<id>/final.blob           state blob at its end
    episodes/<id>/video.mp4, trajectory.mcap, thumb.jpg

Every write is committed at once, so a restart loses nothing; `recover_interrupted` marks the
episodes that were running when the service stopped as failed (with a log line saying so) and
returns those that were still queued, to be queued again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vla_server.arena.config import DB_NAME, EpisodeSpec
from vla_server.arena.work import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    OUTPUT_FILES,
    QUEUED,
    RUNNING,
    JobResult,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    instruction TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    metrics_json TEXT,
    success INTEGER,
    progress REAL,
    latency_ms REAL,
    battle_id TEXT,
    side TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    worker TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS episodes_model ON episodes(model);
CREATE INDEX IF NOT EXISTS episodes_created ON episodes(created_at);
CREATE TABLE IF NOT EXISTS battles (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    episode_a TEXT,
    episode_b TEXT,
    instruction TEXT NOT NULL,
    outcome_by TEXT NOT NULL,
    metric_outcome TEXT,
    outcome TEXT,
    decided_by TEXT,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    battle_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    winner TEXT NOT NULL,
    voter TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS votes_battle ON votes(battle_id);
"""

# battle states
PENDING, AWAITING_VOTE, DECIDED, BATTLE_FAILED = "running", "awaiting_vote", "decided", "failed"
WINNERS = ("a", "b", "tie")
OUTCOME_BY = ("metric", "vote")


class StoreError(ValueError):
    """A request the store cannot satisfy (unknown id, a vote on an unfinished battle …)."""


def new_id() -> str:
    """A short unique id, sortable by creation time (hex seconds + random)."""
    return f"{int(time.time()):08x}{uuid.uuid4().hex[:8]}"


class ArenaStore:
    """The arena's database and files (thread-safe: one connection behind a lock).

    Args:
        root: data folder (created).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        (self.root / "episodes").mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.root / DB_NAME), check_same_thread=False, timeout=10.0,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _q(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # -- episodes -------------------------------------------------------------------------------
    def episode_dir(self, episode_id: str) -> Path:
        if not episode_id or not all(c.isalnum() or c in "-_" for c in episode_id):
            raise StoreError(f"bad episode id {episode_id!r}")
        return self.root / "episodes" / episode_id

    def create_episode(self, spec: EpisodeSpec, battle_id: str | None = None, side: str | None = None) -> str:
        eid = new_id()
        d = self.episode_dir(eid)
        d.mkdir(parents=True, exist_ok=True)
        if spec.start_blob:
            (d / "start.blob").write_text(spec.start_blob)
        self._q(
            "INSERT INTO episodes "
            "(id, created_at, status, model, instruction, spec_json, total, latency_ms, battle_id, side)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                eid,
                time.time(),
                QUEUED,
                spec.model,
                spec.instruction,
                spec.to_json(),
                spec.steps,
                spec.latency_ms,
                battle_id,
                side,
            ),
        )
        return eid

    def spec(self, episode_id: str) -> EpisodeSpec:
        row = self._row(episode_id)
        return EpisodeSpec.from_json(row["spec_json"])

    def _row(self, episode_id: str) -> sqlite3.Row:
        rows = self._q("SELECT * FROM episodes WHERE id = ?", (episode_id,))
        if not rows:
            raise StoreError(f"no episode {episode_id!r}")
        return rows[0]

    def episode(self, episode_id: str) -> dict[str, Any]:
        """The episode as the API shows it (spec without the blob text, metrics, files present)."""
        return self._episode_dict(self._row(episode_id))

    def _episode_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        spec = json.loads(row["spec_json"])
        has_blob = bool(spec.pop("start_blob", None))
        d = self.root / "episodes" / row["id"]
        files = [n for n in (*OUTPUT_FILES, "start.blob", "final.blob") if (d / n).is_file()]
        return {
            "id": row["id"],
            "status": row["status"],
            "model": row["model"],
            "instruction": row["instruction"],
            "created_at": row["created_at"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "step": row["step"],
            "total": row["total"],
            "error": row["error"],
            "success": None if row["success"] is None else bool(row["success"]),
            "progress": row["progress"],
            "latency_ms": (json.loads(row["metrics_json"]) or {}).get("latency_ms")
            if row["metrics_json"]
            else row["latency_ms"],
            "battle_id": row["battle_id"],
            "side": row["side"],
            "attempts": row["attempts"],
            "worker": row["worker"],
            "spec": spec | {"start_from_blob": has_blob},
            "metrics": json.loads(row["metrics_json"]) if row["metrics_json"] else None,
            "files": files,
        }

    def list_episodes(self, model: str | None = None, status: str | None = None, success: bool | None = None,
                      battle_id: str | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[Any] = []
        for col, val in (("model", model), ("status", status), ("battle_id", battle_id)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if success is not None:
            where.append("success = ?")
            args.append(int(success))
        sql = "SELECT * FROM episodes" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        return [self._episode_dict(r) for r in self._q(sql, (*args, int(limit), int(offset)))]

    def count_episodes(self) -> int:
        return int(self._q("SELECT COUNT(*) FROM episodes")[0][0])

    def mark_running(self, episode_id: str, worker: str = "") -> None:
        self._q("UPDATE episodes SET status = ?, started_at = ?, worker = ? WHERE id = ? AND status IN (?, ?)",
                (RUNNING, time.time(), worker, episode_id, QUEUED, RUNNING))

    def set_progress(self, episode_id: str, step: int, total: int) -> None:
        self._q("UPDATE episodes SET step = ?, total = ? WHERE id = ?", (int(step), int(total), episode_id))

    def finish_episode(self, result: JobResult) -> None:
        """Stores a job's end: files first, then the row (so a listed file always exists)."""
        d = self.episode_dir(result.job_id)
        d.mkdir(parents=True, exist_ok=True)
        for name, data in result.files.items():
            if name in OUTPUT_FILES:
                _atomic_write(d / name, data)
        if result.start_blob:
            _atomic_write(d / "start.blob", result.start_blob.encode())
        if result.final_blob:
            _atomic_write(d / "final.blob", result.final_blob.encode())
        m = result.metrics or {}
        self._q(
            "UPDATE episodes SET status = ?, finished_at = ?, error = ?, metrics_json = ?, success = ?, progress = ?,"
            " worker = ?, step = CASE WHEN ? = 'done' THEN total ELSE step END WHERE id = ?",
            (result.status, time.time(), result.error, json.dumps(m) if m else None,
             None if m.get("success") is None else int(bool(m["success"])), m.get("progress"),
             result.worker, result.status, result.job_id),
        )

    def reset_for_rerun(self, episode_id: str) -> EpisodeSpec:
        """Clears a finished episode's outputs and queues it again (same id, attempts + 1)."""
        row = self._row(episode_id)
        if row["status"] not in FINISHED:
            raise StoreError(f"episode {episode_id} is {row['status']}; only a finished one can be rerun")
        d = self.episode_dir(episode_id)
        for name in (*OUTPUT_FILES, "final.blob"):
            (d / name).unlink(missing_ok=True)
        self.append_log(episode_id, f"--- rerun (attempt {row['attempts'] + 1}) ---")
        self._q("UPDATE episodes SET status = ?, started_at = NULL, finished_at = NULL, step = 0, error = '',"
                " metrics_json = NULL, success = NULL, progress = NULL, attempts = attempts + 1 WHERE id = ?",
                (QUEUED, episode_id))
        if row["battle_id"]:
            self._q(
                "UPDATE battles SET status = ?, metric_outcome = NULL, outcome = NULL, decided_by = NULL WHERE id = ?",
                (PENDING, row["battle_id"]),
            )
            self._q("DELETE FROM votes WHERE battle_id = ?", (row["battle_id"],))
        return EpisodeSpec.from_json(row["spec_json"])

    def recover_interrupted(self) -> tuple[list[str], list[str]]:
        """After a restart: running episodes → failed (logged); returns (failed ids, queued ids)."""
        running = [r["id"] for r in self._q("SELECT id FROM episodes WHERE status = ?", (RUNNING,))]
        for eid in running:
            self.append_log(eid, "interrupted: the service stopped while this episode ran; rerun it")
            self._q("UPDATE episodes SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                    (FAILED, time.time(), "interrupted by a service restart", eid))
        queued = [r["id"] for r in self._q("SELECT id FROM episodes WHERE status = ? ORDER BY created_at", (QUEUED,))]
        return running, queued

    # -- logs and files -------------------------------------------------------------------------
    def append_log(self, episode_id: str, line: str) -> None:
        path = self.episode_dir(episode_id) / "log.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%H:%M:%S")
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(f"{stamp} {part}\n" for part in str(line).splitlines() or [""])

    def read_log(self, episode_id: str, offset: int = 0) -> list[str]:
        """Log lines from line `offset` on."""
        path = self.episode_dir(episode_id) / "log.txt"
        if not path.is_file():
            return []
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()[offset:]

    def file_path(self, episode_id: str, name: str) -> Path | None:
        """Path of an episode's file, or None if it does not exist."""
        if name not in (*OUTPUT_FILES, "start.blob", "final.blob", "log.txt"):
            raise StoreError(f"unknown file {name!r}")
        p = self.episode_dir(episode_id) / name
        return p if p.is_file() else None

    # -- battles --------------------------------------------------------------------------------
    def create_battle(self, model_a: str, model_b: str, instruction: str, outcome_by: str) -> str:
        if outcome_by not in OUTCOME_BY:
            raise StoreError(f"battle outcome_by: expected one of {OUTCOME_BY}, got {outcome_by!r}")
        bid = new_id()
        self._q("INSERT INTO battles (id, created_at, model_a, model_b, instruction, outcome_by, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (bid, time.time(), model_a, model_b, instruction, outcome_by, PENDING))
        return bid

    def set_battle_episodes(self, battle_id: str, episode_a: str, episode_b: str) -> None:
        self._q("UPDATE battles SET episode_a = ?, episode_b = ? WHERE id = ?", (episode_a, episode_b, battle_id))

    def battle(self, battle_id: str) -> dict[str, Any]:
        rows = self._q("SELECT * FROM battles WHERE id = ?", (battle_id,))
        if not rows:
            raise StoreError(f"no battle {battle_id!r}")
        return self._battle_dict(rows[0])

    def _battle_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        votes = self._q("SELECT winner, COUNT(*) AS n FROM votes WHERE battle_id = ? GROUP BY winner", (row["id"],))
        return dict(zip(row.keys(), tuple(row), strict=True)) | {
            "votes": {w: 0 for w in WINNERS} | {r["winner"]: r["n"] for r in votes}
        }

    def list_battles(self, limit: int = 50, offset: int = 0, status: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT * FROM battles"
            + (" WHERE status = ?" if status else "")
            + " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        )
        args = ((status,) if status else ()) + (int(limit), int(offset))
        return [self._battle_dict(r) for r in self._q(sql, args)]

    def set_battle_state(self, battle_id: str, status: str, metric_outcome: str | None = None,
                         outcome: str | None = None, decided_by: str | None = None) -> None:
        self._q(
            "UPDATE battles SET status = ?, metric_outcome = COALESCE(?, metric_outcome), outcome = ?, decided_by = ?"
            " WHERE id = ?",
            (status, metric_outcome, outcome, decided_by, battle_id),
        )

    def add_vote(self, battle_id: str, winner: str, voter: str = "") -> None:
        if winner not in WINNERS:
            raise StoreError(f"vote: expected winner one of {WINNERS}, got {winner!r}")
        self._q("INSERT INTO votes (battle_id, created_at, winner, voter) VALUES (?, ?, ?, ?)",
                (battle_id, time.time(), winner, voter))

    def decided_battles(self) -> list[tuple[str, str, str]]:
        """(model_a, model_b, outcome) of every decided battle, oldest first."""
        rows = self._q("SELECT model_a, model_b, outcome FROM battles WHERE status = ? AND outcome IS NOT NULL"
                       " ORDER BY created_at, id", (DECIDED,))
        return [(r["model_a"], r["model_b"], r["outcome"]) for r in rows]

    def model_stats(self) -> dict[str, dict[str, Any]]:
        """Per model over its finished episodes: episodes, successes, success rate, mean progress."""
        rows = self._q("SELECT model, COUNT(*) AS n, SUM(COALESCE(success, 0)) AS s, AVG(progress) AS p,"
                       " SUM(CASE WHEN success IS NULL THEN 0 ELSE 1 END) AS judged"
                       " FROM episodes WHERE status = ? GROUP BY model", (DONE,))
        return {r["model"]: {"episodes": r["n"], "successes": r["s"] or 0,
                             "success_rate": (r["s"] or 0) / r["judged"] if r["judged"] else None,
                             "mean_progress": r["p"]} for r in rows}

    def counts(self) -> dict[str, int]:
        rows = self._q("SELECT status, COUNT(*) AS n FROM episodes GROUP BY status")
        return {s: 0 for s in (QUEUED, RUNNING, DONE, FAILED, CANCELLED)} | {r["status"]: r["n"] for r in rows}


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
