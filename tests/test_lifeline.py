"""`frankateach.lifeline`: a child never outlives its parent, whatever signal killed the parent.

Real processes and real signals: a "parent" process starts a "child" that arms a `ParentWatch`;
the test SIGKILLs the parent and measures how long the child survives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from frankateach.lifeline import EXIT_PARENT_GONE, ParentWatch, stop_child

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_BUDGET_S = 3.0  # the child is gone this long after its parent's death (1 s by design; slack for load)


def alive(pid: int) -> bool:
    """True if `pid` runs (an exited, not yet reaped zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def time_until_gone(pid: int, timeout_s: float) -> float:
    t0 = time.monotonic()
    while alive(pid) and time.monotonic() - t0 < timeout_s:
        time.sleep(0.005)
    return time.monotonic() - t0


CHILD = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from frankateach.lifeline import ParentWatch
if {ignore_term}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a child whose clean shutdown hangs
watch = ParentWatch(int(sys.argv[1]), lambda: None, death_signal={death_signal}, poll_s={poll_s})
watch.start()
print("armed", flush=True)
while True:
    time.sleep(1)
"""

PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(__import__("os").getpid())],
                         stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "armed"
print(child.pid, flush=True)
import time
while True:
    time.sleep(1)
"""


def _family(ignore_term: bool, death_signal: int, poll_s: float) -> tuple[subprocess.Popen, int]:
    child = textwrap.dedent(CHILD).format(root=ROOT, ignore_term=ignore_term, death_signal=death_signal,
                                          poll_s=poll_s)
    parent = subprocess.Popen([sys.executable, "-c", PARENT, child], stdout=subprocess.PIPE, text=True)
    line = parent.stdout.readline() if parent.stdout else ""
    assert line.strip().isdigit(), f"parent did not start its child: {line!r}"
    return parent, int(line)


@pytest.mark.parametrize(
    "ignore_term, death_signal, poll_s, why",
    [
        (False, signal.SIGTERM, 5.0, "death signal (polling too slow to be the cause)"),
        (False, 0, 0.1, "parent-pid polling alone (no prctl)"),
        (True, signal.SIGTERM, 0.1, "shutdown hangs: forced exit after the grace period"),
    ],
)
def test_child_exits_soon_after_its_parents_sigkill(
    ignore_term: bool, death_signal: int, poll_s: float, why: str
) -> None:
    parent, child_pid = _family(ignore_term, death_signal, poll_s)
    try:
        assert alive(child_pid)
        parent.kill()  # SIGKILL: the parent gets no chance to stop its child
        parent.wait(5)
        took = time_until_gone(child_pid, 5.0)
        print(f"{why}: child gone {took:.3f} s after the parent's SIGKILL")
        assert not alive(child_pid), f"{why}: child outlived its parent by > 5 s"
        assert took < EXIT_BUDGET_S, f"{why}: child took {took:.2f} s"
    finally:
        for pid in (parent.pid, child_pid):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        parent.wait(5)


def test_a_parent_already_gone_at_start_fires_at_once_and_forces_the_exit() -> None:
    # We are not our own parent: as if the real parent died before the child armed the watch.
    called = threading.Event()
    exited: list[int] = []
    watch = ParentWatch(os.getpid(), called.set, death_signal=0, grace_s=0.05, exit_fn=exited.append)
    watch.start()
    assert watch.parent_gone and called.is_set()
    deadline = time.monotonic() + 2.0
    while not exited and time.monotonic() < deadline:
        time.sleep(0.01)
    assert exited == [EXIT_PARENT_GONE]


def test_a_live_parent_is_left_alone() -> None:
    exited: list[int] = []
    watch = ParentWatch(os.getppid(), lambda: exited.append(-1), death_signal=0, poll_s=0.01,
                        exit_fn=exited.append)
    watch.start()
    time.sleep(0.1)
    watch.close()
    assert not watch.parent_gone and exited == []


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="positive pid"):
        ParentWatch(0, lambda: None)
    with pytest.raises(ValueError, match="poll_s"):
        ParentWatch(1, lambda: None, poll_s=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_death_signal_is_set_through_prctl() -> None:
    # In a throw-away child: the setting is inherited by nothing and dies with it.
    code = (
        f"import sys; sys.path.insert(0, {ROOT!r}); "
        "from frankateach.lifeline import set_parent_death_signal as s; sys.exit(0 if s(15) else 1)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0


STOPPABLE = """
import signal, sys, time
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a child whose clean shutdown hangs
elif sys.argv[1] == "int-exits-0":
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def _stoppable(mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", STOPPABLE, mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize(
    "mode, sig, returncode",
    [
        ("plain", signal.SIGTERM, -signal.SIGTERM),  # ends on the signal
        ("ignore", signal.SIGTERM, -signal.SIGKILL),  # ignores it: SIGKILL after the timeout
        ("int-exits-0", signal.SIGINT, 0),  # the signal asked for is the one sent
    ],
)
def test_stop_child_signals_then_kills_and_reaps(mode: str, sig: int, returncode: int) -> None:
    proc = _stoppable(mode)
    try:
        stop_child(proc, 0.5, sig=sig)
        assert proc.returncode == returncode  # reaped: no zombie left
        assert not alive(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        assert proc.stdout is not None
        proc.stdout.close()


def test_stop_child_leaves_no_child_and_an_exited_one_alone() -> None:
    stop_child(None, 1.0)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    stop_child(proc, 1.0)  # no signal to a reaped pid (which may belong to another process by now)
    assert proc.returncode == 0
