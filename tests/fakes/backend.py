"""A minimal `RobotBackend`: an ideal arm that is always exactly at its last valid target."""

from __future__ import annotations

import threading
import time

import numpy as np

from frankateach.constants import GRIPPER_OPEN, HOME_JOINTS
from frankateach.messages import FrankaAction, FrankaState
from frankateach.server_base import RobotBackend

HOME_POS = np.array([0.45, 0.0, 0.35])  # m, base frame
HOME_QUAT = np.array([1.0, 0.0, 0.0, 0.0])  # xyzw, hand pointing down


class TargetBackend(RobotBackend):
    """Holds a target and reports it as the measured state.

    Args:
        apply_delay_s: how long apply_action blocks (a slow controller).
        fail_with: if set, apply_action raises this (a backend bug).

    Attributes:
        applied: every action the server passed on, in order (already clamped).
        resets: how many reset actions arrived.
    """

    name = "fake-target"

    def __init__(self, apply_delay_s: float = 0.0, fail_with: Exception | None = None) -> None:
        self.apply_delay_s = apply_delay_s
        self.fail_with = fail_with
        self._lock = threading.Lock()
        self.pos = HOME_POS.copy()
        self.quat = HOME_QUAT.copy()
        self.gripper = GRIPPER_OPEN
        self.applied: list[FrankaAction] = []
        self.resets = 0
        self._commanded: FrankaState | None = None
        self.closed = False

    def read_state(self) -> FrankaState:
        with self._lock:
            return FrankaState(
                pos=self.pos.copy(),
                quat=self.quat.copy(),
                gripper=self.gripper,
                timestamp=time.time(),
                start_teleop=True,
                joint_positions=HOME_JOINTS.copy(),
            )

    def apply_action(self, action: FrankaAction) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        if self.apply_delay_s:
            time.sleep(self.apply_delay_s)
        with self._lock:
            self.applied.append(action)
            if action.reset:
                self.resets += 1
                self.pos, self.quat, self.gripper = HOME_POS.copy(), HOME_QUAT.copy(), GRIPPER_OPEN
            else:
                self.pos = np.array(action.pos, dtype=float)
                self.quat = np.array(action.quat, dtype=float)
                self.gripper = float(action.gripper)
            self._commanded = FrankaState(
                pos=self.pos.copy(),
                quat=self.quat.copy(),
                gripper=self.gripper,
                timestamp=action.timestamp,
            )

    def commanded_state(self) -> FrankaState | None:
        with self._lock:
            return self._commanded

    def close(self) -> None:
        self.closed = True
