"""Replays recorded VR samples in real time (scaled by a speed factor).

The source consumes an iterable of `ReplayFrame` ``(t_seconds, poses, buttons)`` lazily, so a long
recording is never loaded at once. The recording reader only has to yield those tuples (see
`frames_from_samples` and `make_source("replay:FILE", replay_loader=...)`). Frame times may start
anywhere: the first frame plays at `start()`, frame i at ``start + (t_i − t_0) / speed``.

Each frame is checked (finite time not going backwards, rigid (4, 4) poses, a button map);
a bad frame is skipped and counted in the status' reject histogram, never raised.
Analog values stored ``oculus_reader``-style as 1-tuples are converted to plain floats.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from oculus_server.errors import ConfigError
from oculus_server.vr.parser import Rejection, normalize_buttons, rigid_problem
from oculus_server.vr.source import ButtonValue, SourceStatus, VRSample, VRSource, playback_state

# (t_seconds, side -> (4, 4) head_T_controller, button map)
ReplayFrame = tuple[float, Mapping[str, np.ndarray], Mapping[str, Any]]
log = logging.getLogger(__name__)


class _Frame(NamedTuple):
    n: int  # position in the input iterable, from 0 (used as the sample's seq)
    t: float
    poses: dict[str, np.ndarray]
    buttons: dict[str, ButtonValue]


def frames_from_samples(samples: Iterable[VRSample]) -> Iterator[ReplayFrame]:
    """Adapts `VRSample`s (e.g. decoded from a recording) to replay frames timed by `t_recv`."""
    for s in samples:
        yield (s.t_recv, s.poses, s.buttons)


def check_frame(frame: Any) -> tuple[float, dict[str, np.ndarray], dict[str, ButtonValue]] | Rejection:
    """Validates and normalises one replay frame; returns it or a `Rejection`."""
    try:
        t, poses, buttons = frame
    except (TypeError, ValueError):
        return Rejection("bad_frame", f"expected (t_seconds, poses, buttons); got {type(frame).__name__}")
    try:
        t = float(t)
    except (TypeError, ValueError):
        return Rejection("bad_time", f"expected a number of seconds; got {t!r}")
    if not math.isfinite(t):
        return Rejection("bad_time", f"expected a finite time; got {t!r}")
    if not isinstance(poses, Mapping) or not isinstance(buttons, Mapping):
        return Rejection(
            "bad_frame", f"expected poses and buttons as mappings; got {type(poses).__name__}, {type(buttons).__name__}"
        )
    clean: dict[str, np.ndarray] = {}
    for side, pose in poses.items():
        if side not in ("r", "l"):
            return Rejection("bad_pose", f"expected pose sides 'r'/'l'; got {side!r}")
        try:
            arr = np.asarray(pose, dtype=float)
        except (TypeError, ValueError):
            return Rejection("bad_pose", f"pose {side!r}: expected a (4, 4) array of numbers")
        if arr.shape != (4, 4):
            return Rejection("bad_pose", f"pose {side!r}: expected shape (4, 4); got {arr.shape}")
        problem = rigid_problem(arr.reshape(16).tolist())
        if problem is not None:
            return Rejection(problem.reason, f"pose {side!r}: {problem.detail}")
        clean[side] = arr.copy()
    try:
        norm = normalize_buttons(buttons)
    except (TypeError, ValueError, IndexError):
        return Rejection("bad_buttons", "expected an oculus_reader-style button map")
    return t, clean, norm


class ReplaySource(VRSource):
    """Plays replay frames back against a clock.

    Args:
        frames: iterable of (t_seconds, poses, buttons), time-ordered; consumed lazily.
        speed: playback speed factor (2.0 = twice as fast).
        clock: monotonic clock, seconds (default `time.monotonic`).
        name: source name for the dashboard.
    """

    keeps_anchor = True  # the recording means the arm's motion from the grip press (see VRSource)

    def __init__(
        self,
        frames: Iterable[ReplayFrame],
        *,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "replay",
    ) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ConfigError(f"replay speed must be a positive number, got {speed!r}")
        self.name = name
        self.speed = float(speed)
        self._frames = iter(frames)
        self._clock = clock
        self._lock = threading.Lock()
        self._start: float | None = None
        self._t_first: float | None = None
        self._t_last = -math.inf
        self._next: _Frame | None = None
        self._done = False
        self._index = 0  # frames consumed (valid or not)
        self._samples = 0
        self._rejected = 0
        self._reasons: dict[str, int] = {}
        self._last_error = ""

    def start(self) -> None:
        """Starts the playback clock (the first frame becomes due now)."""
        if self._start is None:
            self._start = self._clock()

    def poll(self) -> VRSample | None:
        """Returns the newest frame that has become due since the last call, or None."""
        now = self._clock()
        with self._lock:
            if self._start is None:
                self._start = now
            elapsed = (now - self._start) * self.speed
            newest = None
            while True:
                frame = self._peek()
                if frame is None or frame.t - (self._t_first or 0.0) > elapsed:
                    break
                newest = frame
                self._next = None
            if newest is None:
                return None
            self._samples += 1
            return VRSample(poses=newest.poses, buttons=newest.buttons, t_recv=now, seq=newest.n)

    def status(self) -> SourceStatus:
        """WAITING before start, CONNECTED while playing, FINISHED after the last frame."""
        with self._lock:
            return SourceStatus(
                state=playback_state(self._start is not None, self._done and self._next is None),
                samples=self._samples,
                rejected=self._rejected,
                last_error=self._last_error,
                detail=f"frame {self._index}, ×{self.speed:g}",
                reject_reasons=dict(self._reasons),
            )

    def _peek(self) -> _Frame | None:
        """The next valid frame (kept until consumed), or None at the end."""
        while self._next is None and not self._done:
            try:
                raw = next(self._frames)
            except StopIteration:
                self._done = True
                break
            except Exception as exc:  # the recording reader failed: end the replay, keep the reason
                log.warning("%s: reading frames failed: %s", self.name, exc)
                self._last_error = f"reading frames failed after frame {self._index}: {exc}"
                self._done = True
                break
            self._index += 1
            checked = check_frame(raw)
            if isinstance(checked, tuple) and checked[0] < self._t_last:
                checked = Rejection(
                    "time_backwards", f"expected non-decreasing times; got {checked[0]:.6f} after {self._t_last:.6f}"
                )
            if isinstance(checked, Rejection):
                self._rejected += 1
                self._reasons[checked.reason] = self._reasons.get(checked.reason, 0) + 1
                self._last_error = f"frame {self._index - 1}: {checked.detail}"
                continue
            self._t_last = checked[0]
            if self._t_first is None:
                self._t_first = checked[0]
            self._next = _Frame(self._index - 1, *checked)
        return self._next
