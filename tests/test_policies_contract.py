"""The `Policy` contract, checked on every backend the factory builds (and the latency wrapper)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from robot_formats.action_space import action_to_target
from robot_formats.robot_state import pos_quat_to_pose, pose_to_pos_quat
from tests.fakes.fake_openpi_server import FakeOpenPIServer
from tests.lerobot_env import tiny_checkpoint
from tests.policy_sim import HOME_POSE, front_image, observation
from vla_server.models import BACKENDS, ModelSpec
from vla_server.policies.base import Observation, Policy
from vla_server.policies.factory import BUILDERS, build_policy

CASES = ["color-reach", "lerobot", "onnx", "openpi-remote", "scripted", "latency-wrapped"]


def _droid_policy(obs: dict[str, Any]) -> dict[str, Any]:
    q = np.asarray(obs["observation/joint_position"])
    v = np.clip(-0.5 * np.sin(q), -1, 1)  # depends on the joints sent
    return {"actions": np.tile(np.r_[v, 0.8], (8, 1)).astype(np.float32)}


@pytest.fixture(scope="module")
def openpi_server() -> Iterator[FakeOpenPIServer]:
    with FakeOpenPIServer(policy=_droid_policy) as srv:
        yield srv


def _spec(case: str, srv: FakeOpenPIServer) -> ModelSpec:
    if case == "openpi-remote":
        return ModelSpec(id="pi", backend=case, params={"url": f"ws://127.0.0.1:{srv.port}"})
    if case == "scripted":
        return ModelSpec(id="s", backend=case, params={"sequence": [[0.1] * 6 + [1.0], [-0.2] * 6 + [-1.0]],
                                                       "horizon": 2})
    if case == "lerobot":  # a tiny ACT trained here, in its own env's worker (skips without the env)
        made = tiny_checkpoint()
        return ModelSpec(id="act-tiny", backend=case, python=made.python, params={"path": str(made.path)})
    if case == "latency-wrapped":
        return ModelSpec(id="cr-slow", backend="color-reach", latency_ms=2.0)
    return ModelSpec(id=case, backend=case)


# One loaded instance per backend for the module (loading the LeRobot worker takes seconds): the
# tests use distinct sessions, so sharing it also checks that sessions do not leak into each other.
@pytest.fixture(scope="module",
                params=[pytest.param(c, marks=[pytest.mark.slow, pytest.mark.timeout(900)]) if c == "lerobot" else c
                        for c in CASES])
def policy(request: pytest.FixtureRequest, openpi_server: FakeOpenPIServer) -> Iterator[tuple[Policy, ModelSpec]]:
    spec = _spec(request.param, openpi_server)
    p = build_policy(spec)
    p.load()
    yield p, spec
    p.close()


def test_every_backend_is_covered() -> None:
    assert set(BUILDERS) == set(BACKENDS) == {c for c in CASES if c in BACKENDS}


def _episode(p: Policy, session: str, n: int = 6) -> list[np.ndarray]:
    """n frames with the hand moving as the actions say (the same inputs for every call)."""
    image, _ = front_image()
    pos, quat = pose_to_pos_quat(HOME_POSE)
    out = []
    for k in range(n):
        chunk = p.infer(observation(image, session=session, step=k, pose=pos_quat_to_pose(pos, quat)))
        out.append(chunk)
        pos, quat, _ = action_to_target(pos, quat, chunk[0])
    return out


def test_chunks_are_well_formed(policy: tuple[Policy, ModelSpec]) -> None:
    p, spec = policy
    for chunk in _episode(p, "shape"):
        assert isinstance(chunk, np.ndarray) and chunk.ndim == 2 and chunk.shape[1] == 7
        assert chunk.shape[0] == p.info().action_horizon >= 1
        assert np.all(np.isfinite(chunk)) and np.all(np.abs(chunk) <= 1.0)
    assert p.info().backend == (spec.backend)


def test_deterministic_for_the_same_inputs(policy: tuple[Policy, ModelSpec]) -> None:
    p, spec = policy
    first = _episode(p, "d1")
    again = _episode(p, "d2")  # another session of the same instance
    fresh = build_policy(spec, emulate_latency=False)
    fresh.load()
    other = _episode(fresh, "d1")  # another instance
    fresh.close()
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_end_session_starts_over(policy: tuple[Policy, ModelSpec]) -> None:
    p, _ = policy
    first = _episode(p, "e")
    p.end_session("e")
    p.end_session("never-seen")  # unknown sessions are fine
    for a, b in zip(first, _episode(p, "e")):
        np.testing.assert_array_equal(a, b)


def test_no_robot_state_and_any_frame_size(policy: tuple[Policy, ModelSpec]) -> None:
    p, _ = policy
    image, _ = front_image(width=160, height=120)
    for obs in (observation(image, session="ns", pose=None),
                Observation(image=image, instruction="", session="ns2")):
        chunk = p.infer(obs)
        assert chunk.shape[1] == 7 and np.all(np.isfinite(chunk)) and np.all(np.abs(chunk) <= 1.0)


def test_an_episode_split_in_two_continues_exactly(policy: tuple[Policy, ModelSpec]) -> None:
    """Frames 0..2 in one instance, memory exported (when the policy keeps any), frames 3..5 in a
    fresh instance: the same actions as one unbroken run (the arena's split episodes rely on it)."""
    p, spec = policy
    whole = _episode(p, "whole")
    image, _ = front_image()
    first = build_policy(spec, emulate_latency=False)
    second = build_policy(spec, emulate_latency=False)
    for q in (first, second):
        q.load()
    pos, quat = pose_to_pos_quat(HOME_POSE)
    got = []
    for k in range(6):
        if k == 3:
            export = getattr(first, "export_session", None)
            if callable(export):
                second.import_session("split", export("split"))  # type: ignore[attr-defined]
        current = first if k < 3 else second
        chunk = current.infer(observation(image, session="split", step=k, pose=pos_quat_to_pose(pos, quat)))
        got.append(chunk)
        pos, quat, _ = action_to_target(pos, quat, chunk[0])
    first.close()
    second.close()
    for a, b in zip(whole, got):
        np.testing.assert_array_equal(a, b)
