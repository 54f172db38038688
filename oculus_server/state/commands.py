"""The command path's shared values: the newest command and mode (`CommandChannel`, control
thread → recorder, dashboard) and every command that left for the robot (`SendLog`, robot thread
→ recorder), with the latencies the dashboard and ``/timing`` show."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from oculus_server.state.counters import Counters
from oculus_server.state.drain import DrainLog
from oculus_server.state.freeze import freeze
from robot_formats.recording.records import ControlMode, RobotCommand, SentCommand

LOG_SLOTS = 4096  # sent commands kept for the recorder
LATENCY_SLOTS = 2000  # latency samples kept for the percentiles


def latency_figures(name: str, samples_s: deque[float]) -> dict[str, float]:
    """``<name>_p50_ms``, ``_p99_ms``, ``_max_ms`` of `samples_s` (seconds); {} when empty."""
    arr = np.fromiter(samples_s, dtype=float)
    if not arr.size:
        return {}
    return {
        f"{name}_p50_ms": float(np.percentile(arr, 50) * 1e3),
        f"{name}_p99_ms": float(np.percentile(arr, 99) * 1e3),
        f"{name}_max_ms": float(arr.max() * 1e3),
    }


class CommandChannel:
    """The newest command the control thread made, the control mode, VR-sample-to-command latency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._command: RobotCommand | None = None
        self._mode = ControlMode.PREDICTIVE
        self._vr_to_cmd: deque[float] = deque(maxlen=LATENCY_SLOTS)  # VR receive -> command made, s

    def set_command(self, cmd: RobotCommand) -> None:
        freeze([cmd.action, cmd.target.pos, cmd.target.quat])
        with self._lock:
            self._command = cmd
            self._mode = cmd.mode
            if np.isfinite(cmd.vr_t_recv):
                self._vr_to_cmd.append(cmd.created - cmd.vr_t_recv)

    def set_mode(self, mode: ControlMode) -> None:
        with self._lock:
            self._mode = mode

    def command(self) -> RobotCommand | None:
        with self._lock:
            return self._command

    def mode(self) -> ControlMode:
        with self._lock:
            return self._mode

    def latency_figures(self) -> dict[str, float]:
        """VR-sample-to-command latency: ``vr_to_cmd_p50_ms`` / ``_p99_ms`` / ``_max_ms``."""
        with self._lock:
            samples = deque(self._vr_to_cmd)
        return latency_figures("vr_to_cmd", samples)


class SendLog:
    """Every command the robot thread sent, numbered in send order, until the recorder takes it."""

    def __init__(self, counters: Counters, slots: int = LOG_SLOTS) -> None:
        self._lock = threading.Lock()
        self._counters = counters
        self._log: DrainLog[SentCommand] = DrainLog(slots, counters, "sent_unrecorded")
        self._age: deque[float] = deque(maxlen=LATENCY_SLOTS)  # age of each command at send, s
        self._seq = 0

    def mark_sent(self, cmd: RobotCommand, t_send: float) -> SentCommand:
        """Records that `cmd` left for the robot at monotonic time `t_send` (robot thread only).

        Returns it numbered in send order; the recorder gets each one once (`take`).
        """
        with self._lock:
            self._age.append(t_send - cmd.created)
            sent = SentCommand(cmd, self._seq, t_send, time.time())
            self._seq += 1
            self._log.append(sent)  # inside the lock: the log stays in send order
        self._counters.count("commands_sent")
        return sent

    def take(self) -> tuple[SentCommand, ...]:
        """Returns and forgets the commands sent since the previous call, in send order."""
        return self._log.take()

    def latency_figures(self) -> dict[str, float]:
        """Command age at send: ``cmd_age_p50_ms`` / ``_p99_ms`` / ``_max_ms``."""
        with self._lock:
            samples = deque(self._age)
        return latency_figures("cmd_age", samples)
