"""Rescue: when a control tick is late, move the daemon's runnable threads to a CPU where it runs.

Without real-time scheduling, a thread of the daemon that is preempted while it holds Python's
GIL stops every loop until it runs again, and on a busy machine it can sit runnable for tens of ms
on a CPU where the daemon's group is not picked, while the loops wake on time on the other CPU and
wait for the GIL (`perf sched` on the development VM: the recording process's status receiver,
preempted by a new arena process the moment that started, runnable for 40 ms). No thread of the
daemon can help it: each needs the GIL to run.

A rescue process (one per CPU, each pinned to its CPU, in the daemon's session and so in its
scheduling group) needs no GIL of the daemon's. It sleeps until the control loop's next deadline
(read from `Beat`, a few bytes of shared memory the control loop writes at every tick) plus
`grace_s`. If the tick has not been taken by then, every thread of the daemon that is runnable on
another CPU is moved to the rescuer's own CPU (``sched_setaffinity``, allowed for one's own
processes without privilege): the rescuer runs there now, so the daemon's group is being picked
there. Once the loop ticks again, each moved thread gets its CPUs back as soon as it sleeps (a
sleeping thread is not moved by that; it wakes where it may run). One rescue per late tick: the
first rescuer to act writes that tick's deadline into the beat, the other leaves it alone.
"""

from __future__ import annotations

import argparse
import logging
import mmap
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

BEAT = struct.Struct("<ddd")  # next control deadline (monotonic s); the late one being rescued; by which CPU
GRACE_S = 0.003  # a control tick this late starts a rescue, s
STALE_S = 1.0  # a tick this late means the loop is not ticking (starting, stopping): no rescue


class Beat:
    """The control loop's next deadline in shared memory (a memfd), for the rescue processes.

    The daemon makes it and passes `fd` to each rescuer; `write` is one store per tick."""

    def __init__(self, fd: int | None = None) -> None:
        self.owner = fd is None
        self.fd = os.memfd_create("oculus-beat", 0) if fd is None else fd  # not inherited unless passed
        if self.owner:
            os.ftruncate(self.fd, BEAT.size)
        self._buf = mmap.mmap(self.fd, BEAT.size)

    def write(self, next_deadline: float) -> None:
        """The control loop took a tick; its next one is due at `next_deadline` (monotonic s)."""
        struct.pack_into("<d", self._buf, 0, next_deadline)

    def next_deadline(self) -> float:
        return float(struct.unpack_from("<d", self._buf, 0)[0])

    def claim(self, deadline: float, cpu: int) -> bool:
        """Claims the rescue of the tick due at `deadline` for the rescuer on `cpu`; False if the
        other rescuer has (so they do not move the same threads back and forth)."""
        _, rescued, by = BEAT.unpack_from(self._buf, 0)
        if rescued == deadline and int(by) != cpu:
            return False
        struct.pack_into("<dd", self._buf, 8, deadline, float(cpu))
        return True

    def close(self) -> None:
        self._buf.close()
        if self.owner:
            os.close(self.fd)


def _task_state(pid: int, tid: int) -> tuple[str, int] | None:
    """(state letter, CPU it last ran on) of thread `tid` of `pid`; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(b")", 1)[1].split()  # after the name, which may hold spaces
    return fields[0].decode(), int(fields[36])  # fields 3 (state) and 39 (processor)


class Rescuer:
    """Moves `pid`'s runnable threads to `cpu` (`rescue`) and gives them their CPUs back (`restore`)."""

    def __init__(self, pid: int, cpu: int) -> None:
        self.pid = pid
        self.cpu = cpu
        self.moved: dict[int, set[int]] = {}  # thread id → the CPUs it had before it was moved
        self.rescues = 0  # late ticks acted on
        self.threads_moved = 0

    def rescue(self) -> int:
        """Moves each thread of `pid` that is runnable on another CPU to `cpu`; returns how many."""
        here = {self.cpu}
        n = 0
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{self.pid}/task")]
        except OSError:
            return 0
        for tid in tids:
            st = _task_state(self.pid, tid)
            if st is None or st[0] != "R" or st[1] == self.cpu:
                continue
            try:
                before = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, here)
            except OSError:  # it ended meanwhile
                continue
            self.moved.setdefault(tid, before)
            n += 1
        self.rescues += 1
        self.threads_moved += n
        return n

    def restore(self) -> None:
        """Gives each moved thread that is no longer runnable its CPUs back (still-runnable ones,
        and ones whose CPUs someone else changed meanwhile, are left until later / alone)."""
        for tid, before in list(self.moved.items()):
            st = _task_state(self.pid, tid)
            if st is not None and st[0] == "R":
                continue
            del self.moved[tid]
            if st is None:
                continue
            try:
                if os.sched_getaffinity(tid) == {self.cpu}:
                    os.sched_setaffinity(tid, before)
            except OSError:
                pass


