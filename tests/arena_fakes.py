"""Deterministic test policies and a provider for the arena tests (importable by worker processes).

`TestProvider` is what `ProviderRef("tests.arena_fakes:TestProvider")` builds in a pool worker or
a Ray task, so the tests exercise the real process boundary with these policies.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from robot_formats.action_space import GRIPPER_CLOSED, GRIPPER_OPEN, target_to_action
from robot_formats.robot_state import pose_to_pos_quat
from vla_server.arena.models import ModelNotFound
from vla_server.models import ModelSpec
from vla_server.policies.base import Observation, Policy, PolicyInfo

RED_CUBE_XY = np.array([0.50, 0.0])


class ReachPolicy(Policy):
    """Moves the hand over the red cube's nominal place, descends and closes; stateless.

    The image enters the action (a tiny lateral term from the red channel's mean), so a change in
    rendering would show in the trajectory.
    """

    def __init__(self, name: str = "reach") -> None:
        self.name = name

    def info(self) -> PolicyInfo:
        return PolicyInfo(name=self.name, backend="scripted", description="arena test reach")

    def infer(self, obs: Observation) -> np.ndarray:
        assert obs.robot_state is not None
        pos, quat = pose_to_pos_quat(obs.robot_state.pose)
        img = np.asarray(obs.image)
        red = float(img[..., 0].mean()) / 255.0
        above = np.array([RED_CUBE_XY[0], RED_CUBE_XY[1] + 0.01 * (red - 0.5), 0.06])
        near = np.linalg.norm(pos[:2] - above[:2]) < 0.02 and pos[2] < 0.09
        grip = GRIPPER_CLOSED if near else GRIPPER_OPEN
        down = np.array([1.0, 0.0, 0.0, 0.0])
        return np.array(target_to_action(pos, quat, above, down, grip)).reshape(1, 7)


class CounterPolicy(Policy):
    """Stateful: circles with a phase that advances per observation; exports its memory."""

    def __init__(self) -> None:
        self._phase: dict[str, int] = {}

    def info(self) -> PolicyInfo:
        return PolicyInfo(name="counter", backend="scripted")

    def infer(self, obs: Observation) -> np.ndarray:
        n = self._phase.get(obs.session, 0)
        self._phase[obs.session] = n + 1
        a = np.zeros(7)
        a[0] = 0.3 * np.cos(n / 3.0)
        a[1] = 0.3 * np.sin(n / 3.0)
        a[6] = -1.0
        return a.reshape(1, 7)

    def end_session(self, session: str) -> None:
        self._phase.pop(session, None)

    def export_session(self, session: str) -> bytes:
        return struct.pack("<q", self._phase.get(session, 0))

    def import_session(self, session: str, data: bytes) -> None:
        (self._phase[session],) = struct.unpack("<q", data)


class FailingPolicy(Policy):
    """Raises on the observation `fail_at`."""

    def __init__(self, fail_at: int = 2) -> None:
        self.fail_at = fail_at

    def info(self) -> PolicyInfo:
        return PolicyInfo(name="failing", backend="scripted")

    def infer(self, obs: Observation) -> np.ndarray:
        if obs.step >= self.fail_at:
            raise RuntimeError("model exploded")
        return np.zeros((1, 7))


class NanPolicy(Policy):
    def info(self) -> PolicyInfo:
        return PolicyInfo(name="nan", backend="scripted")

    def infer(self, obs: Observation) -> np.ndarray:
        return np.full((1, 7), np.nan)


MODELS: dict[str, tuple[float, Any]] = {
    "reach": (0.0, lambda: ReachPolicy("reach")),
    "reach-slow": (200.0, lambda: ReachPolicy("reach-slow")),
    "reach-283": (283.0, lambda: ReachPolicy("reach-283")),
    "counter": (0.0, CounterPolicy),
    "failing": (0.0, FailingPolicy),
    "nan": (0.0, NanPolicy),
}


class TestProvider:
    """Provider of `MODELS` (policies built once per process)."""

    __test__ = False  # not a pytest class

    def __init__(self, **_: Any) -> None:
        self._policies: dict[str, Policy] = {}

    def spec(self, model_id: str) -> ModelSpec:
        if model_id not in MODELS:
            raise ModelNotFound(f"unknown model {model_id!r}; the test provider has {sorted(MODELS)}")
        return ModelSpec(id=model_id, backend="scripted", latency_ms=MODELS[model_id][0])

    def policy(self, model_id: str) -> Policy:
        self.spec(model_id)
        if model_id not in self._policies:
            p = MODELS[model_id][1]()
            p.load()
            self._policies[model_id] = p
        return self._policies[model_id]

    def models(self) -> list[ModelSpec]:
        return [self.spec(m) for m in MODELS]
