"""The VR teleoperation policy: DROID's ``VRPolicy`` math, turned into pose targets.

One `VRPolicy.step` per control period takes the newest `VRSample`, the robot's pose and a
*reference* pose, and returns DROID's 7-D velocity action plus the Cartesian target to send.

DROID's math (``droid/controllers/oculus_controller.py``), reproduced exactly:

* ``G = vec_to_reorder_mat(rmat_reorder)``; ``M = G · vr_to_global · head_T_controller``;
  ``vr_pos = spatial_coeff · M[:3, 3]``; ``vr_quat`` = rotation of ``M[:3, :3]`` (xyzw);
  ``vr_gripper`` = trigger value 0..1.
* Movement only while the grip is held (deadman). Every grip press *and* release stores the origin
  (robot and VR pose at that instant).
* ``pos_action = (vr_pos − vr_origin_pos) − (robot_pos − robot_origin_pos)``;
  ``rot_action = euler_xyz(quat_diff(quat_diff(vr_quat, vr_origin_quat),
  quat_diff(robot_quat, robot_origin_quat)))`` with ``quat_diff(a, b) = R(a)·R(b)⁻¹``;
  ``gripper_action = 1.5 · vr_gripper − robot_gripper_01``.
* Gains, then each part scaled down to its max velocity norm, concatenated, clipped to [−1, 1].
* Forward calibration: while armed (initially), ``vr_to_global = inv(pose)`` each sample; a grip
  or joystick press freezes it; a joystick press re-arms it.

What DROID leaves to its robot side, done here (DROID's ``RobotIKSolver`` conventions):

* velocity → target: ``lin`` / ``rot`` renormalised to norm ≤ 1, then
  ``target_pos = reference_pos + lin · max_lin_delta`` and
  ``target_rot = R_xyz(rot · max_rot_delta) · R(reference_quat)`` — the delta is applied on the
  left, i.e. about the robot *base* axes (DROID's ``add_angles(delta, source)``).
* The target position is clamped to the workspace box; a non-finite result is never emitted.

Additions beyond DROID (safety and operator features):

* Robot gripper: our `FrankaState.gripper` runs −1 open … +1 closed; DROID's runs 0 open … 1
  closed, so ``robot_gripper_01 = (gripper + 1) / 2``.
* Reference: the daemon passes the reference pose and the `ControlMode`. In ``REAL_TIME`` the
  measured pose (``robot_pos``/``robot_quat``) drives the error term, as in DROID; in
  ``PREDICTIVE`` (measured state stale) the reference — the last commanded target — stands in for
  the robot pose everywhere, so a stale measurement cannot wind the target up.
* Link loss: no fresh, valid sample for ``link_timeout_s`` → disengage and hold; movement resumes
  only after the grip is seen released and pressed again once the link is back.
* Pose jump: the controller moving more than ``pose_jump_m`` per source sample (the bound scales
  with the gap in ``VRSample.seq``) re-anchors the origin instead of moving the arm.
* Joystick-motion calibration (``calibration_mode="motion"``): see `VRPolicy` docstring.
* Episode buttons: press edges are reported as events.
* Sample checks: a sample whose pose for the chosen side is missing, non-finite, not rigid
  (``VR_RIGID_TOL``, bottom row within ``VR_BOTTOM_ROW_TOL``), farther than
  ``VR_MAX_HAND_DISTANCE_M`` from the head, or whose trigger is not a finite number is skipped
  (hold for that step); it does not count as a link sample.
* Numerical safety: a non-finite value anywhere in the action or target is replaced by a hold
  (target = reference, zero action) and counted; it is checked *before* clipping, since
  ``min``/``max`` would turn NaN into a full-scale ±1.

The rotation maths uses `oculus_server.transforms` (scipy's conventions on plain floats; scipy
itself is ~10× too slow for the step budget) — ``tests/test_transforms.py`` checks it against scipy.
A `VRPolicy` is used from one thread (the control thread); it is not thread-safe.

Frames and units: positions metres, angles radians, quaternions xyzw; robot poses are the hand TCP
in the robot base frame; VR poses are head_T_controller in the headset app's frame.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from frankateach.constants import (
    CONTROL_FREQ,
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    GRIPPER_TRIGGER_THRESHOLD,
    PERFORMANCE_CONTROL_FREQ,
    PERFORMANCE_MAX_LIN_DELTA_M,
    PERFORMANCE_MAX_ROT_DELTA_RAD,
    PERFORMANCE_POS_ACTION_GAIN,
    PERFORMANCE_ROT_ACTION_GAIN,
    POLICY_MAX_LIN_DELTA_M,
    POLICY_MAX_ROT_DELTA_RAD,
    ROBOT_WORKSPACE_MAX,
    ROBOT_WORKSPACE_MIN,
    VR_BOTTOM_ROW_TOL,
    VR_CALIBRATION_MIN_MOTION_M,
    VR_LINK_TIMEOUT_S,
    VR_MAX_HAND_DISTANCE_M,
    VR_POSE_JUMP_M,
    VR_RIGID_TOL,
    VR_UP_AXIS,
)
from frankateach.messages import FrankaAction
from oculus_server.command import ControlMode
from oculus_server.errors import ConfigError, OculusServerError
from oculus_server.transforms import (
    Quat,
    euler_xyz_to_quat,
    quat_diff,
    quat_from_matrix,
    quat_mul,
    quat_normalize,
    quat_to_euler_xyz,
    vec_to_reorder_mat,
)
from oculus_server.vr.source import LEFT_BOOLS, RIGHT_BOOLS, VRSample

log = logging.getLogger(__name__)

# Event names reported in `PolicyOutput.events`.
EVENT_EPISODE_TOGGLE = "episode_toggle"  # episode button (A / X) pressed
EVENT_SUCCESS = "success"  # success button (B / Y) pressed
EVENT_ORIGIN_RESET = "origin_reset"  # robot and VR origins stored
EVENT_ENGAGED = "engaged"  # the arm starts following the controller
EVENT_DISENGAGED = "disengaged"  # the arm stops following (grip released, link lost, ...)
EVENT_LINK_LOST = "link_lost"  # no fresh valid sample for link_timeout_s
EVENT_LINK_RESTORED = "link_restored"  # fresh samples again (a new grip press is still needed)
EVENT_CALIBRATED = "calibrated"  # the forward calibration froze
EVENT_POSE_JUMP = "pose_jump"  # the controller jumped; origin re-anchored
EVENT_NON_FINITE = "non_finite"  # a non-finite action/target was replaced by a hold
EVENT_INVALID_SAMPLE = "invalid_sample"  # the sample lacked / had a bad pose or trigger

# Why a step held the arm (`PolicyOutput.info["hold_reason"]`; "" when the arm moves).
HOLD_NO_SAMPLE = "no_sample"
HOLD_LINK_LOST = "link_lost"
HOLD_INVALID_SAMPLE = "invalid_sample"
HOLD_DEADMAN = "deadman"
HOLD_REGRIP = "regrip_required"
HOLD_NON_FINITE = "non_finite"

GRIPPER_MODES = ("binary", "continuous")
CALIBRATION_MODES = ("pose", "motion")
_BOOL_BUTTONS = RIGHT_BOOLS + LEFT_BOOLS


class PolicyError(OculusServerError):
    """The policy got inputs it cannot turn into any safe target."""


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


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
        workspace_min: (3,) lower corner of the target box, metres, robot base frame.
        workspace_max: (3,) upper corner of the target box.
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
    workspace_min: tuple[float, ...] = tuple(float(v) for v in ROBOT_WORKSPACE_MIN)
    workspace_max: tuple[float, ...] = tuple(float(v) for v in ROBOT_WORKSPACE_MAX)

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
        d = {} if d is None else d
        if not isinstance(d, Mapping):
            raise ConfigError(f"policy config: expected a mapping, got {type(d).__name__}")
        allowed = cls.field_names()
        unknown = [k for k in d if k not in allowed]
        if unknown:
            raise ConfigError(
                f"policy config: unknown key {unknown[0]!r}"
                + (f" (and {unknown[1:]})" if len(unknown) > 1 else "")
                + f"; allowed keys: {', '.join(allowed)}"
            )
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
_VECTOR_FIELDS = {"vr_up_axis": 3, "workspace_min": 3, "workspace_max": 3}


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
    lo, hi = np.asarray(c.workspace_min), np.asarray(c.workspace_max)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
        raise ConfigError(
            f"policy config: expected finite workspace_min < workspace_max, got {list(lo)} and {list(hi)}"
        )
    for key in ("episode_button", "success_button"):
        v = getattr(c, key)
        if v is not None and v not in _BOOL_BUTTONS:
            raise ConfigError(f"policy config '{key}': expected one of {_BOOL_BUTTONS} or null, got {v!r}")


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyOutput:
    """One policy step's result.

    Attributes:
        action: (7,) DROID velocity action in [−1, 1]: linear xyz, rotation (Euler xyz), gripper.
            All zeros whenever the arm holds.
        target: pose target for the robot (base frame, metres, xyzw), finite and inside the
            workspace box; gripper ±1 (binary) or −1..+1 (continuous); reset False.
        engaged: this step moves the arm (deadman held, link OK, regrip done, finite result).
        events: what happened this step (``EVENT_*`` names), in order.
        info: details for recording and the dashboard (see `VRPolicy.step`).
    """

    action: np.ndarray
    target: FrankaAction
    engaged: bool
    events: tuple[str, ...]
    info: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------


class VRPolicy:
    """DROID's VR policy, stepped explicitly (no threads, no clock of its own).

    Forward calibration, ``calibration_mode="pose"`` (DROID): the calibration is *armed* at start.
    While armed, every sample sets ``vr_to_global = inv(pose)`` (so the current controller pose
    defines the robot frame through ``G``). A grip or joystick press freezes it; a joystick press
    re-arms it, so holding the joystick keeps tracking and releasing freezes it at the last pose.

    ``calibration_mode="motion"``: armed at start exactly as above until the first grip press.
    Pressing the joystick starts a capture at the current controller position. On release, the
    displacement ``d`` from the press is split into its part along ``vr_up_axis`` and the
    horizontal rest ``d_h``. If ``‖d_h‖ ≥ calibration_min_motion_m`` the frame ``A`` with rows
    ``f = d_h/‖d_h‖`` (robot +x, forward), ``up × f`` (robot +y, left) and ``up`` (robot +z) is
    used: ``vr_to_global = G⁻¹ · [A, −A·p; 0, 1]`` so that ``M = [A, −A·p; 0, 1] · pose`` — moving
    the controller along ``d_h`` moves the robot along +x and lifting it moves the robot up,
    whatever the controller's orientation. Otherwise it falls back to DROID's ``inv(pose)`` at
    release. A link loss cancels a capture in progress.

    Any change of calibration while the arm is engaged re-anchors the origin (DROID would jump).
    """

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config if config is not None else PolicyConfig()
        c = self.config
        self._side = c.side
        self._grip_key = c.grip_button
        self._joy_key = c.joystick_button
        self._trig_key = c.trigger_name
        self._episode_key = c.episode_button_name
        self._success_key = c.success_button_name
        self._g = vec_to_reorder_mat(c.rmat_reorder)  # (4, 4) VR frame → robot frame
        self._g_inv = self._g.T  # a signed permutation is orthogonal
        self._ws_min = tuple(c.workspace_min)
        self._ws_max = tuple(c.workspace_max)
        up = np.asarray(c.vr_up_axis, dtype=float)
        self._up = up / np.linalg.norm(up)
        self._binary = c.gripper_mode == "binary"
        self.stats: dict[str, int] = {}
        self.reset_state()

    # -- public API ----------------------------------------------------------------------------

    def reset_state(self) -> None:
        """Forgets everything: calibration re-armed, origin unset, link as never seen, counters zeroed."""
        self._vr_to_global = np.eye(4)  # (4, 4) calibration transform, VR frame
        self._gv = self._g @ self._vr_to_global
        self._calib_armed = True
        self._calib_method = "pose-tracking"
        self._capture_start: np.ndarray | None = None  # (3,) raw position at joystick press
        self._prev_grip = False
        self._prev_joy = False
        self._prev_episode = False
        self._prev_success = False
        self._movement = False  # grip held and no regrip pending (DROID's movement_enabled)
        self._engaged = False  # the previous output moved the arm
        self._origin_pending = True
        self._robot_origin: tuple[tuple[float, ...], Quat] | None = None
        self._vr_origin: tuple[tuple[float, ...], Quat] | None = None
        self._last_raw_pos: tuple[float, float, float] | None = None
        self._last_seq: int | None = None
        self._last_good_t: float | None = None
        self._link_ok = False
        self._need_regrip = False
        self._seen_release = False
        self._last_target: tuple[tuple[float, ...], Quat] | None = None
        self._hold_gripper: float | None = None
        self.stats = {
            k: 0
            for k in (
                "steps",
                "engaged_steps",
                "holds",
                "non_finite",
                "invalid_samples",
                "pose_jumps",
                "link_losses",
                "origin_resets",
                "calibrations",
                "episode_toggles",
                "successes",
            )
        }

    def reset_origin(self) -> None:
        """Re-anchors the origin (robot and VR pose) at the next valid step."""
        self._origin_pending = True

    @property
    def vr_to_global_mat(self) -> np.ndarray:
        """(4, 4) current forward-calibration transform (a copy)."""
        return self._vr_to_global.copy()

    @property
    def calibration_armed(self) -> bool:
        """True while the DROID-style calibration tracks the controller pose."""
        return self._calib_armed

    def step(
        self,
        sample: VRSample | None,
        *,
        robot_pos: Sequence[float],
        robot_quat: Sequence[float],
        robot_gripper: float,
        reference_pos: Sequence[float],
        reference_quat: Sequence[float],
        mode: ControlMode,
        now: float,
        timestamp: float,
    ) -> PolicyOutput:
        """Runs one control step.

        Args:
            sample: newest VR sample (the same one may be passed again), or None if none yet.
            robot_pos: (3,) measured hand position, metres, base frame.
            robot_quat: (4,) measured hand orientation, xyzw.
            robot_gripper: measured gripper, −1 open … +1 closed.
            reference_pos: (3,) pose the target is built from: the measured pose (REAL_TIME) or
                the last commanded target (PREDICTIVE).
            reference_quat: (4,) its orientation, xyzw.
            mode: which reference this is; PREDICTIVE also uses it as the robot pose.
            now: `time.monotonic()` of this step, seconds (compared with ``sample.t_recv``).
            timestamp: copied into the target's ``timestamp``.

        Returns:
            The action, target, engagement, events and an ``info`` dict with keys
            ``hold_reason`` ("" or ``HOLD_*``), ``link_ok``, ``sample_age_s``, ``vr_pos``,
            ``vr_quat``, ``vr_gripper`` (None when no valid sample), ``movement_enabled``,
            ``regrip_required``, ``calibration_armed``, ``calibration_method``, ``calibrating``,
            ``mode``, ``vr_origin_pos``, ``robot_origin_pos``.

        Raises:
            PolicyError: an input has the wrong length, or the reference is unusable (non-finite
                or zero quaternion) and no earlier target exists to hold instead.
        """
        st = self.stats
        st["steps"] += 1
        events: list[str] = []
        ref_pos, ref_quat = self._reference(reference_pos, reference_quat)
        rob_g = float(robot_gripper)
        if self._hold_gripper is None:
            self._hold_gripper = self._initial_gripper(rob_g)
        if mode is ControlMode.PREDICTIVE:
            rob_pos, rob_quat = ref_pos, ref_quat
        else:
            rob_pos = _floats(robot_pos, 3, "robot_pos")
            rob_quat = quat_normalize(_floats(robot_quat, 4, "robot_quat"))

        # -- link: fresh, valid sample? ----------------------------------------------------------
        age = math.nan
        parsed = None
        if sample is not None:
            age = now - sample.t_recv
            if age <= self.config.link_timeout_s:
                parsed = self._parse(sample)
                if parsed is None:
                    st["invalid_samples"] += 1
                    events.append(EVENT_INVALID_SAMPLE)
                else:
                    self._last_good_t = sample.t_recv
        link_ok = self._last_good_t is not None and now - self._last_good_t <= self.config.link_timeout_s
        if self._link_ok and not link_ok:
            st["link_losses"] += 1
            events.append(EVENT_LINK_LOST)
            self._need_regrip = True
            self._seen_release = False
            self._movement = False
            self._capture_start = None
            log.warning("VR link lost: no valid sample for %.2f s; holding", self.config.link_timeout_s)
        elif link_ok and not self._link_ok and self._need_regrip:
            events.append(EVENT_LINK_RESTORED)
            log.info("VR link restored; release and press the grip to move again")
        self._link_ok = link_ok

        info = {
            "hold_reason": "",
            "link_ok": link_ok,
            "sample_age_s": age,
            "vr_pos": None,
            "vr_quat": None,
            "vr_gripper": None,
            "movement_enabled": self._movement,
            "regrip_required": self._need_regrip,
            "calibration_armed": self._calib_armed,
            "calibration_method": self._calib_method,
            "calibrating": self._capture_start is not None,
            "mode": mode.value,
            "vr_origin_pos": None if self._vr_origin is None else self._vr_origin[0],
            "robot_origin_pos": None if self._robot_origin is None else self._robot_origin[0],
        }
        if not link_ok:
            reason = HOLD_LINK_LOST if self._last_good_t is not None else HOLD_NO_SAMPLE
            return self._hold(ref_pos, ref_quat, timestamp, events, info, reason)
        if parsed is None:
            return self._hold(ref_pos, ref_quat, timestamp, events, info, HOLD_INVALID_SAMPLE)

        pose, raw_pos, grip, joy, trig, ep, succ = parsed
        self._process_buttons(pose, raw_pos, grip, joy, ep, succ, events)
        self._check_jump(raw_pos, sample.seq, events)

        # -- VR state (DROID _process_reading) ---------------------------------------------------
        m = (self._gv @ pose).tolist()
        k = self.config.spatial_coeff
        vr_pos = (k * m[0][3], k * m[1][3], k * m[2][3])
        vr_quat = quat_from_matrix(m)
        info["vr_pos"] = vr_pos
        info["vr_quat"] = vr_quat
        info["vr_gripper"] = trig
        info["movement_enabled"] = self._movement
        info["regrip_required"] = self._need_regrip
        info["calibration_armed"] = self._calib_armed
        info["calibration_method"] = self._calib_method
        info["calibrating"] = self._capture_start is not None

        inputs_finite = _all_finite(vr_pos) and _all_finite(vr_quat) and _all_finite(rob_pos)
        inputs_finite = inputs_finite and _all_finite(rob_quat) and math.isfinite(rob_g)
        if self._origin_pending and inputs_finite:
            self._robot_origin = (rob_pos, rob_quat)
            self._vr_origin = (vr_pos, vr_quat)
            self._origin_pending = False
            st["origin_resets"] += 1
            events.append(EVENT_ORIGIN_RESET)
            info["vr_origin_pos"] = vr_pos
            info["robot_origin_pos"] = rob_pos

        if not self._movement:
            reason = HOLD_REGRIP if self._need_regrip and grip else HOLD_DEADMAN
            return self._hold(ref_pos, ref_quat, timestamp, events, info, reason)
        if not inputs_finite or self._origin_pending:
            return self._non_finite(ref_pos, ref_quat, timestamp, events, info)

        action = self._action(vr_pos, vr_quat, trig, rob_pos, rob_quat, rob_g)
        target = None if action is None else self._target(action, ref_pos, ref_quat)
        if action is None or target is None:
            return self._non_finite(ref_pos, ref_quat, timestamp, events, info)
        t_pos, t_quat = target
        if self._binary:
            gripper = GRIPPER_CLOSE if trig > self.config.trigger_threshold else GRIPPER_OPEN
        else:
            gripper = min(1.0, max(-1.0, 2.0 * trig - 1.0))
        self._hold_gripper = gripper
        self._last_target = (t_pos, t_quat)
        if not self._engaged:
            events.append(EVENT_ENGAGED)
        self._engaged = True
        st["engaged_steps"] += 1
        return PolicyOutput(
            action=np.array(action),
            target=FrankaAction(
                pos=np.array(t_pos), quat=np.array(t_quat), gripper=gripper, reset=False, timestamp=timestamp
            ),
            engaged=True,
            events=tuple(events),
            info=info,
        )

    # -- step pieces ---------------------------------------------------------------------------

    def _parse(self, sample: VRSample) -> tuple | None:
        """Returns (pose, raw_pos, grip, joy, trigger, episode, success) or None if unusable."""
        p = sample.poses.get(self._side)
        if p is None:
            return None
        try:
            pose = np.asarray(p, dtype=float)
            if pose.shape != (4, 4) or not np.isfinite(pose).all():
                return None
            if not math.isfinite(float(sample.t_recv)):
                return None
            pl = pose.tolist()
            if not _is_rigid(pl):
                return None
            x, y, z = pl[0][3], pl[1][3], pl[2][3]
            if x * x + y * y + z * z > VR_MAX_HAND_DISTANCE_M * VR_MAX_HAND_DISTANCE_M:
                return None  # farther from the head than a hand can be (also bounds the maths)
            b = sample.buttons
            trig = b.get(self._trig_key, 0.0)
            if isinstance(trig, (tuple, list)):
                trig = trig[0] if trig else 0.0
            trig = float(trig)
            if not math.isfinite(trig):
                return None
            return (
                pose,
                (x, y, z),
                bool(b.get(self._grip_key, False)),
                bool(b.get(self._joy_key, False)),
                trig,
                bool(b.get(self._episode_key, False)),
                bool(b.get(self._success_key, False)),
            )
        except (TypeError, ValueError, IndexError):
            return None

    def _process_buttons(
        self,
        pose: np.ndarray,
        raw_pos: tuple[float, float, float],
        grip: bool,
        joy: bool,
        ep: bool,
        succ: bool,
        events: list[str],
    ) -> None:
        """Calibration, deadman edges, regrip gate and episode edges for one fresh valid sample."""
        changed = self._update_calibration(pose, raw_pos, grip, joy, events)
        if changed and self._movement:
            self._origin_pending = True

        if grip != self._prev_grip:  # DROID: a press or a release resets the origin
            self._origin_pending = True
        self._prev_grip = grip
        if self._need_regrip:
            if not grip:
                self._seen_release = True
            elif self._seen_release:
                self._need_regrip = False
                self._seen_release = False
        was_moving = self._movement
        self._movement = grip and not self._need_regrip
        if was_moving and not self._movement and self._engaged:
            events.append(EVENT_DISENGAGED)
            self._engaged = False

        if ep and not self._prev_episode:
            self.stats["episode_toggles"] += 1
            events.append(EVENT_EPISODE_TOGGLE)
        if succ and not self._prev_success:
            self.stats["successes"] += 1
            events.append(EVENT_SUCCESS)
        self._prev_episode = ep
        self._prev_success = succ

    def _update_calibration(
        self, pose: np.ndarray, raw_pos: tuple[float, float, float], grip: bool, joy: bool, events: list[str]
    ) -> bool:
        """Applies one sample to the forward calibration; returns True if the transform changed."""
        changed = False
        prev_joy = self._prev_joy
        self._prev_joy = joy
        if self.config.calibration_mode == "motion":
            if joy and not prev_joy:
                self._capture_start = np.array(raw_pos)
                self._calib_armed = False
                return False
            if joy:
                return False
            if prev_joy and self._capture_start is not None:
                d = np.array(raw_pos) - self._capture_start
                self._capture_start = None
                frame = self._motion_frame(d, np.array(raw_pos))
                if frame is not None:
                    self._set_calibration(self._g_inv @ frame, "motion")
                else:
                    self._set_calibration(_inverse(pose), "pose-fallback")
                self._calib_armed = False
                self.stats["calibrations"] += 1
                events.append(EVENT_CALIBRATED)
                return True
            if self._calib_armed:
                self._set_calibration(_inverse(pose), "pose-tracking")
                changed = True
                if grip:
                    self._calib_armed = False
                    self._calib_method = "pose"
                    self.stats["calibrations"] += 1
                    events.append(EVENT_CALIBRATED)
            return changed

        # DROID: reset_orientation |= joystick; if armed: mat = inv(pose); grip/joystick disarms.
        if joy:
            self._calib_armed = True
        if self._calib_armed:
            self._set_calibration(_inverse(pose), "pose-tracking")
            changed = True
            if grip or joy:
                self._calib_armed = False
                self._calib_method = "pose"
                if not joy:  # frozen by the grip
                    self.stats["calibrations"] += 1
                    events.append(EVENT_CALIBRATED)
        if prev_joy and not joy:  # frozen at the last joystick-held pose
            self.stats["calibrations"] += 1
            events.append(EVENT_CALIBRATED)
        return changed

    def _set_calibration(self, mat: np.ndarray, method: str) -> None:
        self._vr_to_global = mat
        self._gv = self._g @ mat
        self._calib_method = method

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

    def _check_jump(self, raw_pos: tuple[float, float, float], seq: int, events: list[str]) -> None:
        """Re-anchors the origin if the controller moved more than pose_jump_m per source sample."""
        last, last_seq = self._last_raw_pos, self._last_seq
        self._last_raw_pos = raw_pos
        self._last_seq = seq
        if last is None:
            return
        gap = seq - last_seq if isinstance(seq, int) and isinstance(last_seq, int) else 1
        dist = math.dist(raw_pos, last)
        if dist > self.config.pose_jump_m * max(1, gap):
            self.stats["pose_jumps"] += 1
            events.append(EVENT_POSE_JUMP)
            self._origin_pending = True
            log.info("VR pose jumped %.3f m over %d sample(s); origin re-anchored", dist, max(1, gap))

    def _action(
        self,
        vr_pos: tuple[float, float, float],
        vr_quat: Quat,
        trig: float,
        rob_pos: tuple[float, ...],
        rob_quat: Quat,
        rob_g: float,
    ) -> list[float] | None:
        """DROID's _calculate_action: gains, per-part norm limits, clip → 7 values (None if non-finite)."""
        c = self.config
        (rox, roy, roz), ro_q = self._robot_origin  # type: ignore[misc]
        (vox, voy, voz), vo_q = self._vr_origin  # type: ignore[misc]
        px = ((vr_pos[0] - vox) - (rob_pos[0] - rox)) * c.pos_action_gain
        py = ((vr_pos[1] - voy) - (rob_pos[1] - roy)) * c.pos_action_gain
        pz = ((vr_pos[2] - voz) - (rob_pos[2] - roz)) * c.pos_action_gain
        q = quat_diff(quat_diff(vr_quat, vo_q), quat_diff(rob_quat, ro_q))
        ex, ey, ez = quat_to_euler_xyz(quat_normalize(q))
        ex *= c.rot_action_gain
        ey *= c.rot_action_gain
        ez *= c.rot_action_gain
        g = (1.5 * trig - (rob_g + 1.0) * 0.5) * c.gripper_action_gain

        n = math.sqrt(px * px + py * py + pz * pz)
        if n > c.max_lin_vel:
            s = c.max_lin_vel / n
            px, py, pz = px * s, py * s, pz * s
        n = math.sqrt(ex * ex + ey * ey + ez * ez)
        if n > c.max_rot_vel:
            s = c.max_rot_vel / n
            ex, ey, ez = ex * s, ey * s, ez * s
        if abs(g) > c.max_gripper_vel:
            g = g * c.max_gripper_vel / abs(g)
        raw = (px, py, pz, ex, ey, ez, g)
        if not _all_finite(raw):  # check before clipping: min/max would turn NaN into ±1
            return None
        return [min(1.0, max(-1.0, v)) for v in raw]

    def _target(
        self, action: list[float], ref_pos: tuple[float, ...], ref_quat: Quat
    ) -> tuple[tuple[float, float, float], Quat] | None:
        """Velocity action → clamped pose target (DROID's cartesian_velocity_to_delta + add_poses)."""
        c = self.config
        lx, ly, lz, rx, ry, rz = action[:6]
        n = math.sqrt(lx * lx + ly * ly + lz * lz)
        if n > 1.0:
            lx, ly, lz = lx / n, ly / n, lz / n
        n = math.sqrt(rx * rx + ry * ry + rz * rz)
        if n > 1.0:
            rx, ry, rz = rx / n, ry / n, rz / n
        d = c.max_lin_delta
        pos = (ref_pos[0] + lx * d, ref_pos[1] + ly * d, ref_pos[2] + lz * d)
        d = c.max_rot_delta
        quat = quat_normalize(quat_mul(euler_xyz_to_quat((rx * d, ry * d, rz * d)), ref_quat))
        if not (_all_finite(pos) and _all_finite(quat)):  # check before clamping (NaN-masking)
            return None
        return self._clamp(pos), quat

    def _clamp(self, pos: Sequence[float]) -> tuple[float, float, float]:
        lo, hi = self._ws_min, self._ws_max
        return (
            min(hi[0], max(lo[0], pos[0])),
            min(hi[1], max(lo[1], pos[1])),
            min(hi[2], max(lo[2], pos[2])),
        )

    def _reference(self, pos: Sequence[float], quat: Sequence[float]) -> tuple[tuple[float, ...], Quat]:
        """Checks the reference; falls back to the last emitted target if it is unusable."""
        p = _floats(pos, 3, "reference_pos")
        q = quat_normalize(_floats(quat, 4, "reference_quat"))
        if _all_finite(p) and _all_finite(q):
            return p, q
        self.stats["non_finite"] += 1
        if self._last_target is None:
            raise PolicyError(
                f"reference pose is unusable (pos {list(p)}, quat {list(quat)}) and no earlier "
                "target exists to hold; pass a finite position and a non-zero quaternion"
            )
        log.warning("non-finite reference pose %s %s; holding the last target", p, list(quat))
        return self._last_target

    def _initial_gripper(self, rob_g: float) -> float:
        if not math.isfinite(rob_g):
            return GRIPPER_OPEN
        if self._binary:
            return GRIPPER_CLOSE if rob_g > 0.0 else GRIPPER_OPEN
        return min(1.0, max(-1.0, rob_g))

    def _non_finite(
        self, ref_pos: tuple[float, ...], ref_quat: Quat, timestamp: float, events: list[str], info: dict
    ) -> PolicyOutput:
        self.stats["non_finite"] += 1
        events.append(EVENT_NON_FINITE)
        log.warning("non-finite policy input or result; holding the reference pose")
        return self._hold(ref_pos, ref_quat, timestamp, events, info, HOLD_NON_FINITE)

    def _hold(
        self,
        ref_pos: tuple[float, ...],
        ref_quat: Quat,
        timestamp: float,
        events: list[str],
        info: dict,
        reason: str,
    ) -> PolicyOutput:
        """Target = (clamped) reference, zero action; the gripper keeps its last target."""
        if self._engaged:
            if EVENT_DISENGAGED not in events:
                events.append(EVENT_DISENGAGED)
            self._engaged = False
        self.stats["holds"] += 1
        info["hold_reason"] = reason
        pos = self._clamp(ref_pos)
        self._last_target = (pos, ref_quat)
        return PolicyOutput(
            action=np.zeros(7),
            target=FrankaAction(
                pos=np.array(pos),
                quat=np.array(ref_quat),
                gripper=float(self._hold_gripper),  # type: ignore[arg-type]
                reset=False,
                timestamp=timestamp,
            ),
            engaged=False,
            events=tuple(events),
            info=info,
        )


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _floats(v: Sequence[float], n: int, name: str) -> tuple[float, ...]:
    """(n,) sequence → tuple of floats; raises PolicyError on a wrong length or type."""
    if isinstance(v, np.ndarray) and v.ndim != 1:
        raise PolicyError(f"{name}: expected {n} numbers, got an array of shape {v.shape}")
    try:
        vals = v.tolist() if isinstance(v, np.ndarray) else [float(x) for x in v]
    except (TypeError, ValueError):
        raise PolicyError(f"{name}: expected {n} numbers, got {v!r}") from None
    if len(vals) != n:
        raise PolicyError(f"{name}: expected {n} numbers, got {len(vals)}")
    return tuple(vals)


