"""`EpisodeChannel`: episode requests (control thread, keys → recorder) and the episode status
(recorder, MCAP writer → dashboard)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class EpisodeStatus:
    """What the dashboard shows about recording.

    Attributes:
        active: an episode is open.
        path: the file being written ('' when none).
        started_wall: `time.time()` at episode start.
        messages, bytes_written: written so far.
        success: marked successful (B).
        last_saved: path of the last finalized episode.
        error: last recording error ('' when none).
    """

    active: bool = False
    path: str = ""
    started_wall: float = float("nan")
    messages: int = 0
    bytes_written: int = 0
    success: bool = False
    last_saved: str = ""
    error: str = ""


class EpisodeChannel:
    """Pending episode requests and the current `EpisodeStatus`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status = EpisodeStatus()
        self._requests: deque[str] = deque(maxlen=16)

    def request(self, what: str) -> None:
        """Queues an episode request: "toggle", "start", "stop" or "success"."""
        with self._lock:
            self._requests.append(what)

    def take_requests(self) -> list[str]:
        with self._lock:
            out = list(self._requests)
            self._requests.clear()
        return out

    def update(self, **changes: Any) -> None:
        """Changes fields of the status (`EpisodeStatus` field names)."""
        with self._lock:
            self._status = replace(self._status, **changes)

    def status(self) -> EpisodeStatus:
        with self._lock:
            return self._status
