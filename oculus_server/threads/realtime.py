"""Optional real-time scheduling for the daemon's fixed-rate threads.

On Linux a thread may ask for SCHED_FIFO (needs root or CAP_SYS_NICE). A FIFO thread is woken at
its deadline ahead of ordinary processes (the simulator, a renderer, a browser), which is what
keeps period jitter under a millisecond on a busy 2-core machine. Without the privilege the
request fails harmlessly and the thread runs with normal priority; the daemon says so once.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

_warned = False


def try_realtime(priority: int) -> bool:
    """Puts the calling thread under SCHED_FIFO at `priority` (1–99); returns True on success.

    `priority` 0 means "don't" and returns False.
    """
    global _warned
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        # RESET_ON_FORK: child processes (adb, the simulator) never inherit the real-time policy.
        policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
        os.sched_setscheduler(0, policy, os.sched_param(priority))  # 0 = the calling thread
        return True
    except (PermissionError, OSError) as exc:
        if not _warned:
            _warned = True
            log.info(
                "real-time scheduling unavailable (%s); loops run at normal priority "
                "(grant CAP_SYS_NICE or run as root for lower jitter, or set realtime_priority: 0)",
                exc,
            )
        return False


def reset_normal() -> None:
    """Returns the calling thread to the normal time-sharing policy (no-op if not permitted)."""
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass
