"""A helper process gives way: after `run_in_background(n)` the process and every thread it starts
run at nice n (read back from /proc), in a scheduling group of its own at nice n where Linux
groups by session (autogroup); nice 0 changes nothing; a nice is never lowered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from frankateach.background import autogroup_enabled, group_nice, thread_nices

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice values per thread: Linux")

CHILD = textwrap.dedent("""
    import json, os, sys, threading
    from frankateach.background import group_nice, run_in_background, thread_nices
    sid = os.getsid(0)
    ok = run_in_background(int(sys.argv[1]))
    done = threading.Event()
    t = threading.Thread(target=done.wait)  # started after: inherits the nice
    t.start()
    nices = thread_nices(os.getpid())
    done.set()
    t.join()
    print(json.dumps({"ok": ok, "nices": sorted(nices.values()), "group": group_nice(os.getpid()),
                      "new_session": os.getsid(0) != sid, "leader": os.getsid(0) == os.getpid()}))
""")


def _run(nice: int, start_nice: int = 0) -> dict:
    cmd = [sys.executable, "-c", CHILD, str(nice)]
    if start_nice:
        cmd = ["nice", "-n", str(start_nice), *cmd]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_the_process_and_the_threads_it_starts_run_at_the_nice_in_a_group_of_their_own() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    want = max(base, 7)
    r = _run(7)
    assert r["ok"] and r["nices"] == [want, want]
    if autogroup_enabled():
        assert r["new_session"] and r["leader"] and r["group"] == 7
    else:
        assert r["group"] is None or not r["new_session"]


def test_nice_zero_changes_nothing() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    r = _run(0)
    assert r["ok"] and r["nices"] == [base, base] and not r["new_session"]


def test_a_higher_nice_is_kept_never_lowered() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    step = max(1, 10 - base)  # start the child above 3
    r = _run(3, start_nice=step)
    assert r["ok"] and r["nices"] == [min(19, base + step)] * 2


def test_thread_nices_reads_this_process() -> None:
    nices = thread_nices(os.getpid())
    assert nices and set(nices.values()) >= {os.getpriority(os.PRIO_PROCESS, 0)}
    assert thread_nices(2**22 + 12345) == {}  # no such process
    assert group_nice(2**22 + 12345) is None
