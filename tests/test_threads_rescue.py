"""Rescue: a late control tick moves the daemon's runnable threads to the rescuer's CPU.

A victim process stands in for the daemon: one thread spins (runnable) on one CPU until told
to sleep. The rescuer runs on the other CPU, in-process (`Rescuer`) and as the real process
(`python -m oculus_server.threads.rescue`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from oculus_server.threads.rescue import Beat, Rescuer, _task_state
from tests.daemon_fakes import wait_for

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")

VICTIM = r"""
import os, sys, threading
cpu = int(sys.argv[1])
go = threading.Event()
def spin():
    os.sched_setaffinity(0, {cpu})
    print(threading.get_native_id(), flush=True)
    while not go.is_set():
        pass  # runnable the whole time (the GIL is released every switch interval)
    threading.Event().wait(3600)  # asleep
t = threading.Thread(target=spin, daemon=True)
t.start()
sys.stdin.readline()  # the test says: sleep now
go.set()
sys.stdin.readline()  # the test says: exit
"""


@dataclass
class Victim:
    proc: subprocess.Popen
    spinner: int  # the spinning thread's id

    def sleep(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("sleep\n")
        self.proc.stdin.flush()

    def state(self) -> str:
        st = _task_state(self.proc.pid, self.spinner)
        assert st is not None
        return st[0]


@pytest.fixture
def cpus() -> tuple[int, int]:
    a, b = sorted(os.sched_getaffinity(0))[:2]
    return a, b  # the rescuer's, the victim's


@pytest.fixture
def victim(cpus: tuple[int, int]) -> Iterator[Victim]:
    proc = subprocess.Popen([sys.executable, "-c", VICTIM, str(cpus[1])], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    v = Victim(proc, int(proc.stdout.readline()))
    yield v
    proc.kill()
    proc.wait(5.0)


def test_beat_claims_one_rescue_per_late_tick_across_rescuers():
    beat = Beat()
    try:
        beat.write(12.5)
        assert beat.next_deadline() == 12.5
        other = Beat(beat.fd)  # the rescuer's view of the same memory
        assert other.next_deadline() == 12.5
        assert other.claim(12.5, cpu=0) and other.claim(12.5, cpu=0)  # the claimer may act again
        assert not beat.claim(12.5, cpu=1)  # the other rescuer leaves that tick alone
        assert beat.claim(12.525, cpu=1)  # the next late tick is anyone's
        other.close()
    finally:
        beat.close()


def test_a_runnable_thread_on_another_cpu_is_moved_and_gets_its_cpus_back_once_asleep(victim: Victim, cpus):
    here, there = cpus
    assert os.sched_getaffinity(victim.spinner) == {there} and victim.state() == "R"
    r = Rescuer(victim.proc.pid, here)
    assert r.rescue() >= 1
    assert os.sched_getaffinity(victim.spinner) == {here}
    assert r.moved[victim.spinner] == {there}
    r.restore()  # still runnable: left on the rescuer's CPU
    assert os.sched_getaffinity(victim.spinner) == {here}
    victim.sleep()
    assert wait_for(lambda: victim.state() == "S", 5.0)
    r.restore()
    assert os.sched_getaffinity(victim.spinner) == {there} and r.moved == {}
    assert r.rescue() == 0  # asleep now: nothing to move


def test_a_sleeping_thread_is_not_moved(victim: Victim, cpus):
    here, there = cpus
    victim.sleep()
    assert wait_for(lambda: victim.state() == "S", 5.0)
    assert Rescuer(victim.proc.pid, here).rescue() == 0
    assert os.sched_getaffinity(victim.spinner) == {there}


def rescue_process(victim: Victim, beat: Beat, cpu: int, parent_pid: int | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "oculus_server.threads.rescue", "--pid", str(victim.proc.pid), "--cpu", str(cpu),
         "--fd", str(beat.fd), "--period-s", "0.025", "--grace-s", "0.003",
         "--parent-pid", str(os.getpid() if parent_pid is None else parent_pid)],
        pass_fds=(beat.fd,), cwd=Path(__file__).resolve().parent.parent)


def test_the_rescue_process_acts_on_a_late_tick_and_restores_once_the_loop_ticks(victim: Victim, cpus):
    here, there = cpus
    beat = Beat()
    stop = threading.Event()
    proc = rescue_process(victim, beat, here)
    try:
        assert wait_for(lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == f"rescue-{here}", 10.0)
        assert os.sched_getaffinity(proc.pid) == {here}
        beat.write(time.monotonic() + 0.05)  # one tick, then none: it is late from then on
        assert wait_for(lambda: os.sched_getaffinity(victim.spinner) == {here}, 10.0)

        def ticking() -> None:  # the loop runs again, 40 Hz
            while not stop.wait(0.025):
                beat.write(time.monotonic() + 0.025)

        ticker = threading.Thread(target=ticking, daemon=True)
        ticker.start()
        time.sleep(0.2)
        assert os.sched_getaffinity(victim.spinner) == {here}  # still runnable: stays
        victim.sleep()
        assert wait_for(lambda: os.sched_getaffinity(victim.spinner) == {there}, 10.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5.0) == 0
    finally:
        stop.set()
        proc.kill()
        proc.wait(5.0)
        beat.close()


def test_the_rescue_process_ends_when_its_parent_is_not_the_one_named(victim: Victim, cpus):
    beat = Beat()
    try:
        proc = rescue_process(victim, beat, cpus[0], parent_pid=1)  # as if its parent had died
        assert proc.wait(10.0) == 0
    finally:
        beat.close()
