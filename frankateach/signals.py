"""Stop requests from SIGINT / SIGTERM that are safe to take at any moment.

A Python signal handler runs in the main thread between two bytecodes — possibly while that
thread is inside ``Event.set`` or ``Event.wait`` and holds the event's internal lock. A handler
that calls ``stop_event.set()`` then blocks on a lock its own thread holds, and the process
hangs (seen: an operator's Ctrl-C delivered twice — terminal plus process group — froze the
daemon). So the handler here only stores the signal number; the main thread's wait loop turns
it into ``stop.set()`` within one poll period.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

POLL_S = 0.1  # how often a waiting main thread looks at the flag, s


class SignalFlag:
    """Records the first stop signal; takes no lock and does nothing else in the handler."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signum is not None

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        """The signal handler (also callable directly, e.g. from tests)."""
        if self.signum is None:
            self.signum = signum

    def raise_if_requested(self) -> None:
        """Turns a recorded stop signal into the exception Python's own handlers would raise, at a
        point of the caller's choosing (e.g. a start-up wait loop): KeyboardInterrupt for SIGINT,
        SystemExit(128 + signum) for any other."""
        if self.signum is None:
            return
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + self.signum)

    def install(self, signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> bool:
        """Installs the handler for `signums`; only possible from the main thread.

        Returns:
            False (nothing installed) when called from another thread.
        """
        if threading.current_thread() is not threading.main_thread():
            return False
        for signum in signums:
            signal.signal(signum, self.handler)
        return True

    def wait(self, stop: threading.Event, timeout: float | None = None, poll_s: float = POLL_S) -> bool:
        """Waits up to `timeout` s (None: forever) for `stop` or a stop signal.

        A signal sets `stop` here, outside the handler.

        Returns:
            True when stopping (`stop` set or a signal arrived), False when the timeout passed.
        """
        end = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            if self.requested:
                stop.set()
                return True
            left = poll_s if end is None else min(poll_s, end - time.monotonic())
            if left <= 0:
                return stop.is_set()
            if stop.wait(left):
                return True
