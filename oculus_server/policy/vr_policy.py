"""`VRPolicy`: DROID's VR policy, stepped explicitly, turned into engage / hold decisions.

One `VRPolicy.step` per control period takes the newest `VRSample`, the robot's pose and a
*reference* pose, and returns DROID's 7-D velocity action and, when the arm is meant to move, the
Cartesian target (`robot_formats.action_space.action_to_target` from the reference). When the arm is not meant to
move the output says why (``hold_reason``) and carries no target: *what* a held arm is sent is
decided by the command gate (`oculus_server.safety.gate`), which owns holding, limits and
refusals. DROID's arithmetic itself is in `oculus_server.policy.droid`, the calibration in
`oculus_server.policy.calibration`.

DROID's behaviour kept here: movement only while the grip is held (deadman); every grip press
*and* release stores the origin (robot and VR pose at that instant).

Additions beyond DROID (safety and operator features):

* Reference: the daemon passes the reference pose and the `ControlMode`. In ``REAL_TIME`` the
  measured pose (``robot_pos``/``robot_quat``) drives the error term, as in DROID; in
  ``PREDICTIVE`` (measured state stale) the reference — the last commanded target — stands in for
  the robot pose everywhere, so a stale measurement cannot wind the target up.
* Link loss: no fresh, valid sample for ``link_timeout_s`` → disengage; movement resumes only
  after the grip is seen released and pressed again once the link is back.
* Pose jump: the controller moving more than ``pose_jump_m`` per source sample (the bound scales
  with the gap in ``VRSample.seq``) re-anchors the origin instead of moving the arm.
* Sample checks (`oculus_server.policy.sample`): an unusable sample holds for that step.
* Numerical safety: a non-finite value anywhere in the inputs, the action or the target gives a
  hold with zero action (counted); it is checked *before* clipping.
* Episode buttons: press edges are reported as events.

A `VRPolicy` is used from one thread (the control thread); it is not thread-safe.
Frames and units: positions metres, angles radians, quaternions xyzw; robot poses are the hand
TCP in the robot base frame; VR poses are head_T_controller in the headset app's frame.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from frankateach.constants import GRIPPER_CLOSE, GRIPPER_OPEN
from frankateach.messages import FrankaAction
from oculus_server.errors import OculusServerError
from oculus_server.policy.calibration import ForwardCalibration
from oculus_server.policy.config import PolicyConfig
from oculus_server.policy.droid import (
    all_finite,
    droid_action,
    vr_state,
)
from oculus_server.policy.sample import ParsedSample, SampleKeys, parse_sample
from robot_formats.action_space import action_to_target
from robot_formats.recording.records import ControlMode, Vector, VRSample
from robot_formats.rotations import Quat, quat_normalize

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
EVENT_NON_FINITE = "non_finite"  # a non-finite input/action/target: held instead
EVENT_INVALID_SAMPLE = "invalid_sample"  # the sample lacked / had a bad pose or trigger

# Why a step held the arm (`PolicyOutput.info["hold_reason"]`; "" when the arm moves).
HOLD_NO_SAMPLE = "no_sample"
HOLD_LINK_LOST = "link_lost"
HOLD_INVALID_SAMPLE = "invalid_sample"
HOLD_DEADMAN = "deadman"
HOLD_REGRIP = "regrip_required"
HOLD_NON_FINITE = "non_finite"


class PolicyError(OculusServerError):
    """The policy got inputs of the wrong shape."""


@dataclass(frozen=True)
class PolicyOutput:
    """One policy step's result.

    Attributes:
        action: (7,) DROID velocity action in [−1, 1]: linear xyz, rotation (Euler xyz), gripper.
            All zeros whenever the arm holds.
        target: with `engaged`, the pose to move to (base frame, metres, unit xyzw, finite; not
            yet clamped or step-limited: the command gate does that), gripper as below, reset
            False. None when the arm holds: the gate chooses the held pose.
        gripper: the gripper target, ±1 (binary) or −1..+1 (continuous); while holding, the last
            one (at first the measured gripper).
        engaged: this step moves the arm (deadman held, link OK, regrip done, finite result).
        events: what happened this step (``EVENT_*`` names), in order.
        info: details for recording and the dashboard (see `VRPolicy.step`).
    """

    action: np.ndarray
    target: FrankaAction | None
    gripper: float
    engaged: bool
    events: tuple[str, ...]
    info: dict[str, Any]


class VRPolicy:
    """DROID's VR policy, stepped explicitly (no threads, no clock of its own).

    Forward calibration: see `oculus_server.policy.calibration`. Any change of calibration while
    the arm is engaged re-anchors the origin (DROID would jump).
    """

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config if config is not None else PolicyConfig()
        c = self.config
        self._keys = SampleKeys(
            c.side, c.grip_button, c.joystick_button, c.trigger_name, c.episode_button_name, c.success_button_name
        )
        self._binary = c.gripper_mode == "binary"
        self._calib = ForwardCalibration(c)
        self.stats: dict[str, int] = {}
        self.reset_state()

    # -- public API ----------------------------------------------------------------------------

    def reset_state(self) -> None:
        """Forgets everything: calibration re-armed, origin unset, link as never seen, counters zeroed."""
        self._calib.reset()
        self._prev_grip = False
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
        return self._calib.vr_to_global.copy()

    @property
    def calibration_armed(self) -> bool:
        """True while the DROID-style calibration tracks the controller pose."""
        return self._calib.armed

    def observe(self, sample: VRSample | None, *, now: float) -> tuple[str, ...]:
        """A step without a robot state (none received yet): tracks the link and the buttons
        (episode, success, deadman, calibration edges) so that no press is lost while the robot
        has not answered; returns the events. Nothing is commanded.

        Args:
            sample: newest VR sample (the same one may be passed again), or None if none yet.
            now: monotonic time of this step, seconds.
        """
        events: list[str] = []
        parsed, link_ok, _ = self._link(sample, now, events)
        if link_ok and parsed is not None:
            self._process_buttons(parsed.pose, parsed.raw_pos, parsed.grip, parsed.joystick, parsed.episode,
                                  parsed.success, events)
        return tuple(events)

    def step(
        self,
        sample: VRSample | None,
        *,
        robot_pos: Vector,
        robot_quat: Vector,
        robot_gripper: float,
        reference_pos: Vector,
        reference_quat: Vector,
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
            now: monotonic time of this step, seconds (compared with ``sample.t_recv``).
            timestamp: copied into the target's ``timestamp``.

        Returns:
            The action, target (engaged only), gripper, engagement, events and an ``info`` dict
            with keys ``hold_reason`` ("" or ``HOLD_*``), ``link_ok``, ``sample_age_s``,
            ``vr_pos``, ``vr_quat``, ``vr_gripper`` (None when no valid sample),
            ``movement_enabled``, ``regrip_required``, ``calibration_armed``,
            ``calibration_method``, ``calibrating``, ``mode``, ``vr_origin_pos``,
            ``robot_origin_pos``.

        Raises:
            PolicyError: an input has the wrong length.
        """
        st = self.stats
        st["steps"] += 1
        events: list[str] = []
        ref_pos = _floats(reference_pos, 3, "reference_pos")
        ref_quat = quat_normalize(_floats(reference_quat, 4, "reference_quat"))
        rob_g = float(robot_gripper)
        if self._hold_gripper is None:
            self._hold_gripper = self._initial_gripper(rob_g)
        if mode is ControlMode.PREDICTIVE:
            rob_pos, rob_quat = ref_pos, ref_quat
        else:
            rob_pos = _floats(robot_pos, 3, "robot_pos")
            rob_quat = quat_normalize(_floats(robot_quat, 4, "robot_quat"))

        parsed, link_ok, age = self._link(sample, now, events)

        info = {
            "hold_reason": "",
            "link_ok": link_ok,
            "sample_age_s": age,
            "vr_pos": None,
            "vr_quat": None,
            "vr_gripper": None,
            "movement_enabled": self._movement,
            "regrip_required": self._need_regrip,
            "calibration_armed": self._calib.armed,
            "calibration_method": self._calib.method,
            "calibrating": self._calib.capturing,
            "mode": mode.value,
            "vr_origin_pos": None if self._vr_origin is None else self._vr_origin[0],
            "robot_origin_pos": None if self._robot_origin is None else self._robot_origin[0],
        }
        if not link_ok:
            reason = HOLD_LINK_LOST if self._last_good_t is not None else HOLD_NO_SAMPLE
            return self._hold(events, info, reason)
        if parsed is None or sample is None:
            return self._hold(events, info, HOLD_INVALID_SAMPLE)

        self._process_buttons(parsed.pose, parsed.raw_pos, parsed.grip, parsed.joystick, parsed.episode,
                              parsed.success, events)
        self._check_jump(parsed.raw_pos, sample.seq, events)

        # -- VR state (DROID _process_reading) ---------------------------------------------------
        trig = parsed.trigger
        vr_pos, vr_quat = vr_state(self._calib.gv, parsed.pose, self.config.spatial_coeff)
        info["vr_pos"] = vr_pos
        info["vr_quat"] = vr_quat
        info["vr_gripper"] = trig
        info["movement_enabled"] = self._movement
        info["regrip_required"] = self._need_regrip
        info["calibration_armed"] = self._calib.armed
        info["calibration_method"] = self._calib.method
        info["calibrating"] = self._calib.capturing

        inputs_finite = all_finite(vr_pos) and all_finite(vr_quat) and all_finite(rob_pos)
        inputs_finite = inputs_finite and all_finite(rob_quat) and math.isfinite(rob_g)
        inputs_finite = inputs_finite and all_finite(ref_pos) and all_finite(ref_quat)
        if self._origin_pending and inputs_finite:
            self._robot_origin = (rob_pos, rob_quat)
            self._vr_origin = (vr_pos, vr_quat)
            self._origin_pending = False
            st["origin_resets"] += 1
            events.append(EVENT_ORIGIN_RESET)
            info["vr_origin_pos"] = vr_pos
            info["robot_origin_pos"] = rob_pos

        if not self._movement:
            reason = HOLD_REGRIP if self._need_regrip and parsed.grip else HOLD_DEADMAN
            return self._hold(events, info, reason)
        if not inputs_finite or self._origin_pending:
            return self._non_finite(events, info)

        assert self._robot_origin is not None and self._vr_origin is not None
        action = droid_action(self.config, vr_pos, vr_quat, trig, rob_pos, rob_quat, rob_g,
                              self._robot_origin, self._vr_origin)
        target = None
        if action is not None:
            target = action_to_target(ref_pos, ref_quat, action, self.config.max_lin_delta, self.config.max_rot_delta)
        if action is None or target is None:
            return self._non_finite(events, info)
        t_pos, t_quat = target.pos, target.quat
        if self._binary:
            gripper = GRIPPER_CLOSE if trig > self.config.trigger_threshold else GRIPPER_OPEN
        else:
            gripper = min(1.0, max(-1.0, 2.0 * trig - 1.0))
        self._hold_gripper = gripper
        if not self._engaged:
            events.append(EVENT_ENGAGED)
        self._engaged = True
        st["engaged_steps"] += 1
        return PolicyOutput(
            action=np.array(action),
            target=FrankaAction(
                pos=np.array(t_pos), quat=np.array(t_quat), gripper=gripper, reset=False, timestamp=timestamp
            ),
            gripper=gripper,
            engaged=True,
            events=tuple(events),
            info=info,
        )

    # -- step pieces ---------------------------------------------------------------------------

    def _link(self, sample: VRSample | None, now: float, events: list[str]) -> tuple[ParsedSample | None, bool, float]:
        """Parses a fresh sample and tracks the link: (parsed sample or None, link ok, sample age s)."""
        st = self.stats
        age = math.nan
        parsed: ParsedSample | None = None
        if sample is not None:
            age = now - sample.t_recv
            if age <= self.config.link_timeout_s:
                parsed = parse_sample(sample, self._keys)
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
            self._calib.cancel_capture()
            log.warning("VR link lost: no valid sample for %.2f s; holding", self.config.link_timeout_s)
        elif link_ok and not self._link_ok and self._need_regrip:
            events.append(EVENT_LINK_RESTORED)
            log.info("VR link restored; release and press the grip to move again")
        self._link_ok = link_ok
        return parsed, link_ok, age

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
        update = self._calib.update(pose, raw_pos, grip, joy)
        if update.froze:
            self.stats["calibrations"] += 1
            events.append(EVENT_CALIBRATED)
        if update.changed and self._movement:
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

    def _initial_gripper(self, rob_g: float) -> float:
        if not math.isfinite(rob_g):
            return GRIPPER_OPEN
        if self._binary:
            return GRIPPER_CLOSE if rob_g > 0.0 else GRIPPER_OPEN
        return min(1.0, max(-1.0, rob_g))

    def _non_finite(self, events: list[str], info: dict) -> PolicyOutput:
        self.stats["non_finite"] += 1
        events.append(EVENT_NON_FINITE)
        log.warning("non-finite policy input or result; holding")
        return self._hold(events, info, HOLD_NON_FINITE)

    def _hold(self, events: list[str], info: dict, reason: str) -> PolicyOutput:
        """No target, zero action; the gripper keeps its last target."""
        if self._engaged:
            if EVENT_DISENGAGED not in events:
                events.append(EVENT_DISENGAGED)
            self._engaged = False
        self.stats["holds"] += 1
        info["hold_reason"] = reason
        assert self._hold_gripper is not None
        return PolicyOutput(
            action=np.zeros(7),
            target=None,
            gripper=float(self._hold_gripper),
            engaged=False,
            events=tuple(events),
            info=info,
        )


def _floats(v: Vector, n: int, name: str) -> tuple[float, ...]:
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
