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
    """What a worker needs: the episode id, its spec (start blob inside) and the provider recipe."""

    job_id: str
    spec: EpisodeSpec
    provider: ProviderRef = field(default_factory=ProviderRef)
    time_base: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "spec": self.spec.to_dict(), "provider": self.provider.to_dict(),
                "time_base": self.time_base}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobPayload:
        return cls(str(d["job_id"]), EpisodeSpec.from_dict(d["spec"]), ProviderRef.from_dict(d["provider"]),
                   d.get("time_base"))


@dataclass(frozen=True)
class JobEvent:
    """Something a running job reports: ``kind`` "started" / "progress" / "log", and its data."""

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
        emit: receives "started", "progress" ({"step", "total"}) and "log" ({"line"}) events.
        cancelled: polled once per control step.
    """
    jid = payload.job_id
    where = worker_name()
    emit(JobEvent(jid, "started", {"worker": where}))

    def log_line(line: str) -> None:
        emit(JobEvent(jid, "log", {"line": line}))

    try:
        provider = payload.provider.build()
        model = provider.spec(payload.spec.model)
        policy = provider.policy(payload.spec.model)
        with tempfile.TemporaryDirectory(prefix=f"arena-{jid}-") as tmp:
            res = run_episode(
                payload.spec, policy, model, Path(tmp), episode_id=jid,
                progress=lambda k, n: emit(JobEvent(jid, "progress", {"step": k, "total": n})),
                log_line=log_line, cancelled=cancelled, time_base=payload.time_base,
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