def _all_finite(vals: Sequence[float]) -> bool:
    """True only if every value is finite (a NaN or ±inf poisons the sum).

    Conservative: values whose sum overflows (beyond ~1e308) also count as non-finite.
    """
    return math.isfinite(sum(vals))


def _is_rigid(pl: list[list[float]]) -> bool:
    """True if the 4×4 list has an orthonormal, right-handed rotation block and bottom row 0 0 0 1."""
    if abs(pl[3][0]) > VR_BOTTOM_ROW_TOL or abs(pl[3][1]) > VR_BOTTOM_ROW_TOL:
        return False
    if abs(pl[3][2]) > VR_BOTTOM_ROW_TOL or abs(pl[3][3] - 1.0) > VR_BOTTOM_ROW_TOL:
        return False
    a, b, c = pl[0][:3], pl[1][:3], pl[2][:3]
    tol = VR_RIGID_TOL
    for u, v, want in ((a, a, 1.0), (b, b, 1.0), (c, c, 1.0), (a, b, 0.0), (a, c, 0.0), (b, c, 0.0)):
        if abs(u[0] * v[0] + u[1] * v[1] + u[2] * v[2] - want) > tol:
            return False
    det = (
        a[0] * (b[1] * c[2] - b[2] * c[1])
        - a[1] * (b[0] * c[2] - b[2] * c[0])
        + a[2] * (b[0] * c[1] - b[1] * c[0])
    )
    return abs(det - 1.0) <= tol


def _inverse(pose: np.ndarray) -> np.ndarray:
    """DROID's ``np.linalg.inv(pose)``; identity if singular (cannot happen for a rigid pose)."""
    try:
        inv = np.linalg.inv(pose)
    except np.linalg.LinAlgError:
        return np.eye(4)
    return inv if np.isfinite(inv).all() else np.eye(4)
