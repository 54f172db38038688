"""A VR source that plays a named trajectory (see `oculus_server.vr.trajectories`) on a clock.

Samples lie on a fixed grid of `rate_hz`: the k-th sample is the trajectory at trajectory time
``(k / rate_hz − held) · speed`` and carries ``seq = k``, so the samples depend only on elapsed
time (and a slow poller sees seq gaps, like with a real headset). ``held`` is the wall time spent
waiting at the trajectory's gates for the arm (`watch_robot`; 0 when the source cannot see it, so
the trajectory then plays on the clock alone). The clock is injectable for tests.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import numpy as np

from oculus_server.constants import VR_FREQ
from oculus_server.errors import ConfigError
from oculus_server.vr.source import SourceStatus, VRSample, VRSource, playback_state
from oculus_server.vr.trajectories import (
    GATE_MAX_WAIT_S,
    GATE_PROGRESS_M,
    GATE_TIMEOUT_S,
    GRIP_PRESS_T,
    Gate,
    Trajectory,
    get_trajectory,
)

log = logging.getLogger(__name__)

ORIGIN_WINDOW_S = 0.15  # trajectory s after the grip press in which the hand's pose is taken as origin


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
        gate_timeout_s: wall seconds a gate waits for an arm that comes no closer
            (`GATE_PROGRESS_M`); `GATE_MAX_WAIT_S` at most in all.
    """

    keeps_anchor = True  # the script means the arm's motion from the grip press (see VRSource)

    def __init__(
        self,
        trajectory: str | Trajectory = "circle",
        *,
        speed: float = 1.0,
        rate_hz: float = VR_FREQ,
        loop: bool = False,
        left: bool = False,
        clock: Callable[[], float] = time.monotonic,
        gate_timeout_s: float = GATE_TIMEOUT_S,
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
        self.gate_timeout_s = float(gate_timeout_s)
        self._measured: Callable[[], np.ndarray | None] | None = None
        self._held_s = 0.0  # wall seconds spent holding at gates
        self._run = -1  # the run (loop index) the gate state below belongs to
        self._origin: np.ndarray | None = None  # measured hand at this run's grip press
        self._passed = 0  # gates of this run already passed
        self._waiting_since: float | None = None  # when the current gate started holding
        self._progress_at = 0.0  # when the arm last came closer to the current gate
        self._closest = math.inf  # the arm's closest distance to the current gate, m
        self.gate_waits: list[tuple[str, float, bool]] = []  # (gate, wall s held, reached) per gate held

    @property
    def run(self) -> int:
        """Which run of a looping trajectory plays (0 first; -1 before the first sample)."""
        return self._run

    def watch_robot(self, measured_position: Callable[[], np.ndarray | None]) -> None:
        """Holds the trajectory at its gates until the measured hand is there (see the module doc)."""
        self._measured = measured_position

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
        return self._split(self._elapsed(k))[1:]

    def _elapsed(self, k: int) -> float:
        """Trajectory seconds played at grid sample `k` (gate holds excluded), all runs together."""
        return (k / self.rate_hz - self._held_s) * self.speed

    def _split(self, t: float) -> tuple[int, Trajectory, float]:
        """(run, trajectory, time in it) for `t` trajectory seconds played in all."""
        duration = self.trajectory.duration_s
        if not (self.loop and duration is not None):
            return 0, self.trajectory, t
        run = int(t // duration)
        if run % 2 and self._alternate is not None:
            return run, self._alternate, t - run * duration
        return run, self.trajectory, t - run * duration

    def _hold_at_gates(self, now: float, run: int, trajectory: Trajectory, t: float) -> bool:
        """Passes the gates up to `t` whose pose the arm has reached; True if one holds (the
        caller replays the same trajectory time: the held wall time is added to `_held_s`)."""
        if run != self._run:
            self._run, self._origin, self._passed, self._waiting_since = run, None, 0, None
        if self._measured is None or not trajectory.gates:
            return False
        if self._origin is None and GRIP_PRESS_T <= t < GRIP_PRESS_T + ORIGIN_WINDOW_S:
            self._origin = self._measured()  # the hand at the grip press (the arm is still then)
        if self._origin is None:
            return False  # the arm was not seen at the grip press: play on the clock
        while self._passed < len(trajectory.gates) and trajectory.gates[self._passed].t <= t:
            gate = trajectory.gates[self._passed]
            error = self._error(gate)
            reached = error <= gate.tol_m
            if self._waiting_since is None and not reached:
                self._waiting_since = self._progress_at = now
                self._closest = error
            elif error < self._closest - GATE_PROGRESS_M:  # the arm is still on its way
                self._progress_at, self._closest = now, error
            waited = 0.0 if self._waiting_since is None else now - self._waiting_since
            coming = now - self._progress_at < self.gate_timeout_s and waited < GATE_MAX_WAIT_S
            if not reached and coming:
                self._held_s += (t - gate.t) / self.speed  # hold the controller at the gate
                return True
            if self._waiting_since is not None:
                self.gate_waits.append((gate.name, waited, reached))
                if not reached:
                    log.warning("scripted %s: the arm did not reach the end of %r (%.1f cm away after %.1f s); "
                                "going on", trajectory.name, gate.name, error * 100, waited)
            self._waiting_since = None
            self._passed += 1
        return False

    def _error(self, gate: Gate) -> float:
        """How far (m) the measured hand is from the gate's pose (inf while it is not seen)."""
        measured = self._measured() if self._measured is not None else None
        if measured is None or self._origin is None:
            return math.inf
        error = np.asarray(measured, dtype=float) - (np.asarray(self._origin, dtype=float) + gate.displacement)
        return float(np.linalg.norm(error))

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
        run, trajectory, t = self._split(self._elapsed(k))
        if self._hold_at_gates(now, run, trajectory, t):
            run, trajectory, t = self._split(self._elapsed(k))
        duration = self.trajectory.duration_s
        if duration is not None and not self.loop and self._elapsed(k) > duration:
            with self._lock:
                self._finished = True
            return None
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
