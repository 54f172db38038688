"""`SafetyChannel`: the command gate's interventions (for ``/safety`` and the dashboard) and the
command path's status line."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from oculus_server.state.counters import Counters
from oculus_server.state.drain import DrainLog
from robot_formats.recording.records import SafetyRecord

LOG_SLOTS = 2000  # interventions kept for the recorder
RECENT = 20  # interventions kept for the dashboard


@dataclass(frozen=True)
class SafetyStatus:
    """What the dashboard shows about the command path.

    Attributes:
        held: why the arm holds (or why nothing is sent), "" while it follows the operator.
        fault: why measured robot state is not believed ("" when it is).
        sending: a command left on the last control tick.
    """

    held: str = "starting"
    fault: str = ""
    sending: bool = False


class SafetyChannel:
    """Safety interventions (each counted per kind) and the `SafetyStatus`."""

    def __init__(self, counters: Counters) -> None:
        self._lock = threading.Lock()
        self._counters = counters
        self._log: DrainLog[SafetyRecord] = DrainLog(LOG_SLOTS)  # for the recorder
        self._recent: deque[SafetyRecord] = deque(maxlen=RECENT)  # for the dashboard
        self._status = SafetyStatus()

    def add(self, records: tuple[SafetyRecord, ...] | list[SafetyRecord]) -> None:
        """Publishes safety interventions (counted per kind, kept for the recorder and dashboard)."""
        if not records:
            return
        self._log.extend(records)
        with self._lock:
            self._recent.extend(records)
        self._counters.count_safety(records)

    def take(self) -> tuple[SafetyRecord, ...]:
        """Returns and forgets the interventions since the previous call (for `/safety`)."""
        return self._log.take()

    def recent(self) -> tuple[SafetyRecord, ...]:
        with self._lock:
            return tuple(self._recent)

    def set_status(self, status: SafetyStatus) -> None:
        with self._lock:
            self._status = status

    def status(self) -> SafetyStatus:
        with self._lock:
            return self._status
