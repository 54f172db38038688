"""`ArenaRuntime`: the arena's parts wired together (store, executor, jobs, battles, leaderboard).

The service creates one at start-up and mounts `api.create_arena_router` on it; the CLI creates
one per command. `ArenaConfig` is validated on construction and overridable from the CLI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from robot_formats.recording.live import DEFAULT_PORT
from vla_server.arena.battles import Battles
from vla_server.arena.config import EpisodeSpec, SpecError, default_data_dir
from vla_server.arena.executors import EXECUTORS, make_executor
from vla_server.arena.jobs import JobManager
from vla_server.arena.leaderboard import Row, leaderboard
from vla_server.arena.models import ProviderRef
from vla_server.arena.recording_start import (
    RecordingStart,
    RecordingStartError,
    start_from_recording,
)
from vla_server.arena.store import ArenaStore


@dataclass(frozen=True)
class ArenaConfig:
    """Arena settings.

    Attributes:
        data_dir: database and files.
        executor: "local" (process pool), "inline" (a thread) or "ray".
        workers: local pool size (default cores − 1); Ray: most tasks in flight.
        ray_address: Ray cluster ("auto", "HOST:6379", "ray://HOST:10001"; None: local instance).
        ray_runtime_env: Ray runtime environment for the tasks.
        provider: which policies the jobs get (default: the service's catalog).
        recordings_dir: folder API clients may start episodes from recordings in (None: refused).
        live_port: first port an API episode with ``live`` is served on (127.0.0.1; taken: the
            next free one; 0: any free port).
    """

    data_dir: str = field(default_factory=default_data_dir)
    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    ray_runtime_env: dict[str, Any] | None = None
    provider: ProviderRef = field(default_factory=ProviderRef)
    recordings_dir: str | None = None
    live_port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"arena executor: expected one of {EXECUTORS}, got {self.executor!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ValueError(f"arena workers: expected an integer >= 1, got {self.workers!r}")
        if not isinstance(self.live_port, int) or not 0 <= self.live_port <= 65535:
            raise ValueError(f"arena live_port: expected 0..65535, got {self.live_port!r}")


class ArenaRuntime:
    """Store + executor + job manager + battles for one data folder."""

    def __init__(self, config: ArenaConfig | None = None) -> None:
        self.config = config or ArenaConfig()
        self.store = ArenaStore(self.config.data_dir)
        try:
            self.executor = make_executor(self.config.executor, self.config.workers,
                                          ray_address=self.config.ray_address,
                                          runtime_env=self.config.ray_runtime_env)
        except BaseException:
            self.store.close()
            raise
        self.jobs = JobManager(self.store, self.executor, self.config.provider)
        self.battles = Battles(self.jobs)

    def close(self, timeout_s: float = 5.0) -> None:
        self.jobs.shutdown(timeout_s)
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def leaderboard(self, rounds: int | None = None) -> list[Row]:
        kw = {} if rounds is None else {"rounds": rounds}
        return leaderboard(self.store.decided_battles(), self.store.model_stats(), **kw)

    def recording_path(self, name: str) -> Path:
        """A recording inside `recordings_dir` (API requests may not name files elsewhere).

        Raises:
            SpecError: no recordings folder configured, or the name leaves it.
        """
        if not self.config.recordings_dir:
            raise SpecError("starting from a recording is not enabled on this service (no recordings folder)")
        root = Path(self.config.recordings_dir).resolve()
        path = (root / name).resolve()
        if root not in path.parents or path.suffix != ".mcap":
            raise SpecError(f"recording {name!r}: expected a .mcap file inside the recordings folder")
        return path


def spec_with_start(
    spec: EpisodeSpec, recording: Path | None, at_s: float | None
) -> tuple[EpisodeSpec, RecordingStart | None]:
    """`spec` started from `recording` at `at_s` seconds (if given).

    Raises:
        SpecError: both a blob and a recording, or a recording without a time.
        RecordingStartError: no simulator state there.
    """
    if recording is None:
        return spec, None
    if spec.start_blob:
        raise SpecError("give a start blob or a recording, not both")
    if at_s is None:
        raise SpecError("a recording start needs a time (--at SECONDS / at_s)")
    start = start_from_recording(recording, at_s)
    return dataclasses.replace(spec, start_blob=start.blob), start


__all__ = ["ArenaConfig", "ArenaRuntime", "RecordingStartError", "spec_with_start"]
