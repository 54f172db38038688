"""How long do the simulator and its renderer outlive a killed parent? (Target: < 1 s.)

Usage::

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_orphans.py [--runs 5] [--no-cameras]

Each run starts a stand-in daemon process that starts `frankateach-sim` through
`oculus_server.sim_process.SimProcess` (as `--debug` does), SIGKILLs the stand-in, and times how
long the simulator and every process under it keep running. Prints one line per run, then the
median and the worst case. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DAEMON = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from oculus_server.sim_process import SimProcess
sim = SimProcess(0.0, cameras={cameras}, control_port={port}, camera_port_offset={cam},
                 log_path=Path({log!r}))
sim.start(timeout_s=120)
print(sim.proc.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    """True if `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def descendants(pid: int) -> list[int]:
    """`pid`'s children, grandchildren, ... (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except FileNotFoundError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except FileNotFoundError:
                continue
            out += kids
            todo += kids
    return out


def one_run(port: int, cameras: bool, log: Path) -> tuple[float, int]:
    """Returns (seconds until the last simulator process is gone, processes it had)."""
    code = textwrap.dedent(DAEMON).format(root=str(ROOT), cameras=cameras, port=port, cam=port + 10,
                                          log=str(log))
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    daemon = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    line = daemon.stdout.readline() if daemon.stdout else ""
    if not line.strip().isdigit():
        daemon.kill()
        raise SystemExit(f"simulator did not start; see {log}")
    sim = int(line)
    family = [sim, *descendants(sim)]
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    t0 = time.monotonic()
    while any(alive(p) for p in family) and time.monotonic() - t0 < 10.0:
        time.sleep(0.002)
    took = time.monotonic() - t0
    for p in family:
        if alive(p):
            os.kill(p, signal.SIGKILL)
    return took, len(family)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-cameras", dest="cameras", action="store_false")
    ap.add_argument("--port", type=int, default=31500, help="control port of the first run")
    args = ap.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            took, n = one_run(args.port + 20 * i, args.cameras, Path(tmp) / f"sim{i}.log")
            times.append(took)
            print(f"run {i + 1}: daemon SIGKILL -> {n} simulator process(es) gone after {took * 1e3:.0f} ms")
    print(f"median {statistics.median(times) * 1e3:.0f} ms, worst {max(times) * 1e3:.0f} ms "
          f"over {len(times)} runs (cameras {'on' if args.cameras else 'off'}; target < 1000 ms)")


if __name__ == "__main__":
    main()
