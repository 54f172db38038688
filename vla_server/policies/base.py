"""What every policy backend implements, and the observation it is given.

The same `Policy` object serves the streaming service (inside a model worker process), the arena
(in-process, deterministic) and tests. A policy may keep memory per *session* (one stream
session, one arena episode): it is keyed by `Observation.session` and dropped by `end_session`.

Frames and units: robot pose ``[x, y, z, roll, pitch, yaw]`` of the hand TCP in the robot base
frame (metres, radians, Euler xyz); velocity ``[vx, vy, vz, wx, wy, wz]`` (m/s, rad/s).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_formats.robot_state import RobotStateIn


@dataclass(frozen=True)
class Observation:
    """One policy input.

    Attributes:
        image: (H, W, 3) uint8 RGB front-camera frame (the simulator's ``front`` camera framing).
        instruction: natural-language task, e.g. "pick up the red cube".
        robot_state: measured state, or None when the client sent none.
        session: key of the policy's per-session memory (stream session id, arena episode id).
        step: frame counter within the session (0-based).
        timestamp: when the observation was taken, s (unix time or sim time; informational).
        wrist_image: (H, W, 3) uint8 RGB wrist-camera frame, or None.
        seed: seed for any randomness, fixed per session (arena determinism).
    """

    image: np.ndarray
    instruction: str
    robot_state: RobotStateIn | None = None
    session: str = ""
    step: int = 0
    timestamp: float = 0.0
    wrist_image: np.ndarray | None = None
    seed: int = 0


@dataclass(frozen=True)
class PolicyInfo:
    """What a backend says about itself (shown by the registry and the UI)."""

    name: str
    backend: str
    action_horizon: int = 1  # rows of the chunk `infer` returns
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


class BadInput(ValueError):
    """The request, not the model, is at fault (e.g. an instruction outside a task-conditioned
    checkpoint's vocabulary): a policy raises it from `infer`, and the service answers it as bad
    input (counted in `bad_inputs`, not as a failure)."""


class Policy(ABC):
    """A policy backend. Not thread-safe: one owner calls it (a worker's loop, an arena episode)."""

    @abstractmethod
    def info(self) -> PolicyInfo:
        """Describes the backend."""

    def load(self) -> None:
        """Does the heavy part of initialisation (weights, sessions). Called once before `infer`."""

    @abstractmethod
    def infer(self, obs: Observation) -> np.ndarray:
        """Returns an action chunk, shape (H, 7), row 0 for `obs` itself (see `action_space`).

        Must be deterministic given the session's observations so far and `obs.seed`.
        """

    def end_session(self, session: str) -> None:
        """Forgets the memory kept for `session` (no-op for stateless policies)."""

    def close(self) -> None:
        """Releases resources."""
