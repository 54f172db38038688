"""Benchmark: VLA policy backends — load time, memory, per-inference time; color-reach success.

Run: ``MUJOCO_GL=egl .venv/bin/python benchmarks/bench_vla_policies.py [--frames 100] [--seeds 10]``.

Each backend runs in a fresh interpreter (so memory figures are its own): build + `load` time
(imports included), resident memory before and after (VmRSS, MiB), and `infer` wall time p50/p95 (ms) over
`--frames` rendered 320×240 front-camera frames of the pick scene. openpi-remote talks to a fake
openpi server on loopback (the fake answers instantly: the figure is our side — IK, resize,
msgpack, WebSocket, FK). Then color-reach picks the red/green/blue cube in the in-process
simulator on the default scene and `--seeds` perturbed scenes (success judged from the sim's
state: the cube ≥ 5 cm up after 50 steps at 10 Hz; no latency).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKENDS = ("scripted", "color-reach", "onnx", "openpi-remote")


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _frames(n: int) -> list[np.ndarray]:
    """n front-camera frames of a short color-reach episode (the arm moving, cubes in view)."""
    from frankateach.messages import FrankaAction
    from frankateach.sim.backend import SimBackend
    from robot_formats.action_space import action_to_target
    from robot_formats.robot_state import RobotStateIn, pos_quat_to_pose
    from vla_server.policies.base import Observation
    from vla_server.policies.color_reach import ColorReachPolicy
    from vla_server.policies.sim_rollout import SimRollout

    sim = SimRollout()
    renderer = sim._renderer(320, 240)
    backend = SimBackend(model=sim.model)
    guide = ColorReachPolicy()
    out = []
    for k in range(n):
        renderer.update_scene(backend.data, camera="front")
        img = renderer.render().copy()
        out.append(img)
        st = backend.read_state()
        act = guide.infer(Observation(image=img, instruction="pick up the red cube", session="f", step=k,
                                      robot_state=RobotStateIn(pose=pos_quat_to_pose(st.pos, st.quat))))
        target = action_to_target(st.pos, st.quat, act[0])
        assert target is not None and target.gripper is not None
        backend.apply_action(FrankaAction(pos=np.array(target.pos), quat=np.array(target.quat), gripper=target.gripper,
                                          reset=False, timestamp=0.0))
        backend.step(50)
    sim.close()
    return out


def one(backend: str, frames_file: Path) -> dict[str, float]:
    """Measures one backend in this interpreter (frames read from `frames_file`); returns the figures."""
    from robot_formats.robot_state import RobotStateIn
    from vla_server.models import ModelSpec
    from vla_server.policies.base import Observation
    from vla_server.policies.factory import build_policy

    frames = list(np.load(frames_file)["frames"])
    server = None
    params: dict[str, object] = {}
    if backend == "openpi-remote":
        from tests.fakes.fake_openpi_server import FakeOpenPIServer

        server = FakeOpenPIServer().start()
        params = {"url": f"ws://127.0.0.1:{server.port}"}
    spec = ModelSpec(id=backend, backend=backend, params=params)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    policy = build_policy(spec, emulate_latency=False)
    policy.load()
    load_ms = (time.perf_counter() - t0) * 1e3
    rss1 = _rss_mb()
    pose = (0.4577, 0.032, 0.2656, 3.124, -0.029, 0.018)
    times = []
    for k, img in enumerate(frames):
        obs = Observation(image=img, instruction="pick up the red cube", session="b", step=k,
                          robot_state=RobotStateIn(pose=pose, gripper=-1.0))
        t = time.perf_counter()
        policy.infer(obs)
        times.append((time.perf_counter() - t) * 1e3)
    policy.close()
    if server is not None:
        server.stop()
    return {"load_ms": load_ms, "rss_before_mb": rss0, "rss_after_mb": rss1,
            "p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def success(seeds: int) -> None:
    """color-reach success over the default scene and `seeds` perturbed ones, per colour."""
    from vla_server.policies.color_reach import ColorReachPolicy
    from vla_server.policies.sim_rollout import RolloutConfig, SimRollout

    policy = ColorReachPolicy()
    policy.load()
    sim = SimRollout()
    for colour in ("red", "green", "blue"):
        wins, lifts, walls = 0, [], []
        for seed in [None, *range(1, seeds + 1)]:
            res = sim.run(policy, RolloutConfig(instruction=f"pick up the {colour} cube", seed=seed, steps=50))
            wins += res.success
            lifts.append(res.lift_m)
            walls.append(res.wall_s)
        print(f"color-reach {colour:5s}: {wins}/{seeds + 1} lifted >= 5 cm (min lift {min(lifts) * 100:.1f} cm, "
              f"episode wall {np.mean(walls):.2f} s incl. rendering)")
    sim.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--one", choices=BACKENDS, help=argparse.SUPPRESS)
    ap.add_argument("--frames-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.frames_file)))
        return 0
    tmp = tempfile.TemporaryDirectory()
    frames_file = Path(tmp.name) / "frames.npz"
    np.savez(frames_file, frames=np.stack(_frames(args.frames)))
    print(f"{args.frames} frames 320x240; RSS = VmRSS of a fresh interpreter holding the frames (MiB)")
    print(f"{'backend':<15}{'load ms':>9}{'RSS before':>12}{'RSS after':>11}{'infer p50':>11}{'p95':>8}")
    for backend in BACKENDS:
        out = subprocess.run([sys.executable, __file__, "--one", backend, "--frames-file", str(frames_file)],
                             capture_output=True, text=True, timeout=600, env=dict(os.environ), cwd=ROOT,
                             check=False)
        if out.returncode != 0:
            print(f"{backend:<15} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{backend:<15}{r['load_ms']:9.0f}{r['rss_before_mb']:10.0f}MB{r['rss_after_mb']:9.0f}MB"
              f"{r['p50_ms']:9.2f}ms{r['p95_ms']:6.2f}ms")
    tmp.cleanup()
    if args.seeds >= 0:
        success(args.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
