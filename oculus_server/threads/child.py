"""A helper process of the daemon (the recording process, the live view's): spawned, never forked
(the daemon has running threads), one pipe down (what the daemon forwards) and one pipe up (what
the child reports). The pipes are the daemon's alone: a child never inherits another's ends, so a
child's ``recv`` ends (EOF) exactly when the daemon's end closes, whatever the reason — that is how
every child dies with the daemon. Each child names itself (``/proc/PID/comm``, what ``ps`` and
``top`` show: ``mcap-writer``, ``live-view``) and, with a `nice` above 0, gives way to the
daemon's loops (`frankateach.background`: its own nice, and its own scheduling group where Linux
groups by session): its work can wait, theirs cannot.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from frankateach.background import run_in_background, start_niced
from frankateach.thread_name import set_os_thread_name


def _child_entry(name: str, nice: int, target: Callable[..., None], *args: Any) -> None:
    set_os_thread_name(name)  # the main thread's name is the process's (``ps``, ``top``)
    run_in_background(nice)
    target(*args)


def spawn_child(target: Callable[..., None], name: str, args: tuple[Any, ...],
                nice: int = 0) -> tuple[BaseProcess, Connection, Connection]:
    """Starts `target(items, status, *args)` in a spawned process called `name`, at `nice`
    (0: the daemon's priority; above: it gives way to the daemon's loops, see `run_in_background`).

    Returns:
        the process, the daemon's sending end of `items` and its receiving end of `status`.
    """
    ctx = multiprocessing.get_context("spawn")
    status_r, status_w = ctx.Pipe(duplex=False)
    items_r, items_w = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_entry, name=name, args=(name, nice, target, items_r, status_w, *args), daemon=True)
    start_niced(proc.start, nice)  # at `nice` from its first import on
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
