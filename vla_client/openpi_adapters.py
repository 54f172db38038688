"""How `OpenPIClient` talks to a given kind of openpi server: the request it builds from a frame
and how it reads the reply's action chunk into our (H, 7) action space.

* `NativeAdapter` — our own openpi endpoint (`robot_formats.openpi_request` keys; replies already
  in our action space).
* `DroidAdapter` — a real openpi DROID server (``pi0*_droid``): DROID observation keys, joints
  from the reported TCP pose by IK, the joint-velocity chunk integrated through the Panda's
  kinematics (`robot_formats.droid`); DROID acts at 15 Hz.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import numpy as np

from robot_formats.action_space import GRIPPER_OPEN, clip_action, validate_chunk
from robot_formats.openpi_request import native_request
from robot_formats.robot_state import RobotStateIn

DROID_ACTION_DT_S = 1.0 / 15.0  # DROID's control period: one chunk row per step


class OpenPIAdapter(Protocol):
    """Builds requests and reads replies; `request` runs in the caller's thread, `actions` in the
    client's loop thread (implementations must be thread-safe)."""

    action_dt_s: float | None  # the policy's action period, s; None: 1 / target_fps

    def request(self, image: np.ndarray, instruction: str, state: RobotStateIn | None) -> tuple[dict[str, Any], Any]:
        """(openpi request map, context handed back to `actions` with its reply)."""

    def actions(self, chunk: object, context: Any) -> np.ndarray:
        """The reply's ``actions`` → finite (H, 7) in our action space; raises ValueError."""


class NativeAdapter:
    """Our own endpoint: native keys out, our actions back (each row clipped to the valid range)."""

    action_dt_s: float | None = None

    def request(self, image: np.ndarray, instruction: str, state: RobotStateIn | None) -> tuple[dict[str, Any], Any]:
        return native_request(image, instruction, state), None

    def actions(self, chunk: object, context: Any) -> np.ndarray:
        arr = validate_chunk(chunk, meaning=" in our action space (a DROID server answers joint velocities: "
                                            "use DroidAdapter)")
        return np.stack([clip_action(row) for row in arr])


class DroidAdapter:
    """A real openpi DROID policy server (see the module docstring).

    Args:
        image_size: side of the square images sent (DROID models: 224).
        binarize_gripper: threshold the returned gripper at 0.5 as DROID's example does.
    """

    action_dt_s: float | None = DROID_ACTION_DT_S

    def __init__(self, image_size: int = 224, binarize_gripper: bool = True) -> None:
        from robot_formats.kinematics import PandaKinematics

        self.kin = PandaKinematics()
        self.image_size = image_size
        self.binarize_gripper = binarize_gripper
        self._q = self.kin.home.copy()
        self._gripper = GRIPPER_OPEN
        self._lock = threading.Lock()  # guards the last joints and gripper

    def request(self, image: np.ndarray, instruction: str, state: RobotStateIn | None) -> tuple[dict[str, Any], Any]:
        from robot_formats.droid import make_request
        from robot_formats.robot_state import pose_to_pos_quat

        with self._lock:
            q, gripper = self._q, self._gripper
            if state is not None:
                pos, quat = pose_to_pos_quat(state.pose)
                q = self.kin.solve_ik(pos, quat, seed=q).q
                if state.gripper is not None:
                    gripper = float(state.gripper)
            self._q, self._gripper = q, gripper
        return make_request(image, None, q, gripper, instruction, self.image_size), q.copy()

    def actions(self, chunk: object, context: Any) -> np.ndarray:
        from robot_formats.droid import (
            DroidMappingError,
            chunk_to_actions,
        )

        with self._lock:
            try:
                out, _ = chunk_to_actions(chunk, context, self.kin, self.binarize_gripper)
            except DroidMappingError as exc:
                raise ValueError(str(exc)) from exc
            self._gripper = float(out[0, 6])
        return out
