"""A VR source that plays a named trajectory (see `oculus_server.vr.trajectories`) on a clock.

Samples lie on a fixed grid of `rate_hz`: the k-th sample is the trajectory at trajectory time
``k / rate_hz · speed`` and carries ``seq = k``, so the samples depend only on elapsed time (and a
slow poller sees seq gaps, like with a real headset). The clock is injectable for tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from oculus_server.constants import VR_FREQ
from oculus_server.errors import ConfigError
from oculus_server.vr.source import SourceStatus, VRSample, VRSource, playback_state
from oculus_server.vr.trajectories import Trajectory, get_trajectory


class ScriptedSource(VRSource):
    """Deterministic controller motion for tests and demos.

    Args:
        trajectory: a name from `TRAJECTORIES` ("hold", "circle", "figure8", "pick_place") or a
            `Trajectory`.
        speed: trajectory seconds per wall second (2.0 plays twice as fast).
        rate_hz: sample grid, Hz.
        loop: restart a finite trajectory at its end instead of finishing (alternating with its
            `alternate`, e.g. pick_place / place_back, so the scene is restored every other run).
        left: the left controller performs the motion (X/Y/LG/LTr buttons) instead of the right.
        clock: monotonic clock, seconds (default `time.monotonic`).
    """

    def __init__(
        self,
        trajectory: str | Trajectory = "circle",
        *,
        speed: float = 1.0,
        rate_hz: float = VR_FREQ,
        loop: bool = False,
        left: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ConfigError(f"scripted source speed must be a positive number, got {speed!r}")
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ConfigError(f"scripted source rate must be a positive number of Hz, got {rate_hz!r}")
        self.trajectory = get_trajectory(trajectory) if isinstance(trajectory, str) else trajectory
        alternate = self.trajectory.alternate
        self._alternate = get_trajectory(alternate) if alternate else None
        if self._alternate is not None and self._alternate.duration_s != self.trajectory.duration_s:
            raise ConfigError(
                f"trajectory {self.trajectory.name!r} alternates with {alternate!r}, which lasts "
                f"{self._alternate.duration_s} s instead of {self.trajectory.duration_s} s"
            )
        self.name = f"scripted:{self.trajectory.name}"
        self.speed = float(speed)
        self.rate_hz = float(rate_hz)
        self.loop = loop
        self.left = left
        self._clock = clock
        self._t0: float | None = None
        self._last_k = -1
        self._samples = 0
        self._finished = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Anchors trajectory time 0 at the current clock reading."""
        self._t0 = self._clock()

    def trajectory_time(self, k: int) -> float:
        """Trajectory time (s) of grid sample `k`, wrapped when looping."""
        return self.trajectory_at(k)[1]

    def trajectory_at(self, k: int) -> tuple[Trajectory, float]:
        """The trajectory playing at grid sample `k` and its time (s) in it.

        Looping, run n (from 0) plays the trajectory, or its `alternate` when n is odd.
        """
        t = k / self.rate_hz * self.speed
        duration = self.trajectory.duration_s
        if not (self.loop and duration is not None):
            return self.trajectory, t
        run = int(t // duration)
        if run % 2 and self._alternate is not None:
            return self._alternate, t - run * duration
        return self.trajectory, t - run * duration

    def poll(self) -> VRSample | None:
        """Returns the newest grid sample not yet returned, or None (also once finished)."""
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        if self._finished:
            return None
        k = int(math.floor((now - self._t0) * self.rate_hz + 1e-9))
        if k <= self._last_k:
            return None
        duration = self.trajectory.duration_s
        if duration is not None and not self.loop and k / self.rate_hz * self.speed > duration:
            with self._lock:
                self._finished = True
            return None
        trajectory, t = self.trajectory_at(k)
        poses, buttons = trajectory.sample(t, left=self.left)
        self._last_k = k
        with self._lock:
            self._samples += 1
        return VRSample(poses=poses, buttons=buttons, t_recv=now, seq=k)

    def status(self) -> SourceStatus:
        """CONNECTED while playing, FINISHED after a finite trajectory's end, WAITING before start."""
        with self._lock:
            return SourceStatus(
                state=playback_state(self._t0 is not None, self._finished),
                samples=self._samples,
                detail=f"{self.trajectory.name} ×{self.speed:g}"
                + (f" (loop{' with ' + self._alternate.name if self._alternate else ''})" if self.loop else "")
                + (" left hand" if self.left else ""),
            )
