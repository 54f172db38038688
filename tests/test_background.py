"""A helper process gives way: after `run_in_background(n)` the process and every thread it starts
run at nice n (read back from /proc), in a scheduling group of its own at nice n where Linux
groups by session (autogroup); nice 0 changes nothing; a nice is never lowered."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from frankateach.background import autogroup_enabled, group_nice, start_niced, thread_nices

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


# -- start_niced: the child is niced from its first instruction, the caller is not --------------
FIRST_LINE = "import os, threading; print(os.getpriority(os.PRIO_PROCESS, 0), flush=True)"


def test_a_child_started_niced_runs_at_that_nice_from_its_first_line_and_the_caller_keeps_its_own() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    me = threading.get_native_id()
    proc = start_niced(lambda: subprocess.Popen([sys.executable, "-c", FIRST_LINE], stdout=subprocess.PIPE,
                                                 text=True), 6)
    out, _ = proc.communicate(timeout=60)
    assert int(out) == max(base, 6)
    assert os.getpriority(os.PRIO_PROCESS, me) == base  # the calling thread: untouched


def test_a_spawned_helper_imports_at_its_nice() -> None:
    """`spawn_child` starts the daemon's helpers this way: the nice shows before `run_in_background`."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    ctx = multiprocessing.get_context("spawn")
    r, w = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_report_nice, args=(w,), daemon=True)
    start_niced(proc.start, 4)
    w.close()
    assert r.poll(60)
    assert r.recv() == max(base, 4)
    proc.join(10)


def _report_nice(conn: Connection) -> None:
    conn.send(os.getpriority(os.PRIO_PROCESS, 0))


def test_start_niced_at_zero_runs_in_the_caller_and_errors_reach_the_caller() -> None:
    assert start_niced(threading.get_native_id, 0) == threading.get_native_id()
    assert start_niced(threading.get_native_id, 3) != threading.get_native_id()

    def fails() -> None:
        raise FileNotFoundError("no such program")

    with pytest.raises(FileNotFoundError, match="no such program"):
        start_niced(fails, 3)
