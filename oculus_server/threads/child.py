"""A helper process of the daemon (the recording process, the live view's): spawned, never forked
(the daemon has running threads), one pipe down (what the daemon forwards) and one pipe up (what
the child reports). The pipes are the daemon's alone: a child never inherits another's ends, so a
child's ``recv`` ends (EOF) exactly when the daemon's end closes, whatever the reason — that is how
every child dies with the daemon. Each child names itself (``/proc/PID/comm``, what ``ps`` and
``top`` show: ``mcap-writer``, ``live-view``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

PR_SET_NAME = 15  # <linux/prctl.h>


def name_process(name: str) -> bool:
    """Sets this process's name as ``ps``/``top`` show it (Linux; at most 15 bytes kept)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _child_entry(name: str, target: Callable[..., None], *args: Any) -> None:
    name_process(name)
    target(*args)


def spawn_child(target: Callable[..., None], name: str,
                args: tuple[Any, ...]) -> tuple[BaseProcess, Connection, Connection]:
    """Starts `target(items, status, *args)` in a spawned process called `name`.

    Returns:
        the process, the daemon's sending end of `items` and its receiving end of `status`.
    """
    ctx = multiprocessing.get_context("spawn")
    status_r, status_w = ctx.Pipe(duplex=False)
    items_r, items_w = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_entry, name=name, args=(name, target, items_r, status_w, *args), daemon=True)
    proc.start()
    items_r.close()
    status_w.close()
    return proc, items_w, status_r


def end_child(proc: BaseProcess | None, wait_s: float) -> None:
    """Waits up to `wait_s` for the child to exit, then kills it."""
    if proc is None or proc.pid is None:
        return
    if proc.is_alive():
        proc.join(wait_s)
    if proc.is_alive():
        proc.kill()
        proc.join(2.0)


class StatusSender:
    """The child's end of the status pipe: whole messages from any thread; a vanished daemon is
    ignored (there is nobody left to report to, and the child ends on its own)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, msg: tuple) -> None:
        with self._lock:
            try:
                self._conn.send(msg)
            except (OSError, ValueError):  # the daemon is gone: nothing to report to
                pass


def receive_status(conn: Connection, apply: Callable[[tuple], None]) -> bool:
    """Applies each message the child reports until its last (``("done", …)``): True; False when
    the pipe ends first (the child died or was killed)."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return False
        apply(msg)
        if msg[0] == "done":
            return True
