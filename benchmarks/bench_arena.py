"""Benchmark and figures of the VLA arena (prints figures; not a test).

Parts (``--part``, repeatable; default: episode and pool):

* ``episode`` — wall time of a 50-step ``color-reach`` episode (default start, 0 ms) at 320×240
  and 640×480, split into physics, rendering, policy and encoding (median of ``--reps``); the
  state blob's size (characters, binary bytes) and the MP4 / MCAP sizes per episode.
* ``pool`` — episodes per minute with the local process pool (``--workers``, default 2) running
  ``--episodes`` 50-step episodes (320×240, video on), after the workers have warmed up.
* ``success`` — ``color-reach`` success over ``--seeds`` seeds of the "shuffled" scene at 0, 100
  and 283 ms latency (the catalog's color-reach, @rt-2 and @openvla-7b), plus the default start.
* ``leaderboard`` — ``--battles`` battles (by metric) round-robin among color-reach (0 ms),
  color-reach@openvla-7b (283 ms) and onnx-tiny on seeded shuffled scenes, then the
  Bradley–Terry table with bootstrap intervals.

    python benchmarks/bench_arena.py                                  # episode + pool
    python benchmarks/bench_arena.py --part success --part leaderboard --workers 2
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

from vla_server.arena.config import EpisodeSpec
from vla_server.arena.runtime import ArenaConfig, ArenaRuntime
from vla_server.arena.work import DONE

INSTRUCTION = "pick up the red cube"


def part_episode(reps: int) -> dict:
    from vla_server.arena.episode import run_episode
    from vla_server.arena.models import CatalogProvider

    provider = CatalogProvider()
    model, policy = provider.spec("color-reach"), provider.policy("color-reach")
    out: dict = {}
    for w, h in ((320, 240), (640, 480)):
        spec = EpisodeSpec(model="color-reach", instruction=INSTRUCTION, width=w, height=h)
        run_episode(spec, policy, model)  # warm-up: model builds, GL context, renderer
        walls, sizes = [], {}
        for _ in range(reps):
            with tempfile.TemporaryDirectory() as tmp:
                r = run_episode(spec, policy, model, Path(tmp))
                walls.append(r.wall.as_dict())
                sizes = {k: p.stat().st_size for k, p in r.files.items()}
                blob = r.final_blob
                success = r.metrics["success"]
        med = {k: statistics.median(x[k] for x in walls) for k in walls[0]}
        from frankateach.sim import state_blob as SB

        out[f"{w}x{h}"] = {
            "wall_s": {k: round(v, 3) for k, v in med.items()},
            "video_bytes": sizes.get("video.mp4"), "trajectory_mcap_bytes": sizes.get("trajectory.mcap"),
            "blob_chars": len(blob), "blob_binary_bytes": len(SB.to_bytes(SB.decode(blob))),
            "blob_compressed_bytes": len(blob) * 3 // 4, "success": success,
        }
        print(f"{w}x{h}: 50-step episode {med['total_s']:.2f} s = physics {med['physics_s']:.2f} + render "
              f"{med['render_s']:.2f} + policy {med['policy_s']:.2f} + encode {med['encode_s']:.2f} + other "
              f"{med['other_s']:.2f}; video {sizes.get('video.mp4', 0) / 1024:.0f} kB, trajectory "
              f"{sizes.get('trajectory.mcap', 0) / 1024:.0f} kB, blob {len(blob)} chars; success {success}", flush=True)
    return out


def _runtime(data: Path, workers: int) -> ArenaRuntime:
    return ArenaRuntime(ArenaConfig(data_dir=str(data), executor="local", workers=workers))


def _run_all(rt: ArenaRuntime, specs: list[EpisodeSpec], timeout_s: float = 3600) -> list[dict]:
    ids = [rt.jobs.submit(s) for s in specs]
    return [rt.jobs.wait(i, timeout_s) for i in ids]


def part_pool(workers: int, episodes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, _runtime(Path(tmp), workers) as rt:
        warm = [EpisodeSpec(model="color-reach", instruction=INSTRUCTION, steps=2, seed=i) for i in range(workers)]
        _run_all(rt, warm)  # every worker has built its model, renderer and policy
        specs = [EpisodeSpec(model="color-reach", instruction=INSTRUCTION, scene="shuffled", seed=i)
                 for i in range(episodes)]
        t0 = time.monotonic()
        eps = _run_all(rt, specs)
        dt = time.monotonic() - t0
    ok = sum(e["status"] == DONE for e in eps)
    rate = ok / dt * 60
    print(f"pool of {workers} on {os.cpu_count()} cores: {ok}/{episodes} 50-step episodes (320x240, video) in "
          f"{dt:.1f} s = {rate:.1f} episodes/min", flush=True)
    return {"workers": workers, "episodes": episodes, "seconds": round(dt, 2), "episodes_per_min": round(rate, 2)}


def part_success(workers: int, seeds: int) -> dict:
    models = {"0 ms": "color-reach", "100 ms": "color-reach@rt-2", "283 ms": "color-reach@openvla-7b"}
    out = {}
    with tempfile.TemporaryDirectory() as tmp, _runtime(Path(tmp), workers) as rt:
        default = _run_all(rt, [EpisodeSpec(model="color-reach", instruction=INSTRUCTION, video=False)])[0]
        out["default start, 0 ms"] = bool((default["metrics"] or {}).get("success"))
        print(f"default start, 0 ms: success {out['default start, 0 ms']}", flush=True)
        for label, model in models.items():
            specs = [EpisodeSpec(model=model, instruction=INSTRUCTION, scene="shuffled", seed=s, video=False,
                                 trajectory=False) for s in range(seeds)]
            eps = _run_all(rt, specs)
            wins = sum(bool((e["metrics"] or {}).get("success")) for e in eps)
            prog = statistics.mean(float(e["progress"] or 0) for e in eps)
            first = [(e["metrics"] or {}).get("success_step") for e in eps]
            t_succ = [0.1 * (k + 1) for k in first if k is not None]  # s of sim time (10 Hz)
            mean_t = statistics.mean(t_succ) if t_succ else float("nan")
            out[label] = {"model": model, "success": wins, "of": seeds, "rate": wins / seeds,
                          "mean_progress": round(prog, 1), "mean_time_to_lift_s": round(mean_t, 2)}
            print(
                f"{label:>7} ({model}): success {wins}/{seeds} = {100 * wins / seeds:.0f}%, mean progress {prog:.1f}, "
                f"cube lifted after {mean_t:.2f} s of sim time on average",
                flush=True,
            )
    return out


def part_leaderboard(workers: int, battles: int, data: Path | None) -> dict:
    models = ["color-reach", "color-reach@openvla-7b", "onnx-tiny"]
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1:]]
    with tempfile.TemporaryDirectory() as tmp, _runtime(data or Path(tmp), workers) as rt:
        bids = []
        for k in range(battles):
            a, b = pairs[k % len(pairs)]
            spec = EpisodeSpec(model=a, instruction=INSTRUCTION, scene="shuffled", seed=1000 + k, video=False)
            bids.append(rt.battles.create(spec, b, "metric"))
        for bid in bids:
            bt = rt.store.battle(bid)
            for side in ("a", "b"):
                rt.jobs.wait(bt[f"episode_{side}"], 3600)
        rows = rt.leaderboard(200)
        decided = len(rt.store.decided_battles())
    print(f"leaderboard: {decided} decided battles among {len(models)} models (Bradley–Terry, Elo scale, 95% CI)")
    for r in rows:
        sr = "-" if r.success_rate is None else f"{100 * r.success_rate:.0f}%"
        print(f"  {r.rank}. {r.model:<24} {r.rating:7.1f}  [{r.ci_low:.0f}, {r.ci_high:.0f}]  W{r.wins} L{r.losses} "
              f"T{r.ties}  episodes {r.episodes}  success {sr}", flush=True)
    return {"battles": decided, "rows": [r.to_dict() for r in rows]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", action="append", choices=("episode", "pool", "success", "leaderboard"))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--battles", type=int, default=30)
    p.add_argument("--data", type=Path, default=None, help="leaderboard: keep the arena data here")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = p.parse_args()
    parts = a.part or ["episode", "pool"]
    figures: dict = {"cpu_count": os.cpu_count(), "mujoco_gl": os.environ.get("MUJOCO_GL")}
    if "episode" in parts:
        figures["episode"] = part_episode(a.reps)
    if "pool" in parts:
        figures["pool"] = part_pool(a.workers, a.episodes)
    if "success" in parts:
        figures["success"] = part_success(a.workers, a.seeds)
    if "leaderboard" in parts:
        figures["leaderboard"] = part_leaderboard(a.workers, a.battles, a.data)
    if a.json:
        a.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