def run(beat: Beat, rescuer: Rescuer, period_s: float, grace_s: float, parent_pid: int,
        stopped: list[bool]) -> None:
    """The rescue loop: until `stopped[0]` or the parent is gone (see the module docstring).
    While a tick stays late, it acts again every `grace_s`."""
    checked = 0.0
    while not stopped[0] and os.getppid() == parent_pid:
        due = beat.next_deadline()
        now = time.monotonic()
        if due <= 0 or now - due > STALE_S:  # the loop has not started, or is not ticking
            time.sleep(period_s)
            continue
        check_at = max(due, checked) + grace_s
        if check_at > now:
            time.sleep(check_at - now)
        checked = time.monotonic()
        if beat.next_deadline() > due:  # the tick was taken
            if rescuer.moved:
                rescuer.restore()
        elif beat.claim(due, rescuer.cpu):
            rescuer.rescue()
    rescuer.restore()


class RescueProcesses:
    """The daemon's side: the beat, and one rescue process per CPU of `cpus` (started by `start`
    from the main thread, in the daemon's session; they end with it, or on `stop`)."""

    def __init__(self, cpus: tuple[int, ...], period_s: float, grace_s: float = GRACE_S) -> None:
        self.cpus = cpus
        self.period_s = period_s
        self.grace_s = grace_s
        self.beat = Beat()
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        from oculus_server.child_process import lifeline_args

        for cpu in self.cpus:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "oculus_server.threads.rescue", "--pid", str(os.getpid()),
                 "--cpu", str(cpu), "--fd", str(self.beat.fd), "--period-s", repr(self.period_s),
                 "--grace-s", repr(self.grace_s), *lifeline_args()],
                pass_fds=(self.beat.fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parents[2]))
        log.info("rescue processes on CPUs %s (pids %s)", list(self.cpus), [p.pid for p in self.procs])

    def stop(self) -> None:
        from frankateach.lifeline import stop_child

        for p in self.procs:
            stop_child(p, timeout_s=2.0)
        self.procs = []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="oculus-rescue", description=__doc__.splitlines()[0])
    ap.add_argument("--pid", type=int, required=True, help="the daemon's pid")
    ap.add_argument("--cpu", type=int, required=True, help="the CPU this rescuer stays on")
    ap.add_argument("--fd", type=int, required=True, help="the beat's memfd (inherited)")
    ap.add_argument("--period-s", type=float, required=True, help="the control loop's period, s")
    ap.add_argument("--grace-s", type=float, default=GRACE_S, help="lateness that starts a rescue, s")
    ap.add_argument("--parent-pid", type=int, required=True)
    ap.add_argument("--parent-death-signal", type=int, default=0)
    args = ap.parse_args(argv)
    if args.parent_death_signal:
        from frankateach.lifeline import set_parent_death_signal

        set_parent_death_signal(args.parent_death_signal)
    stopped = [False]

    def _stop(signum: int, frame: object) -> None:
        stopped[0] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the daemon stops us
    from frankateach.thread_name import set_os_thread_name

    set_os_thread_name(f"rescue-{args.cpu}")
    os.sched_setaffinity(0, {args.cpu})
    run(Beat(args.fd), Rescuer(args.pid, args.cpu), args.period_s, args.grace_s, args.parent_pid, stopped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
