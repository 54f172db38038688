"""What the daemon's helper children (the --debug simulator, the local assist inference service)
share: the lifeline arguments that keep them from outliving the daemon, the tail of its log, and
leaving no child behind when start-up is interrupted.

The children themselves watch their parent with `frankateach.lifeline.ParentWatch`; the daemon
stops them with `frankateach.lifeline.stop_child` (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from frankateach.lifeline import child_death_signal

log = logging.getLogger(__name__)

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def lifeline_args() -> list[str]:
    """``--parent-pid``/``--parent-death-signal`` for a child started now from this thread."""
    return ["--parent-pid", str(os.getpid()), "--parent-death-signal", str(child_death_signal())]


def log_tail(path: Path, n: int = 20) -> str:
    """The last `n` lines of a child's log ("" when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@contextmanager
def stop_on_interrupt(stop: Callable[[], None], what: str) -> Iterator[None]:
    """Around a child's start-up: on any exception `stop` the child and re-raise; on Ctrl-C
    (KeyboardInterrupt) stop it and exit quietly with `INTERRUPTED_EXIT_CODE`.

    Args:
        stop: stops the child (and cleans up after it).
        what: the child, for the log ("the simulator").

    Raises:
        SystemExit: 130 after a KeyboardInterrupt.
    """
    try:
        yield
    except KeyboardInterrupt:
        stop()
        log.warning("interrupted while %s was starting; stopped it", what)
        raise SystemExit(INTERRUPTED_EXIT_CODE) from None
    except BaseException:  # interrupted (SIGTERM) or failed while waiting: leave no child behind
        stop()
        raise
