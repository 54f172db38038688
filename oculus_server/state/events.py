"""`EventLog`: what happened, for the recording's ``/events`` (drained) and the dashboard (recent)."""

from __future__ import annotations

import threading
import time
from collections import deque

from oculus_server.state.drain import DrainLog
from robot_formats.recording.records import Event

LOG_SLOTS = 1000  # events kept for the recorder
RECENT = 20  # events kept for the dashboard


class EventLog:
    """Events from every thread; the last error message is kept for the dashboard."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: DrainLog[Event] = DrainLog(LOG_SLOTS)  # for the recorder
        self._recent: deque[Event] = deque(maxlen=RECENT)  # for the dashboard
        self._last_error = ""
        self._last: dict[str, Event] = {}  # the newest event of each kind

    def add(self, kind: str, message: str, **data: object) -> Event:
        ev = Event(kind=kind, message=message, t_wall=time.time(), data=dict(data))
        self.put(ev)
        return ev

    def put(self, ev: Event) -> None:
        """Adds an event made elsewhere (e.g. by the recording process)."""
        kind, message = ev.kind, ev.message
        self._log.append(ev)
        with self._lock:
            self._recent.append(ev)
            self._last[kind] = ev
            if kind == "error":
                self._last_error = message

    def take(self) -> tuple[Event, ...]:
        """Returns and forgets the events since the previous call, oldest first."""
        return self._log.take()

    def recent(self) -> tuple[Event, ...]:
        with self._lock:
            return tuple(self._recent)

    def last(self, kind: str) -> Event | None:
        """The newest event of `kind` (None if there was none)."""
        with self._lock:
            return self._last.get(kind)

    def last_error(self) -> str:
        with self._lock:
            return self._last_error
