"""Plausibility of measured robot state: which states may serve as a reference for commands.

A state is *not believed* when its position or orientation is not finite, its quaternion is not
unit length (``quat_norm_tol``), its position lies farther than ``envelope_margin_m`` outside the
workspace box, or it moved farther than the arm can since the last believed state
(``max_state_speed_*`` × the interval, capped at ``max_state_gap_s``, plus one control period).

One disbelieved state makes the link *faulty*: the control path sends nothing (the arm keeps its
last target) and the operator is told. The fault ends only with a state that is itself sound and
lies within ``recover_tol_*`` of the last believed pose or of the last sent target (the arm,
which got no command meanwhile, is where it was), or with a new link epoch (after an outage the
arm may be anywhere, e.g. a restarted simulator: the first sound state is the new reference).
A jump that persists therefore keeps the arm held; it never becomes believable by waiting.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from oculus_server.safety.config import SafetyConfig
from oculus_server.safety.pose import as_floats, distance, finite
from robot_formats.recording.records import RobotObservation
from robot_formats.rotations import Quat, angle_between

log = logging.getLogger(__name__)

Pose = tuple[tuple[float, ...], Quat]


@dataclass(frozen=True)
class Verdict:
    """The judgement of one measured state.

    Attributes:
        believed: the state may be used as a reference.
        reason: why not ("" when believed).
        fault_started: this state began a fault (tell the operator).
        fault_ended: this state ended a fault.
    """

    believed: bool
    reason: str = ""
    fault_started: bool = False
    fault_ended: bool = False


class StateCheck:
    """Judges each new measured state; keeps the last believed one. Used by one thread only.

    Args:
        config: the safety limits.
        control_hz: the control rate (one period of slack in the jump bound), Hz.
    """

    def __init__(self, config: SafetyConfig, control_hz: float) -> None:
        self.config = config
        self.period_s = 1.0 / control_hz
        m = config.envelope_margin_m
        self._env_lo = tuple(v - m for v in config.workspace_min)
        self._env_hi = tuple(v + m for v in config.workspace_max)
        self._believed: RobotObservation | None = None
        self._believed_pose: Pose | None = None
        self._epoch: int | None = None
        self._fault = ""
        self.rejected = 0  # states not believed, total

    @property
    def faulty(self) -> bool:
        """True while the link is treated as faulty."""
        return bool(self._fault)

    @property
    def fault_reason(self) -> str:
        """Why the link is faulty ("" when it is not)."""
        return self._fault

    @property
    def believed(self) -> RobotObservation | None:
        """The last believed state (None before the first)."""
        return self._believed

    def judge(self, obs: RobotObservation, last_sent: Pose | None = None) -> Verdict:
        """Judges a *new* state (call once per state).

        Args:
            obs: the state, as received.
            last_sent: (pos, unit quat) of the last target that left, if any (recovery rule).
        """
        problem, pose = self._sound(obs)
        new_epoch = obs.link_epoch != self._epoch
        if problem is None and pose is not None:
            if new_epoch or self._believed_pose is None:
                problem = None
            elif self._fault:
                problem = self._recovery_problem(pose, last_sent)
            else:
                problem = self._jump_problem(obs, pose)
        if new_epoch:
            self._epoch = obs.link_epoch
        if problem is None:
            ended = bool(self._fault)
            self._fault = ""
            self._believed, self._believed_pose = obs, pose
            return Verdict(True, fault_ended=ended)
        self.rejected += 1
        started = not self._fault
        if new_epoch:
            # After an outage, compare later states with nothing from before it.
            self._believed, self._believed_pose = None, None
        if started:
            self._fault = problem
        return Verdict(False, problem, fault_started=started)

    # -- rules ---------------------------------------------------------------------------------

    def _sound(self, obs: RobotObservation) -> tuple[str | None, Pose | None]:
        """Checks one state on its own; returns (problem or None, (pos, unit quat))."""
        s = obs.state
        pos = as_floats(s.pos, 3)
        quat = as_floats(s.quat, 4)
        if pos is None or quat is None:
            return "position / quaternion of the wrong size", None
        if not (finite(pos) and finite(quat)):
            return f"non-finite pose: pos {list(pos)}, quat {list(quat)}", None
        n = math.sqrt(sum(q * q for q in quat))
        if abs(n - 1.0) > self.config.quat_norm_tol:
            return f"quaternion norm {n:.4g} (expected 1 ± {self.config.quat_norm_tol:g})", None
        try:
            g = float(s.gripper)
        except (TypeError, ValueError):
            g = math.nan
        if not math.isfinite(g):
            return f"non-finite gripper {s.gripper!r}", None
        lo, hi = self._env_lo, self._env_hi
        out = math.hypot(*(max(lo[i] - pos[i], 0.0, pos[i] - hi[i]) for i in range(3)))
        if out > 0.0:
            return (
                f"position ({pos[0]:.3f}, {pos[1]:.3f}, {pos[2]:.3f}) m is {out + self.config.envelope_margin_m:.3f} m "
                f"outside the workspace box (at most {self.config.envelope_margin_m:g} m is believed)"
            ), None
        return None, (pos, (quat[0] / n, quat[1] / n, quat[2] / n, quat[3] / n))

    def _jump_problem(self, obs: RobotObservation, pose: Pose) -> str | None:
        assert self._believed is not None and self._believed_pose is not None
        c = self.config
        dt = obs.t_recv - self._believed.t_recv
        dt = min(max(dt, 0.0), c.max_state_gap_s) + self.period_s
        moved = distance(pose[0], self._believed_pose[0])
        if moved > c.max_state_speed_m_s * dt:
            return (
                f"position jumped {moved:.3f} m within {dt:.3f} s "
                f"(an arm moves at most {c.max_state_speed_m_s * dt:.3f} m at {c.max_state_speed_m_s:g} m/s)"
            )
        turned = angle_between(pose[1], self._believed_pose[1])
        if turned > c.max_state_speed_rad_s * dt:
            return (
                f"orientation jumped {turned:.3f} rad within {dt:.3f} s "
                f"(an arm turns at most {c.max_state_speed_rad_s * dt:.3f} rad at {c.max_state_speed_rad_s:g} rad/s)"
            )
        return None

    def _recovery_problem(self, pose: Pose, last_sent: Pose | None) -> str | None:
        c = self.config
        for ref in (self._believed_pose, last_sent):
            if ref is None:
                continue
            if distance(pose[0], ref[0]) <= c.recover_tol_m and angle_between(pose[1], ref[1]) <= c.recover_tol_rad:
                return None
        return self._fault  # still where it should not be: the fault goes on
