"""A latency wrapper: any policy made as slow as the model it stands for, in wall-clock time.

``LatencyPolicy(inner, latency_ms)`` answers each `infer` after the inner policy's own time plus
`latency_ms` (e.g. 283 ms for OpenVLA-7B as measured on a GPU, 100 for RT-2, 50 for Octo-base),
so users of the streaming service feel a slow model. The arena does not use it: it counts
``ModelSpec.latency_ms`` in simulated time (`build_policy(..., emulate_latency=False)`).

The wait is on an event, not a bare sleep: `close` (or `interrupt`) ends a pending wait at once.
The clock and the wait are injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from vla_server.policies.base import Observation, Policy, PolicyInfo

MAX_LATENCY_MS = 60_000.0


class LatencyPolicy(Policy):
    """Wraps `inner`, adding `latency_ms` of wall-clock delay to every `infer`.

    Args:
        inner: the policy that computes the actions.
        latency_ms: added delay per call, ms (0 … 60000).
        clock: monotonic clock, s (injectable).
        wait: ``wait(seconds) -> bool`` that returns True when interrupted (default: an event's
            wait, set by `interrupt`/`close`).
    """

    def __init__(
        self,
        inner: Policy,
        latency_ms: float,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        if not 0.0 <= float(latency_ms) <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms: expected 0..{MAX_LATENCY_MS:.0f}, got {latency_ms}")
        self.inner = inner
        self.latency_ms = float(latency_ms)
        self._clock = clock
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self.last_wait_s = 0.0  # delay added to the last call, s

    def info(self) -> PolicyInfo:
        i = self.inner.info()
        return PolicyInfo(
            name=i.name,
            backend=i.backend,
            action_horizon=i.action_horizon,
            description=f"{i.description} (+{self.latency_ms:g} ms emulated latency)",
            extra={**dict(i.extra), "emulated_latency_ms": self.latency_ms},
        )

    def load(self) -> None:
        self.inner.load()

    def infer(self, obs: Observation) -> np.ndarray:
        out = self.inner.infer(obs)
        deadline = self._clock() + self.latency_ms / 1000.0
        remaining = deadline - self._clock()
        self.last_wait_s = max(0.0, remaining)
        if remaining > 0 and self._wait(remaining):
            raise InterruptedError("latency wait interrupted: the policy is closing")
        return out

    def interrupt(self) -> None:
        """Ends a pending wait (the waiting `infer` raises InterruptedError)."""
        self._stop.set()

    def end_session(self, session: str) -> None:
        self.inner.end_session(session)

    def export_session(self, session: str) -> bytes:
        """The inner policy's session memory (b"" if it keeps none or cannot export it)."""
        export = getattr(self.inner, "export_session", None)
        return bytes(export(session)) if callable(export) else b""

    def import_session(self, session: str, data: bytes) -> None:
        """Hands `data` to the inner policy.

        Raises:
            ValueError: non-empty memory for a policy that cannot import any.
        """
        restore = getattr(self.inner, "import_session", None)
        if callable(restore):
            restore(session, data)
        elif data:
            raise ValueError(f"policy {self.inner.info().name!r} cannot import session memory")

    def close(self) -> None:
        self.interrupt()
        self.inner.close()
