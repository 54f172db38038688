"""Benchmark of a trained LeRobot policy in the arena (prints figures; not a test).

    .venv/bin/python benchmarks/bench_lerobot.py --catalog models/catalog.yaml --model act-arena

Runs `--episodes` (default 20) arena episodes of `--steps` control steps on shuffled scenes
(seeds `--seed` … `--seed + episodes − 1`, never the training seeds of tools/make_arena_demos.py
by default), the cube to lift red / green / blue in turn, with the model in its own worker
interpreter (`WorkerPolicy`, as the arena runs it), and prints:

* success rate (the cube named in the instruction lifted), per cube too, and mean final progress;
* inference latency p50 / p95 / max measured inside the worker (the model's own time) and
  round trip as the arena sees it (plus the IPC);
* the worker's resident memory after loading and at the end, and its load time.

`--json` prints the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")

from robot_formats.stats import percentile  # noqa: E402
from vla_server.arena.config import EpisodeSpec  # noqa: E402
from vla_server.arena.episode import run_episode  # noqa: E402
from vla_server.arena.models import CatalogProvider  # noqa: E402
from vla_server.workers.local import WorkerPolicy  # noqa: E402
from vla_server.workers.memory import rss_mb  # noqa: E402

CUBES = ("red", "green", "blue")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalog", required=True, help="catalog with the model (tools/train_lerobot.py --catalog)")
    p.add_argument("--model", required=True)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=5000, help="first scene seed (demos use 1000 onwards)")
    p.add_argument("--cubes", default=",".join(CUBES), help="cubes to lift in turn (comma-separated)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    cubes = [c.strip() for c in args.cubes.split(",") if c.strip()]
    if args.episodes < 1 or not cubes:
        p.error("expected --episodes >= 1 and at least one cube")
    provider = CatalogProvider(args.catalog)
    spec = provider.spec(args.model)
    t0 = time.perf_counter()
    policy = provider.policy(args.model)
    load_s = time.perf_counter() - t0
    pid = policy.pid if isinstance(policy, WorkerPolicy) else os.getpid()
    rss_loaded = rss_mb(pid) if pid else None
    results = []
    round_trip: list[float] = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-lerobot-") as tmp:
        for i in range(args.episodes):
            cube = cubes[i % len(cubes)]
            ep = EpisodeSpec(model=args.model, instruction=f"pick up the {cube} cube", steps=args.steps,
                             seed=args.seed + i, scene="shuffled", video=False, trajectory=False)
            r = run_episode(ep, policy, spec, Path(tmp) / f"ep{i}", episode_id=f"bench-{i}")
            results.append(dict(r.metrics, cube=cube))
            round_trip.extend([r.metrics["inference_ms_p50"]])
            if not args.json:
                print(f"episode {i + 1}/{args.episodes} ({cube}, seed {ep.seed}): success {r.metrics['success']}, "
                      f"progress {r.metrics['progress']:.0f}, lift {r.metrics['lift_m']:.3f} m", flush=True)
    wall = time.perf_counter() - t_all
    worker_ms = list(policy.model_ms) if isinstance(policy, WorkerPolicy) else []
    successes = sum(1 for m in results if m["success"])
    figures = {
        "model": args.model,
        "backend": spec.backend,
        "episodes": len(results),
        "steps": args.steps,
        "success_rate": successes / len(results),
        "successes": successes,
        "per_cube": {c: f"{sum(1 for m in results if m['cube'] == c and m['success'])}/"
                        f"{sum(1 for m in results if m['cube'] == c)}" for c in cubes},
        "mean_progress": statistics.fmean(float(m["progress"] or 0.0) for m in results),
        "worker_infer_ms_p50": percentile(worker_ms, 50),
        "worker_infer_ms_p95": percentile(worker_ms, 95),
        "worker_infer_ms_max": max(worker_ms) if worker_ms else None,
        "round_trip_ms_p50_median": statistics.median(round_trip) if round_trip else None,
        "worker_rss_mb_loaded": rss_loaded,
        "worker_rss_mb_end": rss_mb(pid) if pid else None,
        "load_s": load_s,
        "wall_s": wall,
    }
    policy.close()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"\n{args.model} ({spec.backend}): success {successes}/{len(results)} "
              f"({100 * figures['success_rate']:.0f} %; per cube {figures['per_cube']}), "
              f"mean progress {figures['mean_progress']:.0f}")
        if worker_ms:
            print(f"inference in the worker: p50 {figures['worker_infer_ms_p50']:.1f} ms, "
                  f"p95 {figures['worker_infer_ms_p95']:.1f} ms, max {figures['worker_infer_ms_max']:.1f} ms "
                  f"({len(worker_ms)} calls)")
        print(f"worker memory: {figures['worker_rss_mb_loaded']} MiB loaded, {figures['worker_rss_mb_end']} MiB at "
              f"the end; load {load_s:.1f} s; {wall:.0f} s for {len(results)} episodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
