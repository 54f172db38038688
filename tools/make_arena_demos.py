#!/usr/bin/env python3
"""Demonstrations from the arena: a policy (color-reach) on shuffled scenes → one LeRobot dataset.

    .venv/bin/python tools/make_arena_demos.py --episodes 40 --out datasets/arena_demos

Runs `--episodes` arena episodes in-process (sim time, deterministic: seed i shuffles the cubes
and the cube to lift is red / green / blue in turn), writes each one's trajectory MCAP (the
teleop recording format) under ``<out>_episodes/``, then exports the successful ones with the
same code as ``teleop-replay export --to lerobot --success-only --fps <control rate>`` into a
LeRobot v3.0 dataset: ``observation.images.front`` (what the policy saw), ``observation.state``
[x, y, z, qx, qy, qz, qw, gripper −1…1], ``action`` (the 7-D action space of
`robot_formats.action_space`, decided at that frame) and ``observation.environment_state``, the
one-hot of the instruction (which cube), since ACT and Diffusion read no language
(``--no-task-feature`` leaves it out). One frame per control step. Frames are rendered at the
arena's size (320×240, what `vla-arena` and benchmarks/bench_lerobot.py render) and resized to
``--size`` (80×60) with the resize the ``lerobot`` backend applies to observations, so training
and evaluation images match. Images are stored as PNG in
the data parquet by default (``--image-storage png``: no video decoding per training sample,
several times faster to train on a CPU); ``--image-storage video`` writes one MP4 per camera.
The same dataset from the episodes' MCAPs: ``teleop-replay export <out>_episodes --to lerobot
--fps 10 --success-only --image-storage png --task-feature --size 80x60 -o DATASET``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oculus_server.replay.cli import image_size  # noqa: E402

CUBES = ("red", "green", "blue")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="dataset folder to create (must not exist or be empty)")
    p.add_argument("--episodes", type=int, default=40, help="episodes to run (default 40)")
    p.add_argument("--model", default="color-reach", help="the demonstrating policy (catalog id)")
    p.add_argument("--catalog", default=None, help="model catalog YAML (default: the built-in one)")
    p.add_argument("--scene", default="shuffled", choices=("default", "shuffled"))
    p.add_argument("--seed", type=int, default=1000, help="first seed (episode i uses seed + i)")
    p.add_argument("--steps", type=int, default=50, help="control steps per episode")
    p.add_argument("--hz", type=float, default=10.0, help="control rate, Hz (the dataset's fps)")
    p.add_argument("--width", type=int, default=320, help="rendered observation width, px (the arena's default)")
    p.add_argument("--height", type=int, default=240, help="rendered observation height, px (the arena's default)")
    p.add_argument("--size", type=image_size, default=(80, 60), metavar="WxH",
                   help="the dataset's image size (frames resized as the lerobot backend resizes; default 80x60)")
    p.add_argument("--cubes", default=",".join(CUBES), help="cubes to lift in turn (comma-separated)")
    p.add_argument("--all", action="store_true", help="keep failed episodes too (default: successes only)")
    p.add_argument("--image-storage", choices=("png", "video"), default="png",
                   help="camera frames as PNG in the data parquet (default; fast to train on) or MP4 videos")
    p.add_argument("--no-task-feature", action="store_true",
                   help="leave out observation.environment_state (the one-hot of the instruction)")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes: expected >= 1")

    from oculus_server.replay.lerobot import export_lerobot
    from robot_formats.recording.episode import load_episode
    from vla_server.arena.config import EpisodeSpec
    from vla_server.arena.episode import run_episode
    from vla_server.arena.models import CatalogProvider

    provider = CatalogProvider(args.catalog)
    model = provider.spec(args.model)
    policy = provider.policy(args.model)
    cubes = [c.strip() for c in args.cubes.split(",") if c.strip()]
    ep_dir = args.out.with_name(args.out.name + "_episodes")
    t0 = time.perf_counter()
    kept = []
    successes = 0
    for i in range(args.episodes):
        cube = cubes[i % len(cubes)]
        spec = EpisodeSpec(model=args.model, instruction=f"pick up the {cube} cube", steps=args.steps,
                           control_hz=args.hz, width=args.width, height=args.height, seed=args.seed + i,
                           scene=args.scene, video=False, latency_ms=0.0)
        out = ep_dir / f"ep{i:04d}"
        (out / "trajectory.mcap").unlink(missing_ok=True)
        result = run_episode(spec, policy, model, out, episode_id=f"demo-{i}")
        ok = bool(result.metrics["success"])
        successes += ok
        print(f"episode {i + 1}/{args.episodes}: seed {spec.seed}, {cube}: "
              f"{'success' if ok else 'failure'} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if ok or args.all:
            kept.append(out / "trajectory.mcap")
    if not kept:
        print("no successful episode to export", file=sys.stderr)
        return 1
    episodes = [load_episode(path, images=True) for path in kept]
    export_lerobot(episodes, args.out, fps=args.hz, image_storage=args.image_storage,
                   task_feature=not args.no_task_feature, size=args.size)
    print(f"wrote {args.out}: {len(kept)} episodes of the {args.episodes} run ({successes} successful), "
          f"{time.perf_counter() - t0:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
