"""`SimStateSlot`: the simulator's newest state blob (--debug, ~1 Hz), until the recorder takes it."""

from __future__ import annotations

import threading

from frankateach.sim.state_message import SimStateSample
from oculus_server.state.counters import Counters


class SimStateSlot:
    """Holds the newest `SimStateSample` not yet recorded."""

    def __init__(self, counters: Counters) -> None:
        self._lock = threading.Lock()
        self._counters = counters
        self._sample: SimStateSample | None = None

    def set(self, sample: SimStateSample) -> None:
        """Keeps the simulator's newest state blob until the recorder takes it."""
        with self._lock:
            self._sample = sample
        self._counters.count("sim_states")

    def take(self) -> SimStateSample | None:
        """Returns and forgets the state blob that arrived since the previous call (or None)."""
        with self._lock:
            out, self._sample = self._sample, None
        return out

    def peek(self) -> SimStateSample | None:
        """The newest state blob not yet recorded, left in place (the live view between episodes)."""
        with self._lock:
            return self._sample
