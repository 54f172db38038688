"""`AssistBlender`: the control thread's use of the newest policy action, before the command gate.

Each control tick, given the VR policy's proposal (the operator's action and target):

* **Toggle.** A press of the configured button (a new VR sample with it down after one with it
  up) switches assist on or off.
* **Usable?** The policy action is used only when assist is on, the operator holds the deadman
  (the VR policy engages the arm), the service link is up, the newest action is fresh (at most
  ``max_age_periods`` control periods old), finite, and scored at least ``min_score``.
* **α.** Rises toward the weight (1 in drive mode) by at most ``ramp_per_tick`` per tick; falls
  to 0 at once when the policy is not usable. On the tick it falls to 0 while the operator
  engages, the proposal becomes a hold and the VR policy re-anchors its origin: the operator
  carries on from where the arm is, and the arm never jumps back to where the operator's hand
  alone would have put it.
* **Blend.** `oculus_server.assist.blend`: the six motion values are averaged with weight α, the
  result is turned into a target from the tick's reference pose exactly as the VR policy turns
  its own action (`action_space.action_to_target`). With α = 0 the proposal passes unchanged.
* **Gripper.** Never averaged: the operator's, unless ``gripper: policy`` hands it over (then the
  policy's while α > 0, the last target while the policy is briefly unusable, and the operator's
  again when assist is off or the deadman released).
* **Deadman.** A proposal that does not engage the arm is never changed: no policy action moves
  the arm while the grip is released (the gate holds the measured pose).

Every tick leaves a `BlendRecord` (`/assist/blend`). Used by the control thread only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable

import numpy as np

from oculus_server.assist.blend import (
    as_action,
    blend_motion,
    next_alpha,
    rebase_motion,
)
from oculus_server.assist.channel import AssistChannel
from oculus_server.assist.config import AssistConfig
from oculus_server.safety.gate import Proposal
from robot_formats.action_space import action_to_target
from robot_formats.recording.records import AssistAction, BlendRecord, Vector, VRSample

log = logging.getLogger(__name__)

SOURCE_ASSIST = "assist"
EVENT_PERSIST_TICKS = 5  # a blend state is announced (event) once it has lasted this many ticks
_ZERO7 = (0.0,) * 7

EventSink = Callable[[str, str], None]  # (message, state)


@dataclasses.dataclass(frozen=True)
class _Policy:
    """The policy's side of one tick: why (not) usable, and the action from the reference."""

    state: str
    action: AssistAction | None = None
    motion: tuple[float, ...] = ()  # (7,) re-expressed motion + gripper as received
    age_s: float = math.nan


