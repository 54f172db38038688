"""Scheduling for the daemon's threads: real-time when permitted, the best a normal user gets otherwise.

On Linux a thread may ask for SCHED_FIFO (root, CAP_SYS_NICE, or an ``rtprio`` limit in
``/etc/security/limits.conf``). A FIFO thread is woken at its deadline ahead of ordinary processes
(the simulator, a renderer, a browser), which is what keeps period jitter under a millisecond on a
busy 2-core machine. Without the privilege the request fails harmlessly and the thread runs under
the normal policy. Two things still help there and need no privilege:

* **a short time slice** (`set_slice`; Linux ≥ 6.12, EEVDF): a thread that asks for a slice shorter
  than the default gets an earlier virtual deadline, so when it wakes at its tick it preempts a
  CPU-bound process instead of waiting for that process's slice to end. Its fair share of CPU is
  unchanged (that is what nice sets);
* **a higher nice value** for work that can wait: the helper processes (recording, live view, the
  simulator's camera renderer) run at ``helper_nice`` (`frankateach.background`; raising nice is
  always allowed, lowering it back is not). Only for processes that do not share the daemon's GIL:
  a thread of this process preempted while holding the GIL would stall every loop behind it.

Where the process may not ask for SCHED_FIFO itself, RealtimeKit (rtkit, `oculus_server.threads.rtkit`),
the service desktop Linux runs for PipeWire, grants SCHED_RR to a user's threads without any set-up:
`RealtimeGrant` tries SCHED_FIFO first and rtkit second, for each thread that asks.

`describe_fix` is the one-line remedy the daemon prints once at start when it has no real-time
scheduling.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import resource
import signal
import sys
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

# sched_setattr(2): syscall numbers by machine; struct sched_attr (SCHED_ATTR_SIZE_VER0, 48 bytes).
_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274, "arm64": 274}
_SCHED_FLAG_RESET_ON_FORK = 0x01
# Back to normal keeps SCHED_RESET_ON_FORK: without privilege a thread may not clear it (rtkit sets it)
_RESET_ON_FORK = getattr(os, "SCHED_RESET_ON_FORK", 0)
_NORMAL = getattr(os, "SCHED_OTHER", 0) | _RESET_ON_FORK
_REALTIME = {getattr(os, "SCHED_FIFO", 1), getattr(os, "SCHED_RR", 2)}
SLICE_MIN_S, SLICE_MAX_S = 100e-6, 0.1  # what the kernel clamps a requested slice to


class _SchedAttr(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
    ]


def try_realtime(priority: int) -> bool:
    """Puts the calling thread under SCHED_FIFO at `priority` (1–99); returns True on success.

    `priority` 0 means "don't" and returns False. A failure is silent: the daemon says once at
    start what running without real-time scheduling means (`describe_fix`).
    """
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        # RESET_ON_FORK: child processes (adb, the simulator) never inherit the real-time policy.
        policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
        os.sched_setscheduler(0, policy, os.sched_param(priority))  # 0 = the calling thread
        return True
    except (PermissionError, OSError):
        return False


def realtime_error(priority: int) -> str:
    """Why the calling thread cannot get SCHED_FIFO at `priority` ("" if it can; nothing is changed).

    Tries it on a short-lived helper thread, so the caller's own policy stays as it is.
    """
    if priority <= 0:
        return "realtime_priority is 0 in the config"
    if not hasattr(os, "sched_setscheduler"):
        return f"no SCHED_FIFO on {platform.system()}"
    result: list[str] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            result.append("")
        except OSError as exc:
            result.append(f"{type(exc).__name__}: {exc.strerror or exc}")

    t = threading.Thread(target=probe, name="rt-probe", daemon=True)
    t.start()
    t.join(2.0)
    return result[0] if result else "the check did not finish"


def set_slice(seconds: float) -> bool:
    """Asks the kernel for time slices of `seconds` for the calling thread (normal policy, same nice).

    Returns True if the kernel took it (Linux ≥ 6.12 with EEVDF; older kernels accept the call and
    ignore the value, which is harmless). No privilege is needed.
    """
    nr = _SCHED_SETATTR.get(platform.machine())
    if nr is None or not sys.platform.startswith("linux") or seconds <= 0:
        return False
    try:
        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        attr = _SchedAttr(size=ctypes.sizeof(_SchedAttr), sched_policy=0, sched_flags=_SCHED_FLAG_RESET_ON_FORK,
                          sched_nice=nice, sched_runtime=int(min(max(seconds, SLICE_MIN_S), SLICE_MAX_S) * 1e9))
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.syscall(nr, 0, ctypes.byref(attr), 0)) == 0
    except (OSError, AttributeError):
        return False


def describe_fix(why: str) -> str:
    """What running without real-time scheduling means, and the one command that fixes it."""
    python = os.path.realpath(sys.executable)
    if why.startswith("realtime_priority is 0"):
        fix = ("set realtime_priority (e.g. 10) in the config; it needs root, CAP_SYS_NICE or an rtprio "
               "limit (see the README)")
    else:
        fix = f"run once: sudo setcap cap_sys_nice=ep {python}   (or the limits.conf lines in the README)"
    return (f"no real-time scheduling ({why}): the control, VR, robot and recording loops run at normal "
            "priority, so on a busy machine another process can delay a tick by tens of ms (each loop "
            f"overrun is reported on the dashboard and in /events). To fix it, {fix}")


def reset_normal(tid: int = 0) -> None:
    """Returns thread `tid` (0: the calling thread) to the normal time-sharing policy (no-op if not
    permitted, or if the thread has ended)."""
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(tid, _NORMAL, os.sched_param(0))
        except OSError:
            pass


class Kit(Protocol):
    """What `RealtimeGrant` needs of rtkit (`oculus_server.threads.rtkit.RealtimeKit`)."""

    def make_realtime(self, tid: int, priority: int) -> None: ...


class RealtimeGrant:
    """Real-time scheduling for the calling thread: SCHED_FIFO if this process may ask for it,
    else SCHED_RR from rtkit (`kit`, priorities capped at `max_priority`); thread-safe.

    `granted` maps the threads rtkit made real-time (kernel thread id) to their names; `error` is
    rtkit's first refusal ("" if none).
    """

    def __init__(self, kit: Kit | None = None, max_priority: int = 99) -> None:
        self.kit = kit
        self.max_priority = max_priority
        self.granted: dict[int, str] = {}
        self.error = ""
        self._lock = threading.RLock()  # `demote` may run in a signal handler of a thread inside `__call__`

    def __call__(self, priority: int) -> bool:
        """Asks for the calling thread at `priority` (0: don't); True if it now runs real-time."""
        if try_realtime(priority):
            return True
        if self.kit is None or priority <= 0:
            return False
        tid = threading.get_native_id()
        try:
            self.kit.make_realtime(tid, min(priority, self.max_priority))
        except RuntimeError as exc:  # RtkitError: refused, gone, or no answer in time
            with self._lock:
                self.error = self.error or str(exc)
            return False
        with self._lock:
            self.granted[tid] = threading.current_thread().name
        return True

    def demote(self) -> list[str]:
        """Returns every thread rtkit made real-time to normal scheduling; the names of those that were."""
        with self._lock:
            granted, self.granted = self.granted, {}
        for tid in granted:
            reset_normal(tid)
        return list(granted.values())

    def lost(self) -> list[str]:
        """The names of granted threads that no longer run real-time though they still run (rtkit
        took it back: its watchdog, or ``rtkitctl --reset-known``); they leave `granted`. Threads
        that ended leave it silently."""
        out: list[str] = []
        with self._lock:
            for tid, name in list(self.granted.items()):
                try:
                    policy = os.sched_getscheduler(tid) & ~_RESET_ON_FORK
                except OSError:  # ended
                    del self.granted[tid]
                    continue
                if policy not in _REALTIME:
                    del self.granted[tid]
                    out.append(name)
        return out


# SIGXCPU at this fraction of rtkit's RLIMIT_RTTIME (the kernel kills at the whole): the handler runs when
# the main thread next wakes (within `frankateach.signals.POLL_S`, 0.1 s), well before the hard limit
RT_SOFT_FRACTION = 0.25


def limit_rt_runtime(usec_max: int, on_overrun: Callable[[], None]) -> None:
    """Sets this process's RLIMIT_RTTIME as rtkit requires (hard `usec_max` µs) and calls `on_overrun`
    (in the main thread) when a real-time thread runs a quarter of that without sleeping (SIGXCPU), so it
    can go back to normal scheduling before the kernel kills the process. Call from the main thread.
    """
    soft = max(1, int(usec_max * RT_SOFT_FRACTION))
    resource.setrlimit(resource.RLIMIT_RTTIME, (soft, usec_max))
    signal.signal(signal.SIGXCPU, lambda _sig, _frame: on_overrun())
