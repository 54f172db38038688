"""Control thread (20 Hz, 40 Hz with --performance): VR sample + robot state → gated command.

Each tick, in this order:

1. **Robot view.** A new measured state is judged (`safety.plausibility.StateCheck`); the robot is
   *OK* while the link is up, the newest state is believed and no older than ``hold_after_s``.
   Mode: REAL-TIME while the believed state is at most `PREDICTIVE_AFTER_PERIODS` control periods
   old, else PREDICTIVE (the last target that left stands in as the reference).
2. **Policy.** `VRPolicy.step` says whether the operator engages the arm and, if so, the target.
   With assist on, `AssistBlender.mix` blends the VLA policy's newest action into the proposal
   (never while the deadman is released); the result still goes through the gate.
3. **Gate.** `CommandGate.admit` decides what leaves — the one owner of holding, limits and
   refusals, re-anchoring included (it tells the policy to re-anchor its origin after an outage
   or a refusal). The `GatedCommand` it makes goes on the command queue (freshest wins); while
   the robot is OK every tick queues one, holding ones included, so what the robot thread sends
   is never older than one control period.

Time comes from an injected `Clock` (`frankateach.timing`): tests step the thread on virtual time.
"""

from __future__ import annotations

import logging
import math
import queue
import time
from collections.abc import Callable

from frankateach.timing import MONOTONIC, Clock
from oculus_server.assist.blender import AssistBlender
from oculus_server.constants import CONTROL_FREQ, PREDICTIVE_AFTER_PERIODS
from oculus_server.policy import VRPolicy
from oculus_server.safety import kinds
from oculus_server.safety.config import SafetyConfig
from oculus_server.safety.gate import SOURCE_POLICY, CommandGate, Proposal, RobotView
from oculus_server.safety.plausibility import StateCheck, Verdict
from oculus_server.state import (
    CommandChannel,
    Counters,
    EpisodeChannel,
    EventLog,
    RateBoard,
    RobotChannel,
    SafetyChannel,
    SafetyStatus,
    VRChannel,
)
from oculus_server.threads.base import RateThread, Supervisor
from oculus_server.threads.overrun import OverrunReporter
from oculus_server.threads.queues import put_freshest
from robot_formats.recording.records import ControlMode, RobotObservation, SafetyRecord, Vector

log = logging.getLogger(__name__)

KEEP_ANCHOR_M = 0.03  # a played source keeps its origin when the arm is back within this of where it was, m
_POLICY_EVENTS = ("link_lost", "link_restored", "calibrated", "pose_jump", "non_finite", "engaged", "disengaged")


