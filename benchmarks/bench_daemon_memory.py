"""Memory of the daemon process: runs `oculus-server --debug` and samples its RSS from /proc.

Only the daemon's own process is counted (the simulator and its renderer are children and are
shown apart). `--tree` runs the daemon from another checkout (e.g. an older commit extracted
with `git archive`) with this venv, to compare before/after.

    python benchmarks/bench_daemon_memory.py --duration 20
    python benchmarks/bench_daemon_memory.py --duration 20 --tree /tmp/old

Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def status_kib(pid: int, field: str) -> int:
    """A `VmXXX:` field of /proc/PID/status, KiB (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--tree", type=Path, default=ROOT, help="source tree to run the daemon from")
    ap.add_argument("--vr-source", default="scripted:pick_place")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MUJOCO_GL="egl", PYTHONPATH=str(args.tree))
        argv = [sys.executable, "-m", "oculus_server.cli", "--debug", "--performance", "--no-dashboard",
                "--vr-source", args.vr_source, "--duration", str(args.duration), "--recordings-dir", f"{tmp}/rec"]
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        rss: list[int] = []
        hwm = 0
        child_peak: dict[int, int] = {}
        while proc.poll() is None:
            rss.append(status_kib(proc.pid, "VmRSS"))
            hwm = status_kib(proc.pid, "VmHWM")
            for c in children(proc.pid):
                child_peak[c] = max(child_peak.get(c, 0), status_kib(c, "VmRSS"))
            time.sleep(0.2)
        _, err = proc.communicate()
        recordings = sorted(Path(tmp, "rec").rglob("*.mcap"))
        print(f"tree {args.tree}: exit {proc.returncode}, {len(recordings)} recording(s)")
        steady = [r for r in rss[len(rss) // 2:] if r]
        print(
            f"daemon RSS: peak (VmHWM) {hwm / 1024:.1f} MiB, steady median "
            f"{sorted(steady)[len(steady) // 2] / 1024 if steady else 0:.1f} MiB, "
            f"last {rss[-2] / 1024 if len(rss) > 1 else 0:.1f} MiB"
        )
        for c, kib in sorted(child_peak.items()):
            print(f"  child {c}: peak RSS {kib / 1024:.1f} MiB (not counted)")
        if proc.returncode != 0:
            print(err[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
