"""Forward calibration of the VR policy: which way is "forward" for the robot.

``calibration_mode="pose"`` (DROID): the calibration is *armed* at start. While armed, every
sample sets ``vr_to_global = inv(pose)`` (the current controller pose defines the robot frame
through ``G``). A grip or joystick press freezes it; a joystick press re-arms it, so holding the
joystick keeps tracking and releasing freezes it at the last pose.

``calibration_mode="motion"``: armed at start exactly as above until the first grip press.
Pressing the joystick starts a capture at the current controller position. On release, the
displacement ``d`` from the press is split into its part along ``vr_up_axis`` and the horizontal
rest ``d_h``. If ``‖d_h‖ ≥ calibration_min_motion_m`` the frame ``A`` with rows
``f = d_h/‖d_h‖`` (robot +x, forward), ``up × f`` (robot +y, left) and ``up`` (robot +z) is used:
``vr_to_global = G⁻¹ · [A, −A·p; 0, 1]`` so that ``M = [A, −A·p; 0, 1] · pose`` — moving the
controller along ``d_h`` moves the robot along +x and lifting it moves the robot up, whatever the
controller's orientation. Otherwise it falls back to DROID's ``inv(pose)`` at release. A link
loss cancels a capture in progress (`cancel_capture`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from oculus_server.policy.config import PolicyConfig
from oculus_server.policy.droid import inverse
from robot_formats.rotations import vec_to_reorder_mat


class CalibrationUpdate(NamedTuple):
    """What one sample did to the calibration."""

    changed: bool  # the transform changed (an engaged arm must re-anchor its origin)
    froze: bool  # a calibration was completed (counted, reported as an event)


class ForwardCalibration:
    """The ``vr_to_global`` transform and its arming state. Used from one thread only."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self.g = vec_to_reorder_mat(config.rmat_reorder)  # (4, 4) VR frame → robot frame
        self._g_inv = self.g.T  # a signed permutation is orthogonal
        up = np.asarray(config.vr_up_axis, dtype=float)
        self._up = up / np.linalg.norm(up)
        self.reset()

    def reset(self) -> None:
        """Armed again, identity transform, no capture."""
        self.vr_to_global = np.eye(4)  # (4, 4) calibration transform, VR frame
        self.gv = self.g @ self.vr_to_global  # (4, 4) G · vr_to_global
        self.armed = True
        self.method = "pose-tracking"
        self.capture_start: np.ndarray | None = None  # (3,) raw position at joystick press
        self._prev_joy = False

    @property
    def capturing(self) -> bool:
        """A joystick-motion capture is in progress."""
        return self.capture_start is not None

    def cancel_capture(self) -> None:
        """Drops a motion capture in progress (link loss)."""
        self.capture_start = None

    def update(self, pose: np.ndarray, raw_pos: tuple[float, float, float], grip: bool, joy: bool) -> CalibrationUpdate:
        """Applies one valid sample (pose (4, 4), its translation, grip and joystick buttons)."""
        prev_joy = self._prev_joy
        self._prev_joy = joy
        if self.config.calibration_mode == "motion":
            return self._update_motion(pose, raw_pos, grip, joy, prev_joy)
        # DROID: reset_orientation |= joystick; if armed: mat = inv(pose); grip/joystick disarms.
        changed = froze = False
        if joy:
            self.armed = True
        if self.armed:
            self._set(inverse(pose), "pose-tracking")
            changed = True
            if grip or joy:
                self.armed = False
                self.method = "pose"
                froze = not joy  # frozen by the grip
        if prev_joy and not joy:  # frozen at the last joystick-held pose
            froze = True
        return CalibrationUpdate(changed, froze)

    def _update_motion(
        self, pose: np.ndarray, raw_pos: tuple[float, float, float], grip: bool, joy: bool, prev_joy: bool
    ) -> CalibrationUpdate:
        if joy and not prev_joy:
            self.capture_start = np.array(raw_pos)
            self.armed = False
            return CalibrationUpdate(False, False)
        if joy:
            return CalibrationUpdate(False, False)
        if prev_joy and self.capture_start is not None:
            d = np.array(raw_pos) - self.capture_start
            self.capture_start = None
            frame = self._motion_frame(d, np.array(raw_pos))
            if frame is not None:
                self._set(self._g_inv @ frame, "motion")
            else:
                self._set(inverse(pose), "pose-fallback")
            self.armed = False
            return CalibrationUpdate(True, True)
        if self.armed:
            self._set(inverse(pose), "pose-tracking")
            if grip:
                self.armed = False
                self.method = "pose"
                return CalibrationUpdate(True, True)
            return CalibrationUpdate(True, False)
        return CalibrationUpdate(False, False)

    def _set(self, mat: np.ndarray, method: str) -> None:
        self.vr_to_global = mat
        self.gv = self.g @ mat
        self.method = method

    def _motion_frame(self, d: np.ndarray, p_end: np.ndarray) -> np.ndarray | None:
        """(4, 4) [A, −A·p_end] mapping horizontal motion `d` to +x and up to +z, or None if too small."""
        up = self._up
        d_h = d - float(d @ up) * up
        n = float(np.linalg.norm(d_h))
        if not (math.isfinite(n) and n >= self.config.calibration_min_motion_m):
            return None
        f = d_h / n
        a = np.array([f, np.cross(up, f), up])
        frame = np.eye(4)
        frame[:3, :3] = a
        frame[:3, 3] = -a @ p_end
        return frame if np.isfinite(frame).all() else None
