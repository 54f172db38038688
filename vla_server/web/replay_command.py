"""`teleop-replay` run as a child process: how the web UI makes plots and videos of recordings.

The service never imports the daemon; the daemon's command line is the contract. The child is
started with ``--progress json`` (its progress reaches the caller's callback) and ``--parent-pid``
(it never outlives the service); it is stopped (SIGTERM, then SIGKILL) when the caller's callback
raises (a cancelled job), when `timeout_s` passes, or on any other error.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from frankateach.lifeline import child_death_signal, stop_child
from robot_formats.recording.errors import RecordingError

COMMAND = "teleop-replay"
POLL_S = 0.2  # how often a silent child is checked (deadline, cancellation), s
STOP_WAIT_S = 2.0  # SIGTERM → SIGKILL, and SIGKILL → reaped, s
MAX_STDERR_CHARS = 2000  # of the child's error output, quoted in the error

Progress = Callable[[str, int, int], None]  # (phase, done, total); may raise to cancel


def replay_command() -> list[str]:
    """The `teleop-replay` executable: beside this interpreter (same environment), else on PATH.

    Raises:
        RecordingError: not installed.
    """
    beside = Path(sys.executable).with_name(COMMAND)
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which(COMMAND)
    if found is None:
        raise RecordingError(
            f"expected the {COMMAND!r} command (installed with the teleop daemon, oculus_server) beside "
            f"{sys.executable} or on PATH, found none: plots and videos need it"
        )
    return [found]


def run_replay(
    args: Sequence[str],
    timeout_s: float,
    progress: Progress | None = None,
    hide: Sequence[tuple[str, str]] = (),
) -> str:
    """Runs ``teleop-replay ARGS`` and returns its stdout lines that are not progress.

    Args:
        args: the command and its arguments, e.g. ``["plot", FILE, "-o", OUT]``.
        timeout_s: the child is stopped after this long, seconds.
        progress: called with each progress line's (phase, done, total), and with the last one
            every `POLL_S` while the child is silent; an exception from it stops the child and
            propagates.
        hide: (text, replacement) pairs applied to the error text (e.g. an absolute path → the id).

    Raises:
        RecordingError: the command failed (its error message), timed out or is not installed.
    """
    cmd = [
        *replay_command(), "--progress", "json", "--parent-pid", str(os.getpid()),
        "--parent-death-signal", str(child_death_signal(signal.SIGTERM)), *args,
    ]
    deadline = time.monotonic() + timeout_s
    last = ("starting", 0, 0)
    out_lines: list[str] = []
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                buf = b""
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise RecordingError(f"{COMMAND} {args[0]} did not finish within {timeout_s:.0f} s")
                    if sel.select(min(POLL_S, left)):
                        chunk = os.read(proc.stdout.fileno(), 65536)
                        if not chunk:
                            break
                        buf += chunk
                        *lines, buf = buf.split(b"\n")
                        for raw in lines:
                            last = _take_line(raw.decode(errors="replace"), last, out_lines)
                            if progress is not None:
                                progress(*last)
                    elif progress is not None:
                        progress(*last)  # lets the caller cancel while the child is silent
                if buf:
                    _take_line(buf.decode(errors="replace"), last, out_lines)
            try:
                code = proc.wait(max(deadline - time.monotonic(), POLL_S))
            except subprocess.TimeoutExpired:
                raise RecordingError(f"{COMMAND} {args[0]} did not finish within {timeout_s:.0f} s") from None
        except BaseException:
            stop_child(proc, STOP_WAIT_S, kill_wait_s=STOP_WAIT_S)
            raise
        finally:
            proc.stdout.close()
        if code != 0:
            err.seek(0)
            text = err.read().decode(errors="replace").strip()
            said = [ln for ln in text.splitlines() if ln.strip()]
            why = said[-1] if said else f"exit status {code}"
            why = why.removeprefix("error: ")
            for secret, shown in hide:
                why = why.replace(secret, shown)
            raise RecordingError(why[-MAX_STDERR_CHARS:])
    return "\n".join(out_lines)


def _take_line(line: str, last: tuple[str, int, int], out: list[str]) -> tuple[str, int, int]:
    """A progress line gives the new (phase, done, total); any other line is kept in `out`."""
    if line.startswith("{"):
        try:
            msg = json.loads(line)
            return str(msg["phase"]), int(msg["done"]), int(msg["total"])
        except (ValueError, KeyError, TypeError):
            pass
    if line.strip():
        out.append(line)
    return last
