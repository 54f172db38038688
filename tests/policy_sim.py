"""Shared helpers for the policy tests: one in-process simulator with a renderer per test session."""

from __future__ import annotations

import functools

import mujoco
import numpy as np
import pytest

from robot_formats.robot_state import RobotStateIn
from vla_server.policies.base import Observation
from vla_server.policies.sim_rollout import SimRollout

HOME_POSE = (0.4577, 0.032, 0.2656, 3.124, -0.029, 0.018)  # ~ the sim's home TCP, [x y z r p y]


@functools.lru_cache(maxsize=1)
def _sim() -> SimRollout:
    return SimRollout(640, 480)


def sim_or_skip() -> SimRollout:
    """The shared in-process simulator; skips the test when offscreen rendering is unavailable."""
    try:
        sim = _sim()
        sim._renderer(320, 240)
    except (mujoco.FatalError, RuntimeError) as exc:
        pytest.skip(f"offscreen rendering unavailable: {exc}")
    return sim


def front_image(qpos_edit: dict[str, tuple[float, float]] | None = None, width: int = 320,
                height: int = 240) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Renders the home scene (cubes moved to `qpos_edit` name → (x, y)); returns image, cube positions."""
    sim = sim_or_skip()
    model = sim.model
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, "home"))
    from frankateach.sim.model import SimIndex

    idx = SimIndex.from_model(model)
    for name, xy in (qpos_edit or {}).items():
        data.qpos[idx.cube_qpos[name]: idx.cube_qpos[name] + 2] = xy
    mujoco.mj_forward(model, data)
    renderer = sim._renderer(width, height)
    renderer.update_scene(data, camera="front")
    cubes = {n: data.xpos[b].copy() for n, b in idx.cube_bodies.items()}
    return renderer.render().copy(), cubes


def observation(image: np.ndarray, instruction: str = "pick up the red cube", session: str = "s",
                step: int = 0, pose: tuple[float, ...] | None = HOME_POSE, gripper: float | None = -1.0,
                wrist: np.ndarray | None = None) -> Observation:
    """An observation with the robot at `pose` (None: no robot_state)."""
    state = None if pose is None else RobotStateIn(pose=tuple(pose), gripper=gripper)  # type: ignore[arg-type]
    return Observation(image=image, instruction=instruction, robot_state=state, session=session, step=step,
                       wrist_image=wrist)