class AssistBlender:
    """Blends the newest policy action into the operator's proposals (see the module docstring).

    Args:
        cfg: the resolved assist config (`oculus_server.assist.config.resolve`).
        channel: where the newest action and the link status are read, records written.
        control_hz: rate of `mix` calls, Hz.
        max_lin_delta, max_rot_delta: the VR policy's full-scale step (m, rad): the operator's
            action scale, in which the blend is made.
        events: called with (message, state) when assist changes state (debounced) or is
            switched; e.g. adds an ``assist`` event to the shared state.
        wall: wall clock for the records (`time.time`).
    """

    def __init__(
        self,
        cfg: AssistConfig,
        channel: AssistChannel,
        control_hz: float,
        max_lin_delta: float,
        max_rot_delta: float,
        events: EventSink | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.channel = channel
        self.max_age_s = cfg.max_age_s(control_hz)
        self.max_lin = float(max_lin_delta)
        self.max_rot = float(max_rot_delta)
        self.button = cfg.toggle_button or ""
        self.enabled = cfg.start_enabled
        self.alpha = 0.0
        self.failures = 0
        self._events = events or (lambda message, state: None)
        self._wall = wall
        self._last_seq: int | None = None
        self._button_down = False
        self._record: BlendRecord | None = None
        self._state = ""
        self._state_ticks = 0
        self._announced = ""
        self._gripper = math.nan  # the policy's last gripper target (handover)

    # -- public ----------------------------------------------------------------------------------
    def mix(
        self,
        proposal: Proposal,
        sample: VRSample | None,
        ref_pos: Vector,
        ref_quat: Vector,
        now: float,
    ) -> tuple[Proposal, bool]:
        """This tick's proposal with the policy blended in, and whether the VR policy must
        re-anchor its origin. Never raises: a failure here leaves the operator alone in charge."""
        previous = self.alpha
        try:
            return self._mix(proposal, sample, ref_pos, ref_quat, now)
        except Exception as exc:
            self.failures += 1
            self.alpha = 0.0
            if self.failures == 1 or self.failures % 1000 == 0:
                log.exception("assist blending failed (%d so far); operator only", self.failures)
                self._events(f"assist blending failed ({type(exc).__name__}: {exc}); operator only", "error")
            if previous > 0.0 and proposal.engaged:
                return _hold(proposal), True
            return proposal, False

    def commit(self, command_seq: int) -> None:
        """Finishes this tick's record with the seq of the command that left (-1: none)."""
        rec = self._record
        if rec is None:
            return
        self._record = None
        self.channel.add_blend(dataclasses.replace(rec, command_seq=command_seq))

    # -- one tick --------------------------------------------------------------------------------
    def _mix(
        self, proposal: Proposal, sample: VRSample | None, ref_pos: Vector, ref_quat: Vector, now: float,
    ) -> tuple[Proposal, bool]:
        self._toggle(sample)
        operator: tuple[float, ...] = as_action(proposal.action) or _ZERO7
        pol = self._policy(ref_pos, ref_quat, now)
        engaged = bool(proposal.engaged) and not proposal.reset
        usable = self.enabled and engaged and pol.state == "on"
        previous = self.alpha
        self.alpha = next_alpha(previous, self.cfg.alpha_target, usable, self.cfg.ramp_per_tick)
        state = "off" if not self.enabled else ("released" if not engaged else pol.state)
        reanchor = previous > 0.0 and self.alpha == 0.0 and engaged
        gripper_source = "operator"
        blended: tuple[float, ...]
        if reanchor:
            out = _hold(proposal)
            blended = _ZERO7
        elif self.alpha > 0.0:
            assert pol.motion
            motion = blend_motion(self.alpha, pol.motion, operator)
            target = action_to_target(ref_pos, ref_quat, motion, self.max_lin, self.max_rot)
            gripper = proposal.gripper
            if self.cfg.gripper == "policy":
                gripper, gripper_source = pol.motion[6], "policy"
                self._gripper = gripper
            blended = (*motion, operator[6])
            if target is None:  # cannot happen for finite inputs; never send what is not finite
                out, blended, reanchor = _hold(proposal), _ZERO7, True
                self.alpha = 0.0
            else:
                out = dataclasses.replace(proposal, source=SOURCE_ASSIST, pos=np.array(target.pos),
                                          quat=np.array(target.quat), gripper=gripper, action=np.array(blended))
        else:
            out = proposal
            blended = operator
        if self.cfg.gripper == "policy" and self.alpha == 0.0 and self.enabled and engaged:
            # handed over but briefly unusable: the last gripper target stands
            out = dataclasses.replace(out, gripper=math.nan)
            gripper_source = "keep"
        act = pol.action
        self._record = BlendRecord(
            t_mono=now,
            t_wall=self._wall(),
            state=state,
            alpha=self.alpha,
            alpha_target=self.cfg.alpha_target,
            engaged=engaged,
            operator=tuple(operator),
            policy=tuple(pol.motion),
            blended=tuple(float(v) for v in blended),
            action_seq=act.seq if act is not None else -1,
            age_s=pol.age_s,
            safety_score=float(act.safety_score) if act is not None else math.nan,
            gripper_source=gripper_source,
            reanchor=reanchor,
        )
        self._announce(state)
        return out, reanchor

    def _policy(self, ref_pos: Vector, ref_quat: Vector, now: float) -> _Policy:
        """Whether the newest action may be used now, and if so as motion from the reference."""
        status = self.channel.status()
        act = self.channel.action()
        age = (now - act.received_at) if act is not None else math.nan
        if status is None or not status.connected:
            return _Policy("no_link", act, (), age)
        if act is None:
            return _Policy("no_action", None, (), age)
        if not (age <= self.max_age_s):
            return _Policy("stale", act, (), age)
        a = as_action(act.action)
        if a is None:
            return _Policy("invalid", act, (), age)
        score = float(act.safety_score)
        if not (math.isfinite(score) and score >= self.cfg.min_score):
            return _Policy("low_score", act, (), age)
        seen = (act.seen_pos, act.seen_quat) if act.seen_pos is not None and act.seen_quat is not None else None
        seen_pos, seen_quat = seen if seen is not None else (ref_pos, ref_quat)
        motion = rebase_motion(a, seen_pos, seen_quat, ref_pos, ref_quat, self.max_lin, self.max_rot)
        if motion is None:
            return _Policy("invalid", act, (), age)
        return _Policy("on", act, (*motion, min(1.0, max(-1.0, a[6]))), age)

    def _toggle(self, sample: VRSample | None) -> None:
        if sample is None or sample.seq == self._last_seq or not self.button:
            return
        self._last_seq = sample.seq
        value = sample.buttons.get(self.button, False)
        down = value is True or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0.5)
        if down and not self._button_down:
            self.enabled = not self.enabled
            word = "on" if self.enabled else "off"
            log.info("assist switched %s (%s)", word, self.button)
            self._events(f"assist switched {word} ({self.button} pressed)", word)
            self._announced = "off" if not self.enabled else self._announced
        self._button_down = down

    def _announce(self, state: str) -> None:
        """An event when a new state has lasted `EVENT_PERSIST_TICKS` (blips stay quiet)."""
        if state != self._state:
            self._state, self._state_ticks = state, 0
        self._state_ticks += 1
        if self._state_ticks == EVENT_PERSIST_TICKS and state != self._announced and state != "off":
            previous, self._announced = self._announced, state
            if state == "on":
                self._events(f"assist on: the policy moves the arm (α → {self.cfg.alpha_target:g})", state)
            elif state != "released" or previous == "on":
                self._events(f"assist {state.replace('_', ' ')}: operator only", state)


def _hold(proposal: Proposal) -> Proposal:
    """The proposal turned into a hold (the gate holds the measured pose this tick)."""
    return dataclasses.replace(proposal, engaged=False, pos=None, quat=None, action=np.zeros(7))
