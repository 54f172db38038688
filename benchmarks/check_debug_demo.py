"""Does `./run_server.sh --debug` (no terminal) stack the red cube on the blue one in its first episode?

    .venv/bin/python benchmarks/check_debug_demo.py [--runs 10] [--busy 5]

Runs the README's command as written N times, each in a sandboxed copy of the checkout's scripts
(see `tests/debug_demo.py`: same files, its own recordings/ and logs/), with no terminal, stops it
with SIGINT once its first episode is filed, and reads the cubes from that recording's own
``/sim/state`` in the MuJoCo model built from the MJCF the recording carries. The last `--busy` runs
have a CPU-bound process (``python -c "while 1: pass"``) running beside them. Prints one line per
run and the figures; exit code 0 when every run stacked.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.debug_demo import demo_outcome, run_debug_demo  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--busy", type=int, default=5, help="how many of the runs (the last ones) have a busy process")
    args = ap.parse_args()
    stacked = {False: 0, True: 0}
    totals = {False: 0, True: 0}
    for i in range(args.runs):
        busy = i >= args.runs - args.busy
        hog = subprocess.Popen([sys.executable, "-c", "while 1: pass"]) if busy else None
        try:
            with tempfile.TemporaryDirectory(prefix="debug-demo-") as d:
                run = run_debug_demo(Path(d))
                if run.episode is None:
                    line = f"no episode filed (exit {run.returncode}); log tail: {run.log[-300:]!r}"
                    ok = False
                else:
                    outcome = demo_outcome(run.episode)
                    ok = outcome.stacked and run.returncode == 0
                    line = f"{run.episode.parent.name}/{run.episode.name}: {outcome.describe()}, exit {run.returncode}"
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        totals[busy] += 1
        stacked[busy] += ok
        print(f"run {i + 1:2d} {'busy process beside it' if busy else 'alone':>22}  {run.wall_s:5.1f} s  {line}",
              flush=True)
    n_ok = stacked[False] + stacked[True]
    print(f"\nstacked in the first episode: {n_ok}/{args.runs} ({stacked[False]}/{totals[False]} alone, "
          f"{stacked[True]}/{totals[True]} with a CPU-bound process beside it)")
    return 0 if n_ok == args.runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
