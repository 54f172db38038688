"""A helper process that can wait gives way to the ones that keep time (no privilege needed).

`run_in_background(nice)` is called first thing in a helper process (the daemon's MCAP writer and
live view, the simulator's camera renderer), before it starts any thread: Linux keeps a nice
value per thread and a new thread inherits its creator's, so the whole process then runs at
`nice`. Raising a nice value is always allowed; lowering it again is not (so it is never lowered).

Linux shares the CPU between *groups* first, then between the tasks of a group: with autogroup
(``/proc/sys/kernel/sched_autogroup_enabled`` = 1, tasks in the root cgroup) a group is a
session, otherwise a cgroup (a systemd scope or service). A nice value only weighs a task against
the others of its group, so with autogroup a helper also leaves its parent's session (``setsid``:
a group of its own, whose weight is the autogroup's nice, ``/proc/self/autogroup``, set to the
same value): its work no longer uses up the share of the group the time-keeping loops are in.
A helper in a new session still dies with its parent (the daemon's children on their pipe's EOF,
the renderer by `frankateach.lifeline`); it only stops receiving the terminal's signals, which its
parent forwards as it decides.

`start_niced` starts a child from a short-lived thread at the helper's nice, so the child runs at
that nice from its first instruction: a spawned Python child spends its first second importing,
which would otherwise compete at the parent's priority.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

MAX_NICE = 19
START_TIMEOUT_S = 30.0  # `start_niced`: longest a child's start (fork + exec) may take, s
AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")
AUTOGROUP_SELF = Path("/proc/self/autogroup")


def autogroup_enabled() -> bool:
    """True where Linux groups tasks by session for fairness (autogroup on)."""
    try:
        return AUTOGROUP_SWITCH.read_text().strip() == "1" and AUTOGROUP_SELF.exists()
    except OSError:
        return False


def run_in_background(nice: int, own_group: bool = True) -> bool:
    """Lowers this process's CPU priority to `nice` (0–19; 0: leaves everything as it is).

    Call it first thing (threads started later inherit the nice; those already there are set
    too). With autogroup and `own_group`, the process also
    moves to a session (a scheduling group) of its own, at the same nice. Returns True if this
    thread now runs at nice ≥ `nice`; a refusal is logged and harmless.
    """
    if nice <= 0 or not hasattr(os, "setpriority"):
        return nice <= 0
    nice = min(nice, MAX_NICE)
    if own_group and autogroup_enabled():
        try:
            if os.getsid(0) != os.getpid():
                os.setsid()
            with open(AUTOGROUP_SELF, "w") as f:
                f.write(str(nice))
        except OSError as exc:
            log.warning("could not give this process a scheduling group of its own at nice %d: %s", nice, exc)
    me = threading.get_native_id()
    ok = True
    # Linux keeps a nice per thread: set it on each thread there already is (an import may have
    # started some, e.g. OpenBLAS's), the caller's last; threads started later inherit it.
    for tid in sorted(thread_nices(os.getpid()) or {me: 0}, key=lambda t: t == me):
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:  # a thread that ended meanwhile is no loss
            if tid == me:
                log.warning("could not lower this process's priority to nice %d: %s", nice, exc)
                ok = False
    return ok and os.getpriority(os.PRIO_PROCESS, me) >= nice


def thread_nices(pid: int) -> dict[int, int]:
    """Thread id → nice value of every thread of process `pid` (``/proc/PID/task/*/stat``; Linux)."""
    out: dict[int, int] = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
        out[int(stat.parent.name)] = int(fields[16])  # field 19 of proc_pid_stat(5): nice
    return out


def group_nice(pid: int) -> int | None:
    """The autogroup nice of process `pid` (None without autogroup)."""
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text()  # "/autogroup-123 nice 5"
    except OSError:
        return None
    return int(text.split()[-1]) if "nice" in text else None


def start_niced(start: Callable[[], T], nice: int) -> T:
    """Runs `start` (which starts a child process) in a new thread at `nice` and returns its result.

    A child inherits the nice value of the thread that forks it, so it runs at `nice` from its
    first instruction, imports included; the caller's own priority is untouched (a nice value is
    per thread on Linux). `nice` 0 (or no `setpriority`) runs `start` in the caller. Exceptions
    raised by `start` are raised here. Not for a child that asks for ``PR_SET_PDEATHSIG``: that
    fires when the thread that forked it ends, which here is at once.
    """
    if nice <= 0 or not hasattr(os, "setpriority"):
        return start()
    out: list[T] = []
    err: list[BaseException] = []

    def body() -> None:
        try:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(nice, MAX_NICE))
            except OSError as exc:  # harmless: the child lowers its own priority when it can
                log.warning("could not start a helper at nice %d: %s", nice, exc)
            out.append(start())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            err.append(exc)

    t = threading.Thread(target=body, name="start-niced", daemon=True)
    t.start()
    t.join(START_TIMEOUT_S)
    if t.is_alive():
        raise TimeoutError(f"starting a helper process took over {START_TIMEOUT_S:.0f} s")
    if err:
        raise err[0]
    return out[0]
