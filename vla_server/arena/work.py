"""The unit of work every executor runs: `JobPayload` in, `JobEvent`s out, a `JobResult` back.

All three are plain JSON-able data (files travel as bytes), defined once here, because they cross
threads (in-thread executor), processes (the local pool) and machines (Ray). `execute` is the
one function that runs a payload, whichever executor calls it.
"""

from __future__ import annotations

import os
import platform
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_formats.recording.errors import RecordingError
from vla_server.arena import live as arena_live
from vla_server.arena.blob import BlobError
from vla_server.arena.config import EpisodeSpec, SpecError
from vla_server.arena.episode import EpisodeCancelled, EpisodeError, run_episode
from vla_server.arena.metrics import TaskError
from vla_server.arena.models import ModelNotFound, ProviderRef

# job states (database and API)
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
OUTPUT_FILES = ("video.mp4", "trajectory.mcap", "thumb.jpg")


@dataclass(frozen=True)
class JobPayload:
    """What a worker needs: the episode id, its spec (start blob inside), the provider recipe, and
    whether the process that runs it serves it live (`live`; never part of the stored spec)."""

    job_id: str
    spec: EpisodeSpec
    provider: ProviderRef = field(default_factory=ProviderRef)
    time_base: float | None = None
    live: arena_live.LiveOptions | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "spec": self.spec.to_dict(), "provider": self.provider.to_dict(),
                "time_base": self.time_base, "live": None if self.live is None else self.live.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobPayload:
        live = d.get("live")
        return cls(str(d["job_id"]), EpisodeSpec.from_dict(d["spec"]), ProviderRef.from_dict(d["provider"]),
                   d.get("time_base"), None if live is None else arena_live.LiveOptions.from_dict(live))


@dataclass(frozen=True)
class JobEvent:
    """Something a running job reports: ``kind`` "started" / "progress" / "log" / "live" (its live
    view's `arena_live.links`, or ``{"error": why}``), and its data."""

    job_id: str
    kind: str
    data: Mapping[str, Any]


@dataclass
class JobResult:
    """How a job ended.

    Attributes:
        job_id: the episode id.
        status: DONE, FAILED or CANCELLED.
        error: why it failed (empty when done).
        start_blob, final_blob: state blobs (empty when it failed before/while running).
        metrics: the episode's figures.
        files: name -> bytes (`OUTPUT_FILES` that were produced).
        worker: where it ran (host, pid).
    """

    job_id: str
    status: str
    error: str = ""
    start_blob: str = ""
    final_blob: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    worker: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobResult:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


Emit = Callable[[JobEvent], None]


def worker_name() -> str:
    return f"{platform.node()}:{os.getpid()}"


def execute(payload: JobPayload, emit: Emit, cancelled: Callable[[], bool] | None = None) -> JobResult:
    """Runs one episode job; never raises for the job's own failures (they become the result).

    Args:
        payload: the job.
        emit: receives "started", "progress" ({"step", "total"}), "log" ({"line"}) and, with
            `payload.live`, one "live" event (the links, or {"error"}: the episode runs unwatched).
        cancelled: polled once per control step.
    """
    jid = payload.job_id
    where = worker_name()
    emit(JobEvent(jid, "started", {"worker": where}))

    def log_line(line: str) -> None:
        emit(JobEvent(jid, "log", {"line": line}))

    live: arena_live.ArenaLive | None = None
    try:
        provider = payload.provider.build()
        model = provider.spec(payload.spec.model)
        policy = provider.policy(payload.spec.model)
        if payload.live is not None:
            live = _start_live(jid, payload.live, emit, log_line)
        with tempfile.TemporaryDirectory(prefix=f"arena-{jid}-") as tmp:
            res = run_episode(
                payload.spec, policy, model, Path(tmp), episode_id=jid,
                progress=lambda k, n: emit(JobEvent(jid, "progress", {"step": k, "total": n})),
                log_line=log_line, cancelled=cancelled, time_base=payload.time_base, live=live,
            )
            files = {name: p.read_bytes() for name, p in res.files.items()}
        return JobResult(jid, DONE, "", res.start_blob, res.final_blob, res.metrics, files, where)
    except EpisodeCancelled as exc:
        log_line(str(exc))
        return JobResult(jid, CANCELLED, str(exc), worker=where)
    except (EpisodeError, BlobError, SpecError, TaskError, ModelNotFound) as exc:
        log_line(f"failed: {exc}")
        return JobResult(jid, FAILED, str(exc), worker=where)
    except Exception as exc:  # noqa: BLE001 - a job's crash is its result, never the worker's
        log_line("failed with an unexpected error:\n" + traceback.format_exc())
        return JobResult(jid, FAILED, f"{type(exc).__name__}: {exc}", worker=where)
    finally:
        if live is not None:
            live.server.stop()
            log_line(f"live view closed ({live.published} messages published)")


def _start_live(jid: str, options: arena_live.LiveOptions, emit: Emit,
                log_line: Callable[[str], None]) -> arena_live.ArenaLive | None:
    """Serves the episode live; a port that cannot be bound leaves it unwatched (said in the log)."""
    try:
        server = arena_live.serve_episode(options)
    except RecordingError as exc:
        emit(JobEvent(jid, "live", {"error": str(exc)}))
        log_line(f"{exc}; the episode runs without it")
        return None
    emit(JobEvent(jid, "live", arena_live.links(server.url)))
    log_line(f"live view: in Foxglove, Open connection -> Foxglove WebSocket -> {server.url} "
             "(layout: configs/foxglove_layout.json)")
    return arena_live.ArenaLive(server, realtime=options.realtime)
