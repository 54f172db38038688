"""The roles a part of the shared state plays for a producer that only writes to it.

The MCAP writer takes these, not the concrete parts, so the same writer runs in the daemon's
process (the parts themselves) or in a helper process (a relay that sends each update back).
"""

from __future__ import annotations

from typing import Any, Protocol

from robot_formats.recording.records import Event


class CountSink(Protocol):
    """Where counters and queue depths go (`Counters`)."""

    def count(self, name: str, n: int = 1) -> None: ...

    def set_queue_depth(self, name: str, depth: int) -> None: ...


class EpisodeSink(Protocol):
    """Where episode status changes go (`EpisodeChannel.update`)."""

    def update(self, **changes: Any) -> None: ...


class EventSink(Protocol):
    """Where events go (`EventLog.add`); returns the event made."""

    def add(self, kind: str, message: str, **data: object) -> Event: ...
