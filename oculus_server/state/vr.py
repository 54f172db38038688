"""`VRChannel`: the newest VR sample and the source's status (VR thread → control, recorder, dashboard)."""

from __future__ import annotations

import threading

from oculus_server.state.counters import Counters
from oculus_server.state.freeze import freeze
from oculus_server.vr.source import SourceState, SourceStatus
from robot_formats.recording.records import VRSample


class VRChannel:
    """The newest VR sample (its pose arrays read-only) and the source status."""

    def __init__(self, counters: Counters) -> None:
        self._lock = threading.Lock()
        self._counters = counters
        self._sample: VRSample | None = None
        self._status = SourceStatus(SourceState.WAITING)

    def set_sample(self, sample: VRSample) -> None:
        freeze(list(sample.poses.values()))
        with self._lock:
            self._sample = sample
        self._counters.count("vr_samples")

    def sample(self) -> VRSample | None:
        with self._lock:
            return self._sample

    def set_status(self, status: SourceStatus) -> None:
        with self._lock:
            self._status = status

    def status(self) -> SourceStatus:
        with self._lock:
            return self._status
