"""Counters and queue depths the dashboard shows and the recorder writes to ``/timing`` (~1 Hz)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from oculus_server.safety.kinds import ALL_KINDS, counter_name
from robot_formats.recording.records import SafetyRecord


@dataclass
class CounterValues:
    """Drop and queue counters (mutated only under `Counters`' lock)."""

    commands_dropped: int = 0  # stale commands replaced by fresher ones before being sent
    commands_sent: int = 0
    records_dropped: int = 0  # ticks lost to a full MCAP queue
    records_queued: int = 0
    camera_frames: int = 0
    camera_errors: int = 0
    vr_samples: int = 0
    sim_states: int = 0  # simulator state blobs received (--debug, ~1 Hz)
    sim_state_errors: int = 0  # unreadable ones
    state_feed_states: int = 0  # measured states received on the robot server's state feed
    state_feed_errors: int = 0  # unreadable state-feed messages
    measured_unrecorded: int = 0  # measured states pushed out of the recorder's log (recorder stalled)
    sent_unrecorded: int = 0  # sent commands pushed out of the recorder's log (recorder stalled)
    loop_overruns: int = 0  # loop ticks that started more than one period after their deadline
    live_messages: int = 0  # messages sent to live viewers (Foxglove WebSocket)
    live_ticks_dropped: int = 0  # ticks not shown live: the live sink's queue was full (a slow viewer)


class Counters:
    """Every counter, safety interventions by kind and queue depths, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = CounterValues()
        self._safety = {counter_name(k): 0 for k in ALL_KINDS}  # safety_box, ...
        self._queue_depths: dict[str, int] = {}

    def count(self, name: str, n: int = 1) -> None:
        """Adds `n` to counter `name` (a `CounterValues` field or a ``safety_<kind>`` counter)."""
        with self._lock:
            if name in self._safety:
                self._safety[name] += n
            else:
                setattr(self._values, name, getattr(self._values, name) + n)

    def count_safety(self, records: Iterable[SafetyRecord]) -> None:
        """Counts each intervention under its kind."""
        with self._lock:
            for r in records:
                name = counter_name(r.kind)
                self._safety[name] = self._safety.get(name, 0) + 1

    def set_queue_depth(self, name: str, depth: int) -> None:
        with self._lock:
            self._queue_depths[name] = depth

    def snapshot(self) -> dict[str, float]:
        """Counters, safety counters and queue depths (``queue_<name>``) as one flat map (a copy)."""
        with self._lock:
            out: dict[str, float] = dict(vars(self._values))
            out.update(self._safety)
            out.update({f"queue_{k}": v for k, v in self._queue_depths.items()})
        return out

    def safety_counts(self) -> dict[str, int]:
        """Safety interventions so far, by kind (`oculus_server.safety.kinds`)."""
        with self._lock:
            return {name[len("safety_"):]: n for name, n in self._safety.items()}
