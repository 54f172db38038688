"""`CameraFrames`: camera frames as they arrive (camera thread → recorder, assist thread)."""

from __future__ import annotations

import threading
import time

from frankateach.messages import CameraFrame
from oculus_server.state.counters import Counters

PENDING_PER_CAMERA = 8  # the recorder drains every 25 ms; never let more than this wait


class CameraFrames:
    """Frames not yet recorded (per camera, at most `PENDING_PER_CAMERA`) and the newest per camera."""

    def __init__(self, counters: Counters) -> None:
        self._lock = threading.Lock()
        self._counters = counters
        self._new: dict[str, list[CameraFrame]] = {}
        self._latest: dict[str, tuple[CameraFrame, float]] = {}  # newest per camera, monotonic receipt

    def add(self, frame: CameraFrame) -> None:
        with self._lock:
            pending = self._new.setdefault(frame.name, [])
            pending.append(frame)
            del pending[:-PENDING_PER_CAMERA]
            self._latest[frame.name] = (frame, time.monotonic())
        self._counters.count("camera_frames")

    def latest(self, name: str) -> tuple[CameraFrame, float] | None:
        """The newest frame of camera `name` and its receipt time (`time.monotonic()`), not drained."""
        with self._lock:
            return self._latest.get(name)

    def take_new(self) -> dict[str, tuple[CameraFrame, ...]]:
        """Returns and forgets the frames that arrived since the previous call."""
        with self._lock:
            out = {k: tuple(v) for k, v in self._new.items() if v}
            self._new = {}
        return out
