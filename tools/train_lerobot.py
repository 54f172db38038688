#!/usr/bin/env python3
"""Trains a LeRobot policy on a dataset of this project's and registers it in a model catalog.

    .venv/bin/python tools/train_lerobot.py --dataset datasets/arena_demos --out models/act_arena \\
        --steps 2000 --catalog models/catalog.yaml --id act-arena

Runs ``lerobot-train`` from the LeRobot environment (`tools/make_lerobot_env.sh`, built when
missing) offline on the CPU: no hub access (HF_HUB_OFFLINE), no pretrained weights (ACT's ResNet
backbone starts from scratch: ``pretrained_backbone_weights`` null), videos decoded with pyav.
The checkpoint lands in ``<out>/checkpoints/last/pretrained_model``. Then the model is written
into `--catalog` (created from the built-in catalog when missing, so color-reach and onnx-tiny
stay beside it for battles) as ``backend: lerobot`` with the env's interpreter as ``python:``.
Serve or evaluate it with ``--catalog``: ``vla-arena --catalog FILE battle --model-a ID ...``.

A dataset exported with ``--task-feature`` (make_arena_demos.py does) has
``observation.environment_state`` = the one-hot of the instruction; its names (the tasks) are
written as ``task_vocabulary.json`` into every saved checkpoint (``--save-freq`` ones too, as
they appear), which is what the ``lerobot`` backend maps a session's instruction with.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POLICY_FLAGS: dict[str, list[str]] = {
    # chunk of 10 actions = 1 s at the arena's 10 Hz; a small ResNet-18 transformer for the CPU
    "act": ["--policy.pretrained_backbone_weights=null", "--policy.chunk_size=10", "--policy.n_action_steps=10",
            "--policy.dim_model=256", "--policy.dim_feedforward=1024", "--policy.n_encoder_layers=2",
            "--policy.use_vae=false"],
    "diffusion": ["--policy.pretrained_backbone_weights=null", "--policy.horizon=16", "--policy.n_action_steps=8",
                  "--policy.n_obs_steps=2", "--policy.num_inference_steps=10", "--policy.down_dims=[64,128,256]",
                  "--policy.crop_shape=null", "--policy.use_group_norm=true"],
}


def env_python() -> str:
    """The LeRobot env's interpreter, building the env first when it is missing."""
    out = subprocess.run([str(ROOT / "tools" / "make_lerobot_env.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip().splitlines()[-1]


def train_command(python: str, args: argparse.Namespace) -> list[str]:
    """The ``lerobot-train`` invocation (draccus flags) for `args`."""
    bin_dir = Path(python).parent
    cmd = [str(bin_dir / "lerobot-train"),
           f"--dataset.repo_id=local/{args.dataset.name}", f"--dataset.root={args.dataset.resolve()}",
           "--dataset.video_backend=pyav", f"--policy.type={args.policy}", "--policy.device=cpu",
           "--policy.push_to_hub=false", f"--output_dir={args.out.resolve()}", f"--job_name={args.out.name}",
           f"--steps={args.steps}", f"--batch_size={args.batch_size}", "--num_workers=0",
           f"--save_freq={args.save_freq or args.steps}", f"--log_freq={max(1, min(100, args.steps // 10))}",
           "--eval_freq=0",
           "--wandb.enable=false", f"--seed={args.seed}"]
    if args.lr:  # the policy's optimizer preset is used (use_policy_training_preset): set its rates
        cmd.append(f"--policy.optimizer_lr={args.lr}")
        if args.policy == "act":
            cmd.append(f"--policy.optimizer_lr_backbone={args.lr}")
    return cmd + POLICY_FLAGS[args.policy] + list(args.extra)


def dataset_tasks(dataset: Path) -> tuple[list[str], list[float] | None]:
    """The one-hot task vocabulary of `dataset` (its ``observation.environment_state`` names) and
    that feature's mean from stats.json; ([], None) when the dataset has no such feature."""
    from robot_formats.lerobot_keys import ENV_STATE_KEY

    feature = json.loads((dataset / "meta" / "info.json").read_text())["features"].get(ENV_STATE_KEY)
    tasks = [str(n) for n in (feature or {}).get("names") or []]
    stats_file = dataset / "meta" / "stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    mean = (stats.get(ENV_STATE_KEY) or {}).get("mean")
    return tasks, ([float(m) for m in mean] if tasks and mean and len(mean) == len(tasks) else None)


def add_vocabulary(out: Path, tasks: list[str], mean: list[float] | None) -> None:
    """Writes the vocabulary into every checkpoint under `out` that lacks it."""
    from vla_server.policies.lerobot_policy import VOCABULARY_FILE, write_vocabulary

    for folder in (out / "checkpoints").glob("*/pretrained_model"):
        if (folder / "config.json").is_file() and not (folder / VOCABULARY_FILE).is_file():
            write_vocabulary(folder, tasks, mean)


def register(catalog: Path, model_id: str, python: str, checkpoint: Path, description: str) -> None:
    """Adds (or replaces) `model_id` in `catalog`, made from the built-in catalog when missing."""
    from vla_server.catalog import _default_entries, load_catalog

    if catalog.exists():
        doc = yaml.safe_load(catalog.read_text()) or {}
        entries: list[dict[str, Any]] = list(doc.get("models") or [])
    else:
        entries = _default_entries()
    entries = [e for e in entries if e.get("id") != model_id]
    entries.append({"id": model_id, "backend": "lerobot", "python": python,
                    "params": {"path": str(checkpoint)}, "description": description})
    catalog.parent.mkdir(parents=True, exist_ok=True)
    tmp = catalog.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
    load_catalog(tmp)  # validates before it replaces the catalog
    tmp.replace(catalog)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, required=True, help="LeRobot dataset folder (tools/make_arena_demos.py)")
    p.add_argument("--out", type=Path, required=True, help="training output folder (must not exist)")
    p.add_argument("--policy", choices=sorted(POLICY_FLAGS), default="act")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the policy's preset)")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--save-freq", type=int, default=None, help="save a checkpoint every N steps (default: at the end)")
    p.add_argument("--catalog", type=Path, default=None, help="catalog YAML to register the model in")
    p.add_argument("--id", default=None, help="model id in the catalog (default: lerobot-<out name>)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("extra", nargs="*", help="more lerobot-train flags, after --")
    args = p.parse_args(argv)
    if args.out.exists():
        p.error(f"--out {args.out} exists; lerobot-train needs a new folder")
    if not (args.dataset / "meta" / "info.json").is_file():
        p.error(f"--dataset {args.dataset}: no meta/info.json (not a LeRobot dataset)")
    python = env_python()
    cmd = train_command(python, args)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled",
               TOKENIZERS_PARALLELISM="false", HF_HOME=str(args.out.resolve().parent / ".hf_home"))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print("running:", " ".join(cmd), flush=True)
    tasks, mean = dataset_tasks(args.dataset)
    t0 = time.perf_counter()
    with subprocess.Popen(cmd, env=env, cwd=str(ROOT)) as proc:
        try:
            while True:
                try:
                    rc = proc.wait(timeout=5.0)
                    break
                except subprocess.TimeoutExpired:
                    if tasks:
                        add_vocabulary(args.out.resolve(), tasks, mean)
        except BaseException:
            proc.terminate()
            raise
    if tasks:
        add_vocabulary(args.out.resolve(), tasks, mean)
    took = time.perf_counter() - t0
    if rc != 0:
        print(f"lerobot-train failed (exit {rc}) after {took:.0f} s", file=sys.stderr)
        return rc
    checkpoint = args.out.resolve() / "checkpoints" / "last" / "pretrained_model"
    print(f"trained {args.policy} for {args.steps} steps in {took:.0f} s: {checkpoint}")
    if args.catalog is not None:
        model_id = args.id or f"lerobot-{args.out.name}"
        what = f"LeRobot {args.policy.upper()} trained on {args.dataset.name} ({args.steps} steps, {took / 60:.0f} min)"
        register(args.catalog, model_id, python, checkpoint, what)
        print(f"registered {model_id!r} in {args.catalog}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
