"""Drive a policy in the in-process simulator and judge the pick from the simulator's own state.

The same Panda scene, Cartesian controller and physics as ``frankateach-sim`` (a headless
`frankateach.sim.backend.SimBackend`, stepped as fast as the CPU allows), the front camera
rendered with `mujoco.Renderer`, the policy called at `control_hz` of sim time, its row-0 action
applied with `robot_formats.action_space.action_to_target`. Latency (optional) is counted in sim
time: the action answering the frame of step t is applied `latency_ms` later, relative to the
pose in that frame (``relative_to="observed"``, as the arena does) or to the pose when it is
applied (``"current"``, as a naive streaming client would); meanwhile the previous target holds.
The arena (`vla_server.arena`) is the full-featured version of this loop. Used by the policy tests
and benchmarks; ``python -m vla_server.policies.sim_rollout --model color-reach --seeds 10`` prints
success figures.

A seed perturbs the scene: every cube moves by up to `cube_jitter_m` on the table and turns by
up to ±45° about z (cubes kept ≥ 9 cm apart); seed None keeps the default scene.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import mujoco
import numpy as np

from frankateach.messages import FrankaAction, FrankaState
from frankateach.sim.backend import SimBackend
from frankateach.sim.model import build_model
from robot_formats.action_space import ActionError, action_to_target, validate_action
from robot_formats.robot_state import RobotStateIn, pos_quat_to_pose
from vla_server.policies.base import Observation, Policy

LIFT_SUCCESS_M = 0.05  # the named cube must end this far above where it started
MIN_CUBE_GAP_M = 0.09


@dataclass(frozen=True)
class RolloutConfig:
    """One episode.

    Attributes:
        instruction: the task ("pick up the red cube"); its colour word names the judged cube.
        steps: policy calls (control steps).
        control_hz: policy rate in sim time, Hz.
        width, height: front-camera image size, px.
        seed: scene perturbation seed (None: the default scene).
        cube_jitter_m: largest cube displacement per axis for a seeded scene, m.
        report_gripper: put the measured gripper into ``robot_state`` (the stream protocol has
            no gripper field; the arena knows it).
        session: policy session key.
        latency_ms: sim-time delay between a frame and its action being applied, ms.
        relative_to: "observed" (the frame's pose) or "current" (the pose when applied).
    """

    instruction: str = "pick up the red cube"
    steps: int = 50
    control_hz: float = 10.0
    width: int = 320
    height: int = 240
    seed: int | None = None
    cube_jitter_m: float = 0.04
    report_gripper: bool = True
    session: str = "rollout"
    latency_ms: float = 0.0
    relative_to: str = "observed"

    def __post_init__(self) -> None:
        if self.relative_to not in ("observed", "current"):
            raise ValueError(f"relative_to: expected 'observed' or 'current', got {self.relative_to!r}")
        if self.latency_ms < 0 or self.steps < 1 or self.control_hz <= 0:
            raise ValueError(f"expected latency_ms >= 0, steps >= 1, control_hz > 0, got {self}")


@dataclass
class RolloutResult:
    """What happened, from the simulator's state.

    Attributes:
        cube: body judged ("red_cube").
        lift_m: final height of the cube above its start, m.
        success: lift_m ≥ `LIFT_SUCCESS_M`.
        steps: control steps run.
        infer_ms: wall time of each `infer` call, ms.
        wall_s: wall time of the whole episode, s.
        cube_start: (3,) where the cube started, m.
        others_moved_m: the other cubes' horizontal displacement, m, by name.
    """

    cube: str
    lift_m: float
    success: bool
    steps: int
    infer_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    cube_start: np.ndarray = field(default_factory=lambda: np.zeros(3))
    others_moved_m: dict[str, float] = field(default_factory=dict)


def perturb_cubes(model: mujoco.MjModel, data: mujoco.MjData, seed: int, jitter_m: float) -> None:
    """Moves and turns the cubes in `data` (see the module docstring) and recomputes positions."""
    from frankateach.sim.model import SimIndex

    idx = SimIndex.from_model(model)
    rng = np.random.default_rng(seed)
    names = sorted(idx.cube_qpos)
    base = {n: data.qpos[idx.cube_qpos[n]: idx.cube_qpos[n] + 2].copy() for n in names}
    for _ in range(1000):
        xy = {n: base[n] + rng.uniform(-jitter_m, jitter_m, 2) for n in names}
        gaps = [np.linalg.norm(xy[a] - xy[b]) for i, a in enumerate(names) for b in names[i + 1:]]
        if min(gaps, default=1.0) >= MIN_CUBE_GAP_M:
            break
    else:
        raise RuntimeError(f"could not place the cubes {MIN_CUBE_GAP_M} m apart with jitter {jitter_m}")
    for n in names:
        adr = idx.cube_qpos[n]
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)
        data.qpos[adr: adr + 2] = xy[n]
        data.qpos[adr + 3: adr + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
    mujoco.mj_forward(model, data)


def cube_name(instruction: str) -> str:
    """The cube body an instruction names ("pick up the blue cube" → "blue_cube")."""
    from vla_server.policies.vision import parse_colour

    colour = parse_colour(instruction)
    if colour is None:
        raise ValueError(f"instruction names no cube colour: {instruction!r}")
    return f"{colour}_cube"


class SimRollout:
    """A reusable in-process simulator for rollouts (builds the model and renderer once).

    Args:
        width, height: largest front-camera image, px.
    """

    def __init__(self, width: int = 320, height: int = 240) -> None:
        self.model = build_model(cameras=True, width=width, height=height)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

    def _renderer(self, width: int, height: int) -> mujoco.Renderer:
        key = (width, height)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
        return self._renderers[key]

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def run(self, policy: Policy, cfg: RolloutConfig) -> RolloutResult:
        """Runs one episode of `policy` from the home pose (see `RolloutConfig`)."""
        t_start = time.perf_counter()
        backend = SimBackend(model=self.model)
        if cfg.seed is not None:
            perturb_cubes(self.model, backend.data, cfg.seed, cfg.cube_jitter_m)
            backend.step(1)
        cube = cube_name(cfg.instruction)
        start = backend.body_position(cube)
        others = {n: backend.body_position(n) for n in backend.index.cube_bodies if n != cube}
        renderer = self._renderer(cfg.width, cfg.height)
        steps_per_call = max(1, round(1.0 / (cfg.control_hz * backend.dt)))
        infer_ms: list[float] = []
        policy.end_session(cfg.session)
        delay = round(cfg.latency_ms / 1000.0 / backend.dt)  # physics steps
        pending: list[tuple[int, np.ndarray, FrankaState]] = []  # (apply at step, action, observed state)
        now = 0
        for k in range(cfg.steps):
            renderer.update_scene(backend.data, camera="front")
            image = renderer.render()
            st = backend.read_state()
            state = RobotStateIn(
                pose=pos_quat_to_pose(st.pos, st.quat),
                gripper=float(st.gripper) if cfg.report_gripper else None,
            )
            obs = Observation(
                image=image, instruction=cfg.instruction, robot_state=state, session=cfg.session,
                step=k, timestamp=backend.sim_time, seed=cfg.seed or 0,
            )
            t0 = time.perf_counter()
            chunk = policy.infer(obs)
            infer_ms.append((time.perf_counter() - t0) * 1e3)
            pending.append((now + delay, np.asarray(chunk)[0], st))
            end = now + steps_per_call
            while now < end:
                while pending and pending[0][0] <= now:
                    _, action, seen = pending.pop(0)
                    ref = seen if cfg.relative_to == "observed" else backend.read_state()
                    target = action_to_target(ref.pos, ref.quat, validate_action(action))
                    if target is None or target.gripper is None:
                        raise ActionError(f"no pose target from the pose {ref.pos}, {ref.quat}")
                    backend.apply_action(FrankaAction(pos=np.array(target.pos), quat=np.array(target.quat),
                                                      gripper=target.gripper, reset=False,
                                                      timestamp=backend.sim_time))
                nxt = min(end, pending[0][0]) if pending else end
                backend.step(nxt - now)
                now = nxt
        policy.end_session(cfg.session)
        lift = float(backend.body_position(cube)[2] - start[2])
        return RolloutResult(
            cube=cube, lift_m=lift, success=lift >= LIFT_SUCCESS_M, steps=cfg.steps,
            infer_ms=infer_ms, wall_s=time.perf_counter() - t_start, cube_start=start,
            others_moved_m={n: float(np.linalg.norm(backend.body_position(n)[:2] - p[:2])) for n, p in others.items()},
        )


def main(argv: list[str] | None = None) -> int:
    """CLI: success over seeds for a catalog model (no latency emulation)."""
    from vla_server.catalog import load_catalog
    from vla_server.policies.factory import build_policy

    ap = argparse.ArgumentParser(description="Run a policy in the in-process simulator over seeds.")
    ap.add_argument("--model", default="color-reach")
    ap.add_argument("--catalog", default=None, help="models.yaml (default: the built-in catalog)")
    ap.add_argument("--instruction", default="pick up the red cube")
    ap.add_argument("--seeds", type=int, default=5, help="seeds 1..N (seed 0 = the default scene)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--latency-ms", type=float, default=None, help="default: the model's own latency_ms")
    ap.add_argument("--relative-to", choices=("observed", "current"), default="observed")
    args = ap.parse_args(argv)
    spec = load_catalog(args.catalog)[args.model]
    policy = build_policy(spec, emulate_latency=False)
    policy.load()
    sim = SimRollout(args.width, args.height)
    wins = 0
    for seed in range(args.seeds + 1):
        res = sim.run(policy, RolloutConfig(
            instruction=args.instruction, steps=args.steps, width=args.width, height=args.height,
            seed=None if seed == 0 else seed, relative_to=args.relative_to,
            latency_ms=spec.latency_ms if args.latency_ms is None else args.latency_ms,
        ))
        wins += res.success
        print(f"seed {seed:3d}: {'ok  ' if res.success else 'FAIL'} lift {res.lift_m * 100:5.1f} cm, "
              f"infer p50 {np.median(res.infer_ms):.2f} ms, episode {res.wall_s:.1f} s")
    print(f"{args.model}: {wins}/{args.seeds + 1} succeeded ({args.instruction!r})")
    sim.close()
    policy.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
