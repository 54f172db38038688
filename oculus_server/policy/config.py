"""`PolicyConfig`: the VR policy's tunables (DROID's defaults at 20 Hz), validated at load.

The workspace box is not the policy's: the command gate clamps every target into it
(`oculus_server.safety.SafetyConfig`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oculus_server.config_section import section_values
from oculus_server.constants import (
    CONTROL_FREQ,
    GRIPPER_TRIGGER_THRESHOLD,
    PERFORMANCE_CONTROL_FREQ,
    PERFORMANCE_MAX_LIN_DELTA_M,
    PERFORMANCE_MAX_ROT_DELTA_RAD,
    PERFORMANCE_POS_ACTION_GAIN,
    PERFORMANCE_ROT_ACTION_GAIN,
    POLICY_MAX_LIN_DELTA_M,
    POLICY_MAX_ROT_DELTA_RAD,
    VR_CALIBRATION_MIN_MOTION_M,
    VR_LINK_TIMEOUT_S,
    VR_POSE_JUMP_M,
    VR_UP_AXIS,
)
from oculus_server.errors import ConfigError
from robot_formats.recording.records import LEFT_BOOLS, RIGHT_BOOLS
from robot_formats.rotations import vec_to_reorder_mat

GRIPPER_MODES = ("binary", "continuous")
CALIBRATION_MODES = ("pose", "motion")
_BOOL_BUTTONS = RIGHT_BOOLS + LEFT_BOOLS
_MOVED_TO_SAFETY = {k: "belong in the 'safety:' section" for k in ("workspace_min", "workspace_max")}


@dataclass(frozen=True)
class PolicyConfig:
    """Tunables of `VRPolicy` (DROID defaults for 20 Hz).

    Attributes:
        right_controller: drive with the right controller (False: left, every button mirrored).
        max_lin_vel: max norm of the linear action (after gain), unitless velocity.
        max_rot_vel: max norm of the rotation action (after gain).
        max_gripper_vel: max |gripper action| (after gain).
        spatial_coeff: VR metres → robot metres.
        pos_action_gain: position error (m) → linear action.
        rot_action_gain: rotation error (rad, Euler xyz) → rotation action.
        gripper_action_gain: gripper error → gripper action.
        rmat_reorder: DROID's signed axis permutation (VR frame → robot frame), 4 entries, the last
            must be 4 and the 3×3 part a proper rotation.
        control_hz: rate the daemon calls `VRPolicy.step` at, Hz (the deltas below are per call).
        max_lin_delta: target displacement for a full-scale linear action, metres per step.
        max_rot_delta: target rotation for a full-scale rotation action, radians per step.
        trigger_threshold: binary gripper closes when the trigger exceeds this (0..1).
        gripper_mode: "binary" (±1 by threshold) or "continuous" (trigger 0..1 → −1..+1).
        link_timeout_s: no fresh valid sample for this long → disengage and hold, seconds.
        pose_jump_m: controller displacement per source sample above which the origin re-anchors.
        calibration_mode: "pose" (DROID: the pose held when freezing defines forward) or "motion"
            (hold the joystick and move the controller forward).
        calibration_min_motion_m: "motion" calibration needs this much horizontal motion, metres.
        vr_up_axis: "up" in the headset frame, used by the "motion" calibration.
        episode_button: button whose press toggles the episode; None → "A" (right) / "X" (left).
        success_button: button whose press marks success; None → "B" (right) / "Y" (left).
    """

    right_controller: bool = True
    max_lin_vel: float = 1.0
    max_rot_vel: float = 1.0
    max_gripper_vel: float = 1.0
    spatial_coeff: float = 1.0
    pos_action_gain: float = 5.0
    rot_action_gain: float = 2.0
    gripper_action_gain: float = 3.0
    rmat_reorder: tuple[int, ...] = (-2, -1, -3, 4)
    control_hz: float = float(CONTROL_FREQ)
    max_lin_delta: float = POLICY_MAX_LIN_DELTA_M
    max_rot_delta: float = POLICY_MAX_ROT_DELTA_RAD
    trigger_threshold: float = GRIPPER_TRIGGER_THRESHOLD
    gripper_mode: str = "binary"
    link_timeout_s: float = VR_LINK_TIMEOUT_S
    pose_jump_m: float = VR_POSE_JUMP_M
    calibration_mode: str = "pose"
    calibration_min_motion_m: float = VR_CALIBRATION_MIN_MOTION_M
    vr_up_axis: tuple[float, ...] = VR_UP_AXIS
    episode_button: str | None = None
    success_button: str | None = None

    def __post_init__(self) -> None:
        _check_config(self)

    # -- derived names -------------------------------------------------------------------------

    @property
    def side(self) -> str:
        """VR pose key: "r" or "l"."""
        return "r" if self.right_controller else "l"

    @property
    def grip_button(self) -> str:
        """Deadman button: "RG" / "LG"."""
        return "RG" if self.right_controller else "LG"

    @property
    def joystick_button(self) -> str:
        """Calibration button (joystick click): "RJ" / "LJ"."""
        return "RJ" if self.right_controller else "LJ"

    @property
    def trigger_name(self) -> str:
        """Analog gripper trigger: "rightTrig" / "leftTrig"."""
        return "rightTrig" if self.right_controller else "leftTrig"

    @property
    def episode_button_name(self) -> str:
        """The episode start/stop button actually used."""
        if self.episode_button is not None:
            return self.episode_button
        return "A" if self.right_controller else "X"

    @property
    def success_button_name(self) -> str:
        """The mark-success button actually used."""
        if self.success_button is not None:
            return self.success_button
        return "B" if self.right_controller else "Y"

    # -- constructors --------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The keys `from_dict` accepts."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def performance(cls, **overrides: Any) -> PolicyConfig:
        """The "performance" preset: position gain 10, rotation gain 3, 0.05 m and 0.1 rad per
        step, at 40 Hz instead of 20 Hz. `overrides` replace any field."""
        base = dict(
            pos_action_gain=PERFORMANCE_POS_ACTION_GAIN,
            rot_action_gain=PERFORMANCE_ROT_ACTION_GAIN,
            max_lin_delta=PERFORMANCE_MAX_LIN_DELTA_M,
            max_rot_delta=PERFORMANCE_MAX_ROT_DELTA_RAD,
            control_hz=float(PERFORMANCE_CONTROL_FREQ),
        )
        base.update(overrides)
        return cls.from_dict(base)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, *, performance: bool = False) -> PolicyConfig:
        """Builds a config from a mapping (e.g. the ``policy:`` section of the YAML config).

        Args:
            d: field name → value; missing fields keep their defaults (None: all defaults).
            performance: start from the `performance` preset instead of the DROID defaults.

        Raises:
            ConfigError: an unknown key (the message names it and lists the allowed keys) or a
                value of the wrong type or range.
        """
        d = section_values(d, "policy", cls.field_names(), _MOVED_TO_SAFETY)
        values = {k: _coerce(k, v) for k, v in d.items()}
        if performance:
            return cls.performance(**values)
        return cls(**values)


_FLOAT_FIELDS = {
    "max_lin_vel",
    "max_rot_vel",
    "max_gripper_vel",
    "spatial_coeff",
    "pos_action_gain",
    "rot_action_gain",
    "gripper_action_gain",
    "control_hz",
    "max_lin_delta",
    "max_rot_delta",
    "trigger_threshold",
    "link_timeout_s",
    "pose_jump_m",
    "calibration_min_motion_m",
}
_VECTOR_FIELDS = {"vr_up_axis": 3}


def _coerce(key: str, value: Any) -> Any:
    """Converts a YAML-ish value for field `key`; raises ConfigError on a wrong type."""
    if key in _FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"policy config '{key}': expected a number, got {value!r}")
        return float(value)
    if key in _VECTOR_FIELDS or key == "rmat_reorder":
        n = _VECTOR_FIELDS.get(key, 4)
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != n:
            raise ConfigError(f"policy config '{key}': expected a list of {n} numbers, got {value!r}")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            raise ConfigError(f"policy config '{key}': expected a list of {n} numbers, got {value!r}")
        if key == "rmat_reorder":
            if any(float(v) != int(v) for v in value):
                raise ConfigError(f"policy config 'rmat_reorder': expected integers, got {value!r}")
            return tuple(int(v) for v in value)
        return tuple(float(v) for v in value)
    if key == "right_controller":
        if not isinstance(value, bool):
            raise ConfigError(f"policy config 'right_controller': expected true/false, got {value!r}")
        return value
    if key in ("episode_button", "success_button"):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"policy config '{key}': expected a button name or null, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"policy config '{key}': expected a string, got {value!r}")
    return value


def _check_config(c: PolicyConfig) -> None:
    """Validates every field of `c` (types are normalised first); raises ConfigError."""
    for key in _FLOAT_FIELDS:
        object.__setattr__(c, key, _coerce(key, getattr(c, key)))
    for key in list(_VECTOR_FIELDS) + ["rmat_reorder"]:
        object.__setattr__(c, key, _coerce(key, getattr(c, key)))
    for key in ("right_controller", "episode_button", "success_button", "gripper_mode", "calibration_mode"):
        _coerce(key, getattr(c, key))

    positive = _FLOAT_FIELDS - {"trigger_threshold"}
    for key in sorted(positive):
        v = getattr(c, key)
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(f"policy config '{key}': expected a finite number > 0, got {v}")
    if not 0.0 <= c.trigger_threshold < 1.0:
        raise ConfigError(f"policy config 'trigger_threshold': expected 0 <= t < 1, got {c.trigger_threshold}")
    if c.gripper_mode not in GRIPPER_MODES:
        raise ConfigError(f"policy config 'gripper_mode': expected one of {GRIPPER_MODES}, got {c.gripper_mode!r}")
    if c.calibration_mode not in CALIBRATION_MODES:
        raise ConfigError(
            f"policy config 'calibration_mode': expected one of {CALIBRATION_MODES}, got {c.calibration_mode!r}"
        )
    r = c.rmat_reorder
    if sorted(abs(v) for v in r) != [1, 2, 3, 4] or r[3] != 4:
        raise ConfigError(
            f"policy config 'rmat_reorder': expected a signed permutation of 1..4 ending in 4, got {list(r)}"
        )
    if np.linalg.det(vec_to_reorder_mat(r)[:3, :3]) < 0:
        raise ConfigError(
            f"policy config 'rmat_reorder': {list(r)} mirrors the frame (determinant −1); "
            "flip the sign of one axis so orientations stay rotations"
        )
    up = np.asarray(c.vr_up_axis)
    if not (np.all(np.isfinite(up)) and np.linalg.norm(up) > 1e-9):
        raise ConfigError(f"policy config 'vr_up_axis': expected a non-zero finite vector, got {list(up)}")
    for key in ("episode_button", "success_button"):
        v = getattr(c, key)
        if v is not None and v not in _BOOL_BUTTONS:
            raise ConfigError(f"policy config '{key}': expected one of {_BOOL_BUTTONS} or null, got {v!r}")
