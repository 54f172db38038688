"""How the daemon's threads get real-time scheduling, and what the operator is told about it.

In order: SCHED_FIFO asked by each thread itself (root, CAP_SYS_NICE or an rtprio limit); else,
with ``rtkit: true``, SCHED_RR from RealtimeKit (`oculus_server.threads.rtkit`), which a desktop
grants a user without any set-up; else normal scheduling, which on a busy machine can delay a tick
by tens of ms (`realtime.describe_fix` says so once, with the fix).

`Scheduling.setup` runs in the main thread before the loops start; `Scheduling.report` after they
asked (each thread sets its `scheduled` event once it did); `Scheduling.take_demotion` in the main
thread's wait loop.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from oculus_server.threads.cpu_weight import describe_weight, own_weight, systemd_hint
from oculus_server.threads.realtime import RealtimeGrant, describe_fix, limit_rt_runtime, realtime_error
from oculus_server.threads.rtkit import RealtimeKit, RtkitError

log = logging.getLogger(__name__)

MIN_RTTIME_USEC = 20_000  # the shortest RLIMIT_RTTIME rtkit may require that the daemon accepts, µs
ASKED_TIMEOUT_S = 6.0  # longest `report` waits for the threads to have asked (an rtkit call: ≤ 5 s)


@dataclass
class Report:
    """What the operator is told at start: a log line (`level`) and a ``scheduling`` event's fields."""

    level: int
    message: str
    data: dict[str, Any] = field(default_factory=dict)


class Scheduling:
    """The daemon's real-time set-up for loops asking at `priority` (0: none asked)."""

    def __init__(self, priority: int, use_rtkit: bool = True) -> None:
        self.priority = priority
        self.use_rtkit = use_rtkit
        self.grant = RealtimeGrant()
        self.fifo_error = ""  # why SCHED_FIFO is refused ("" if it is not)
        self.rtkit_error = ""  # why rtkit was not used ("" if it was, or not needed)
        self._kit: RealtimeKit | None = None
        self._demoted: list[str] = []
        self._lock = threading.RLock()  # RLock: `_on_rt_overrun` is a signal handler in the main thread

    def setup(self) -> RealtimeGrant:
        """Finds out how threads get real-time scheduling (main thread only: it may install a
        SIGXCPU handler); returns the grant each thread calls with its priority."""
        self.fifo_error = realtime_error(self.priority)
        if not self.fifo_error or self.priority <= 0:
            return self.grant
        if not self.use_rtkit:
            self.rtkit_error = "rtkit is false in the config"
            return self.grant
        if not sys.platform.startswith("linux"):
            self.rtkit_error = f"no RealtimeKit on {sys.platform}"
            return self.grant
        try:
            self._kit = RealtimeKit.connect()
            usec = self._kit.limits.rttime_usec_max
            if usec < MIN_RTTIME_USEC:
                raise RtkitError(f"rtkit requires RLIMIT_RTTIME ≤ {usec} µs: too short for the loops "
                                 f"(expected at least {MIN_RTTIME_USEC} µs)")
            limit_rt_runtime(usec, self._on_rt_overrun)
        except (RtkitError, OSError, ValueError) as exc:
            self.rtkit_error = str(exc)
            self.close()
            return self.grant
        self.grant = RealtimeGrant(self._kit, self._kit.limits.max_priority)
        return self.grant

    def report(self, threads: Sequence[Any]) -> Report | None:
        """What to tell the operator once `threads` (each with `name`, `realtime_priority`,
        `realtime` and a `scheduled` event) have asked; None when every loop runs real-time by
        SCHED_FIFO or none asked."""
        if not self.fifo_error:
            return None
        for t in threads:
            t.scheduled.wait(ASKED_TIMEOUT_S)
        asked = [t for t in threads if t.realtime_priority > 0]
        normal = [t.name for t in asked if not t.realtime]
        rtkit_error = self.rtkit_error or self.grant.error
        if self._kit is not None and asked and not normal:
            lim = self._kit.limits
            return Report(logging.INFO,
                          f"real-time scheduling from RealtimeKit (SCHED_RR, priority capped at {lim.max_priority}; "
                          f"SCHED_FIFO itself: {self.fifo_error}); a thread running {lim.rttime_usec_max // 1000} ms "
                          "without sleeping would be killed, so at a quarter of that every loop goes back to normal",
                          {"realtime": True, "via": "rtkit", "reason": self.fifo_error})
        weight = own_weight()
        why = self.fifo_error + (f"; RealtimeKit: {rtkit_error}" if rtkit_error else "")
        message = describe_fix(why) + describe_weight(weight, systemd_hint())
        # loops that did not get real-time scheduling wait for their ticks on several CPUs (`wakers`)
        spread = {t.name: len(cpus) for t in threads
                  if not t.realtime and len(cpus := getattr(t, "waker_cpus", ())) > 1}
        if spread:
            message += (f" Meanwhile each tick of {', '.join(spread)} is waited for on {max(spread.values())} CPUs "
                        "and the first thread awake takes it (loop_wakers).")
        if self.grant.demote():
            # all or none: a real-time dashboard or writer beside normal loops would preempt them
            message = (f"RealtimeKit refused {', '.join(normal)}, so no thread runs real-time. " + message)
        return Report(logging.WARNING, message,
                      {"realtime": False, "reason": why, "cpu_weight": weight, "normal": normal,
                       "wakers": spread})

    def _on_rt_overrun(self) -> None:
        """SIGXCPU (main thread): a real-time thread ran too long without sleeping; every thread
        rtkit made real-time goes back to normal before the kernel's hard limit kills the process."""
        names = self.grant.demote()
        with self._lock:
            self._demoted.extend(names)

    def take_demotion(self) -> Report | None:
        """What to tell the operator if the loops lost real-time scheduling since the last call
        (None if not): demoted by `_on_rt_overrun`, or taken back by rtkit (then the others are
        demoted too: all or none). Call from the main thread's wait loop."""
        with self._lock:
            names, self._demoted = self._demoted, []
        if names:
            return Report(logging.ERROR,
                          "a real-time thread ran over a quarter of RLIMIT_RTTIME without sleeping: the threads "
                          f"RealtimeKit made real-time ({', '.join(names)}) are back to normal scheduling",
                          {"realtime": False, "reason": "RLIMIT_RTTIME", "threads": names})
        lost = self.grant.lost()
        if not lost:
            return None
        rest = self.grant.demote()
        return Report(logging.ERROR,
                      f"RealtimeKit took real-time scheduling back from {', '.join(lost)} (its watchdog does so "
                      "when real-time threads starve the machine; or rtkitctl --reset-known): every loop runs at "
                      "normal scheduling from now on",
                      {"realtime": False, "reason": "rtkit took it back", "threads": lost + rest})

    def close(self) -> None:
        if self._kit is not None:
            self._kit.close()
            self._kit = None