class ControlThread(RateThread):
    """Owns the policy, the state check and the command gate: only this thread uses them.

    Args:
        policy: the VR policy.
        commands: the command queue (`GatedCommand`s to the robot thread).
        supervisor: the daemon's.
        vr: the newest VR sample (read).
        robot: the newest measured state and the link (read).
        command_out: where the newest command and the mode go.
        counters, interventions, events, episode, rates: the daemon's counters, safety log,
            events, episode requests (the episode buttons), rates.
        hz: control rate, Hz.
        hold_after_s: no believed state for this long → the robot is not OK: nothing is sent.
        safety: the gate's and the state check's limits.
        clock: monotonic clock (virtual in tests).
        wall: wall clock for timestamps (`time.time`).
        realtime_priority: SCHED_FIFO priority (0: normal scheduling).
        assist: blends the VLA policy's newest action into the operator's proposal before the
            gate (`oculus_server.assist.blender`); None: assist off, the path is unchanged.
        overruns: reports ticks that start more than a period late (None: not reported).
        reanchor_on_restore: after an outage, a state fault or a robot restart the gate holds the
            measured pose once; True re-anchors the VR policy's origin there (a person's source).
            False (a played source, `VRSource.keeps_anchor`) keeps the origin when the arm is back
            within `KEEP_ANCHOR_M` of its last measured pose or last target (a hiccup: the arm then
            resumes the played motion) and re-anchors only when it is elsewhere (a restarted robot).
    """

    def __init__(
        self,
        policy: VRPolicy,
        commands: queue.Queue,
        supervisor: Supervisor,
        *,
        vr: VRChannel,
        robot: RobotChannel,
        command_out: CommandChannel,
        counters: Counters,
        interventions: SafetyChannel,
        events: EventLog,
        episode: EpisodeChannel,
        rates: RateBoard,
        hz: float = CONTROL_FREQ,
        hold_after_s: float = 0.5,
        safety: SafetyConfig | None = None,
        clock: Clock = MONOTONIC,
        wall: Callable[[], float] = time.time,
        realtime_priority: int = 0,
        assist: AssistBlender | None = None,
        overruns: OverrunReporter | None = None,
        reanchor_on_restore: bool = True,
    ) -> None:
        super().__init__("control", hz, supervisor, rates, clock=clock, realtime_priority=realtime_priority,
                         overruns=overruns)
        self.vr, self.robot, self.command_out, self.counters = vr, robot, command_out, counters
        self.interventions, self.events, self.episode = interventions, events, episode
        self.assist = assist  # VLA assist: blends the newest policy action in before the gate
        self.reanchor_on_restore = reanchor_on_restore
        self._last_seen: tuple[Vector, Vector] | None = None  # measured pose, target of the last command
        self.policy = policy
        self.commands = commands
        self.period = 1.0 / hz
        self.hold_after_s = hold_after_s
        self.clock = clock
        self.wall = wall
        cfg = safety if safety is not None else SafetyConfig()
        self.gate = CommandGate(cfg, hz, wall=wall)
        self.check = StateCheck(cfg, hz)
        self._judged: RobotObservation | None = None  # the newest state already judged
        self._status = SafetyStatus()

    # -- one tick --------------------------------------------------------------------------------

    def step(self) -> None:
        now = self.clock.now()
        view = self._robot_view(now)
        self.command_out.set_mode(view.mode)
        obs = view.obs
        sample = self.vr.sample()
        if obs is None:  # nothing to anchor a target to yet; the buttons still count (A, B)
            for ev in self.policy.observe(sample, now=now):
                self._on_policy_event(ev)
            self._publish_status(view.why, False)
            return

        last = self.gate.last_sent
        ref_pos: Vector = obs.state.pos
        ref_quat: Vector = obs.state.quat
        if view.mode is ControlMode.PREDICTIVE and last is not None:
            ref_pos, ref_quat = last
        out = self.policy.step(
            sample,
            robot_pos=obs.state.pos,
            robot_quat=obs.state.quat,
            robot_gripper=obs.state.gripper,
            reference_pos=ref_pos,
            reference_quat=ref_quat,
            mode=view.mode,
            now=now,
            timestamp=self.wall(),
        )
        for ev in out.events:
            self._on_policy_event(ev)
        target = out.target
        proposal = Proposal(
            source=SOURCE_POLICY,
            engaged=out.engaged,
            pos=None if target is None else target.pos,
            quat=None if target is None else target.quat,
            gripper=out.gripper,
            action=out.action,
            vr_seq=sample.seq if sample is not None else -1,
            vr_t_recv=sample.t_recv if sample is not None else float("nan"),
        )
        if self.assist is not None:
            proposal, reanchor = self.assist.mix(proposal, sample, ref_pos, ref_quat, now)
            if reanchor:
                self.policy.reset_origin()
        result = self.gate.admit(proposal, view, now)
        if self.assist is not None:
            self.assist.commit(result.command.command.seq if result.command is not None else -1)
        if result.reanchor and self._should_reanchor(obs.state.pos):
            self.policy.reset_origin()
        if result.records:
            self._publish_records(result.records)
        gated = result.command
        if gated is not None:
            self._last_seen = (obs.state.pos, gated.command.target.pos)
            self.command_out.set_command(gated.command)
            dropped = put_freshest(self.commands, gated)
            if dropped:
                self.counters.count("commands_dropped", dropped)
        why = result.why_held if result.held else ""
        if not why and out.info.get("hold_reason"):
            why = str(out.info["hold_reason"])
        self._publish_status(why, gated is not None)
        self.counters.set_queue_depth("command", self.commands.qsize())

    # -- pieces ----------------------------------------------------------------------------------

    def _should_reanchor(self, measured: Vector) -> bool:
        """Whether the gate's hold re-anchors the VR policy (see `reanchor_on_restore`)."""
        if self.reanchor_on_restore or self._last_seen is None:
            return True
        return min(math.dist(measured, p) for p in self._last_seen) > KEEP_ANCHOR_M

    def _robot_view(self, now: float) -> RobotView:
        """Judges a new state and says whether the robot may be commanded now."""
        obs = self.robot.observation()
        link = self.robot.link()
        if obs is not None and obs is not self._judged:
            self._judged = obs
            self._on_verdict(self.check.judge(obs, self.gate.last_sent), obs)
        believed = self.check.believed
        if believed is None:
            why = self.check.fault_reason or (
                "robot state not yet received" if obs is None else "no believed robot state"
            )
            return RobotView(False, None, ControlMode.PREDICTIVE, 0, why)
        age = now - believed.t_recv
        mode = ControlMode.REAL_TIME if age <= PREDICTIVE_AFTER_PERIODS * self.period else ControlMode.PREDICTIVE
        if self.check.faulty:
            why = f"robot state not believed: {self.check.fault_reason}"
        elif not link.up:
            why = f"robot link down: {link.last_error}" if link.last_error else "robot link down"
        elif age > self.hold_after_s:
            why = f"no robot state for {age:.2f} s"
        else:
            why = ""
        return RobotView(not why, believed, mode, believed.link_epoch, why)

    def _on_verdict(self, verdict: Verdict, obs: RobotObservation) -> None:
        if verdict.fault_started:
            msg = f"robot state not believed: {verdict.reason}; the arm holds (nothing is sent)"
            log.warning(msg)
            self.events.add("safety_warning", msg, reason=verdict.reason)
            pos = tuple(float(v) for v in obs.state.pos) if len(obs.state.pos) == 3 else ()
            self._publish_records([SafetyRecord(kinds.IMPLAUSIBLE_STATE, verdict.reason, self.wall(), -1, "robot_state",
                                                pos if all(math.isfinite(v) for v in pos) else ())])
        elif verdict.fault_ended:
            msg = "robot state believed again; the arm holds its measured pose until the operator moves it"
            log.info(msg)
            self.events.add("safety", msg)
            self._publish_records([SafetyRecord(kinds.STATE_PLAUSIBLE, msg, self.wall(), -1, "robot_state")])

    def _publish_records(self, records: tuple[SafetyRecord, ...] | list[SafetyRecord]) -> None:
        self.interventions.add(records)
        for r in records:
            if r.kind in (kinds.OUTSIDE_BOX, kinds.REFUSED_NONFINITE, kinds.REFUSED_QUAT):
                log.warning("safety: %s", r.message)
                self.events.add("safety_warning", r.message, intervention=r.kind)

    def _publish_status(self, held: str, sending: bool) -> None:
        status = SafetyStatus(held=held, fault=self.check.fault_reason, sending=sending)
        if status != self._status:
            self._status = status
            self.interventions.set_status(status)

    def _on_policy_event(self, event: str) -> None:
        if event == "episode_toggle":
            self.episode.request("toggle")
        elif event == "success":
            self.episode.request("success")
        elif event in _POLICY_EVENTS:
            self.events.add("control", event)
