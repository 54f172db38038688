"""Helpers for the command-path tests: states, views, proposals, real gated commands."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import numpy as np

from frankateach.messages import FrankaState
from oculus_server.safety.config import SafetyConfig
from oculus_server.safety.gate import CommandGate, GatedCommand, Proposal, RobotView
from robot_formats.recording.records import ControlMode, RobotObservation

DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # hand pointing down (180° about x), xyzw
HOME = np.array([0.45, 0.0, 0.3])


def observation(pos: Sequence[float] = HOME, quat: Sequence[float] = DOWN, t_recv: float = 0.0, epoch: int = 1,
                gripper: float = -1.0) -> RobotObservation:
    """A measured state received at monotonic `t_recv` on link `epoch`."""
    state = FrankaState(
        np.array(pos, dtype=float), np.array(quat, dtype=float), gripper, 1.7e9 + t_recv, True, np.zeros(7)
    )
    return RobotObservation(state, t_recv, 1.7e9 + t_recv, 0.01, epoch)


def view(obs: RobotObservation, ok: bool = True) -> RobotView:
    return RobotView(ok, obs, ControlMode.REAL_TIME, obs.link_epoch, "" if ok else "down")


def move(pos: Sequence[float], quat: Sequence[float] = DOWN, gripper: float = -1.0) -> Proposal:
    return Proposal("policy", True, np.asarray(pos, dtype=float), np.asarray(quat, dtype=float), gripper, np.zeros(7))


def rest(gripper: float = -1.0) -> Proposal:
    return Proposal("policy", False, None, None, gripper, np.zeros(7))


class CommandFactory:
    """Makes real gated commands (through a `CommandGate`) for robot-thread tests.

    Each command's target `timestamp` is its index (the gate's wall clock is a counter), so a
    backend's received actions can be matched to what was produced.
    """

    def __init__(
        self, hz: float = 200.0, safety: SafetyConfig | None = None, pos: Sequence[float] = (0.4, 0.0, 0.3)
    ) -> None:
        self._count = itertools.count()
        self._wall = 0.0
        self.gate = CommandGate(safety or SafetyConfig(), hz, wall=lambda: self._wall)
        self.pos = np.array(pos, dtype=float)
        self.epoch = 1
        first = self.make(self.pos)  # consumed by the gate's "hold the fresh pose" first command
        assert first is not None

    def make(self, pos: Sequence[float], epoch: int | None = None) -> GatedCommand:
        """A gated command to `pos` made now (monotonic), stamped with `epoch` (default: current)."""
        now = time.monotonic()
        self._wall = float(next(self._count)) - 1.0
        obs = observation(self.pos, DOWN, now, self.epoch if epoch is None else epoch)
        result = self.gate.admit(move(pos), view(obs), now)
        assert result.command is not None, result
        return result.command
