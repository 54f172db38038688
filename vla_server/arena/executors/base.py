"""`Executor`: runs episode jobs somewhere and reports their events and results."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from vla_server.arena.work import JobEvent, JobPayload, JobResult

OnEvent = Callable[[JobEvent], None]
OnDone = Callable[[JobResult], None]


class Executor(ABC):
    """Runs `JobPayload`s; callbacks come from the executor's own thread, in order per job.

    Every submitted job ends with exactly one `on_done` call (done, failed or cancelled), also when
    its worker dies or the executor shuts down.
    """

    name = "executor"

    @property
    @abstractmethod
    def capacity(self) -> int:
        """Jobs that can run at once."""

    @abstractmethod
    def submit(self, payload: JobPayload, on_event: OnEvent, on_done: OnDone) -> None:
        """Queues a job (returns at once)."""

    @abstractmethod
    def cancel(self, job_id: str) -> bool:
        """Cancels a queued or running job; False if this executor does not have it."""

    @abstractmethod
    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stops the workers; jobs not finished end as cancelled ("executor shut down")."""

    def describe(self) -> str:
        return f"{self.name} ({self.capacity} at once)"
