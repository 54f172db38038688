"""Child processes that never outlive their parent.

A child (the simulator, its renderer) calls `ParentWatch.start` first thing. Two mechanisms end
it when the parent dies, whatever killed the parent (SIGKILL and the OOM killer included):

* Linux ``prctl(PR_SET_PDEATHSIG, sig)``: the kernel sends `sig` the moment the parent exits.
  Caveat: "the parent" is the *thread* that started the child; so the parent tells the child
  (``death_signal=0``) when it starts it from a thread that may end before the process does.
* a watcher thread polling ``os.getppid()`` every `poll_s` (orphans are re-parented), which also
  covers systems without prctl.

On the parent's death `on_parent_exit` runs (e.g. sets the stop event for a clean shutdown), and
if the process is still alive `grace_s` later it leaves with ``os._exit(EXIT_PARENT_GONE)``, so
the process is gone within ``poll_s + grace_s`` (< 1 s with the defaults) even when its shutdown
hangs.

Parent side: `child_death_signal` (what a child started now should ask for) and `stop_child`
(signal, then SIGKILL), the one way the daemon and the service stop their children.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
EXIT_PARENT_GONE = 75  # exit status of a child that left because its parent died (EX_TEMPFAIL)
PARENT_POLL_S = 0.1  # getppid() poll period, s
PARENT_GRACE_S = 0.4  # after the parent's death: time for a clean shutdown before os._exit, s
KILL_WAIT_S = 2.0  # after SIGKILL, how long to wait for the child to be reaped, s


def set_parent_death_signal(sig: int) -> bool:
    """Asks the kernel to send `sig` to this process when its parent (thread) exits.

    Returns:
        True if set; False where unsupported (not Linux, no libc) or when prctl failed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
            return False
    except (OSError, AttributeError) as exc:
        log.warning("prctl unavailable: %s", exc)
        return False
    return True


def child_death_signal(sig: int = signal.SIGTERM) -> int:
    """The death signal a child started now, from this thread, should ask for (parent side).

    PR_SET_PDEATHSIG fires when the *thread* that started the child exits, so only a child
    started from the main thread asks for `sig`; elsewhere 0 (the parent-pid watch suffices).
    """
    return int(sig) if threading.current_thread() is threading.main_thread() else 0


def stop_child(
    proc: subprocess.Popen | None,
    timeout_s: float,
    sig: int = signal.SIGTERM,
    kill_wait_s: float = KILL_WAIT_S,
) -> None:
    """Sends `sig` to `proc`, then SIGKILL if it has not exited within `timeout_s` s, and reaps it
    (waiting at most `kill_wait_s` s after SIGKILL). A no-op if `proc` is None or has exited.

    Raises:
        subprocess.TimeoutExpired: still not reaped `kill_wait_s` s after SIGKILL.
    """
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(kill_wait_s)


def parent_alive(parent_pid: int) -> bool:
    """True while `parent_pid` is still this process's parent."""
    return os.getppid() == parent_pid


class ParentWatch:
    """Ends this process when `parent_pid` (its parent) exits; see the module docstring.

    Args:
        parent_pid: pid of the parent this process must not outlive (passed by the parent, so a
            parent that died before the child got here is noticed).
        on_parent_exit: called once, from the watcher thread (or at `start` if the parent is
            already gone), when the parent is gone; must not block.
        death_signal: signal the kernel sends when the parent exits (0: none, watch only).
        poll_s: getppid() poll period, seconds.
        grace_s: seconds between `on_parent_exit` and the forced ``os._exit``.
        exit_fn: the forced exit (injectable for tests), called with EXIT_PARENT_GONE. A clean
            exit of the process before the deadline ends the (daemon) timer thread with it.
    """

    def __init__(
        self,
        parent_pid: int,
        on_parent_exit: Callable[[], None],
        death_signal: int = signal.SIGTERM,
        poll_s: float = PARENT_POLL_S,
        grace_s: float = PARENT_GRACE_S,
        exit_fn: Callable[[int], None] = os._exit,
    ) -> None:
        if parent_pid <= 0:
            raise ValueError(f"parent_pid must be a positive pid, got {parent_pid}")
        if not (poll_s > 0 and grace_s >= 0):
            raise ValueError(f"expected poll_s > 0 and grace_s >= 0, got {poll_s}, {grace_s}")
        self.parent_pid = parent_pid
        self.on_parent_exit = on_parent_exit
        self.death_signal = int(death_signal)
        self.poll_s = float(poll_s)
        self.grace_s = float(grace_s)
        self._exit = exit_fn
        self._fired = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.death_signal_set = False

    @property
    def parent_gone(self) -> bool:
        """True once the parent's death was noticed."""
        return self._fired.is_set()

    def start(self) -> None:
        """Arms the death signal and starts the watcher (returns at once)."""
        if self.death_signal:
            self.death_signal_set = set_parent_death_signal(self.death_signal)
        # The parent may have died before prctl: then no signal will ever come.
        if not parent_alive(self.parent_pid):
            self._fire()
        self._thread = threading.Thread(target=self._watch, name="parent-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stops watching (the process is exiting on its own)."""
        self._closed.set()

    def _watch(self) -> None:
        while not self._closed.wait(self.poll_s):
            if self._fired.is_set() or not parent_alive(self.parent_pid):
                self._fire()
                return

    def _fire(self) -> None:
        if self._fired.is_set():
            return
        self._fired.set()
        log.warning("parent process %d is gone: shutting down", self.parent_pid)
        try:
            self.on_parent_exit()
        except Exception:  # the forced exit below still happens
            log.exception("shutdown on parent exit failed")
        deadline = time.monotonic() + self.grace_s
        forced = threading.Thread(target=self._force_exit, args=(deadline,), name="parent-gone-exit",
                                  daemon=True)
        forced.start()

    def _force_exit(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        log.error("still running %.1f s after the parent died: exiting now", self.grace_s)
        for handler in logging.getLogger().handlers:
            try:
                handler.flush()
            except Exception:  # noqa: BLE001 - best effort before a hard exit
                pass
        self._exit(EXIT_PARENT_GONE)
