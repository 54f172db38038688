"""Types the registry hands out: inference results, model states and events."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # types only: the service imports numpy when a frame first needs it
    import numpy as np

    from vla_server.policies.base import Observation
    from vla_server.workers.wire import EncodedObservation


class ModelState(str, enum.Enum):
    """Life cycle of a catalog model in the registry."""

    COLD = "cold"  # no worker
    LOADING = "loading"  # worker starting / policy loading
    WARM = "warm"  # ready for requests
    UNLOADING = "unloading"  # worker being stopped (eviction, idle, explicit)
    RESTARTING = "restarting"  # worker crashed; a new one starts after the backoff
    FAILED = "failed"  # load failed or too many crashes; the next use tries again


@dataclass(frozen=True)
class InferResult:
    """One inference.

    Attributes:
        actions: (H, 7) float64 action chunk, row 0 for the observation itself.
        model_ms: time inside the worker's `Policy.infer` (emulated latency included).
        roundtrip_ms: request sent → reply received at the registry (queueing + IPC + model).
        wait_ms: time spent waiting for the model to become warm (cold start), 0 when warm.
        model_id, worker_pid, device: who answered.
    """

    actions: np.ndarray
    model_ms: float
    roundtrip_ms: float
    wait_ms: float
    model_id: str
    worker_pid: int
    device: str


@dataclass(frozen=True)
class ModelEvent:
    """Something that happened to a model that its stream sessions should hear about.

    `kind`: ``crashed`` (restart scheduled), ``restarted``, ``failed`` (given up), ``unloaded``,
    ``evicted``, ``loaded``.
    """

    model_id: str
    kind: str
    message: str


class InferenceService(Protocol):
    """What stream sessions and the openpi bridge need from the registry (a fake implements it
    in unit tests and benchmarks that measure the service without workers)."""

    def has_model(self, model_id: str) -> bool: ...

    def acquire_session(self, model_id: str) -> None: ...

    def release_session(self, model_id: str) -> None: ...

    async def infer(self, model_id: str, obs: Observation | EncodedObservation,
                    tenant: str | None = None) -> InferResult:
        """Runs the model; `tenant` (an API key id) is who the request is counted against."""

    async def end_session(self, model_id: str, session: str) -> None: ...
