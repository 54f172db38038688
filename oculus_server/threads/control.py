"""Control thread (20 Hz, 40 Hz with --performance): VR sample + robot state -> `RobotCommand`.

Reference pose: the measured hand pose while it is fresh (no older than
`PREDICTIVE_AFTER_PERIODS` control periods: REAL-TIME), else the last commanded target
(PREDICTIVE). If no measured state has arrived for `hold_after_s` (robot link down), the arm is
held: no movement command is sent, and the policy origin is re-anchored when fresh state returns,
so the arm never lunges to catch up with the operator's hand. While the link is up every tick
queues a command — with the deadman released its target is the held pose — so the robot thread
always has one that is at most a control period old.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import replace

import numpy as np

from frankateach.constants import CONTROL_FREQ, PREDICTIVE_AFTER_PERIODS
from frankateach.messages import FrankaAction
from oculus_server.command import ControlMode, RobotCommand
from oculus_server.policy import VRPolicy
from oculus_server.state import SharedState
from oculus_server.threads.base import RateThread, Supervisor
from oculus_server.threads.queues import put_freshest, take_newest

log = logging.getLogger(__name__)


class ControlThread(RateThread):
    """Owns the policy: only this thread calls `VRPolicy.step`."""

    def __init__(
        self,
        policy: VRPolicy,
        commands: queue.Queue,
        responses: queue.Queue,
        supervisor: Supervisor,
        state: SharedState,
        hz: float = CONTROL_FREQ,
        hold_after_s: float = 0.5,
        realtime_priority: int = 0,
    ) -> None:
        super().__init__("control", hz, supervisor, state, realtime_priority=realtime_priority)
        self.policy = policy
        self.commands = commands
        self.responses = responses
        self.period = 1.0 / hz
        self.hold_after_s = hold_after_s
        self.seq = 0
        self._last_target: FrankaAction | None = None  # last target handed to the robot thread
        self._was_holding = True

    def step(self) -> None:
        now = time.monotonic()
        take_newest(self.responses, 0.0)  # the robot thread signals fresh state; keep it drained
        self.state.set_queue_depth("response", self.responses.qsize())
        obs = self.state.robot()
        if obs is None:
            self.state.set_mode(ControlMode.PREDICTIVE)
            return  # nothing to anchor a target to yet
        age = now - obs.t_recv
        fresh = age <= PREDICTIVE_AFTER_PERIODS * self.period
        mode = ControlMode.REAL_TIME if fresh or self._last_target is None else ControlMode.PREDICTIVE
        if mode is ControlMode.REAL_TIME:
            ref_pos, ref_quat = obs.state.pos, obs.state.quat
        else:
            ref_pos, ref_quat = self._last_target.pos, self._last_target.quat
        link_ok = age <= self.hold_after_s
        if link_ok and self._was_holding:
            self.policy.reset_origin()
        self._was_holding = not link_ok

        sample = self.state.vr()
        out = self.policy.step(
            sample,
            robot_pos=obs.state.pos,
            robot_quat=obs.state.quat,
            robot_gripper=obs.state.gripper,
            reference_pos=ref_pos,
            reference_quat=ref_quat,
            mode=mode,
            now=now,
            timestamp=time.time(),
        )
        for ev in out.events:
            self._on_policy_event(ev)
        engaged = bool(out.engaged and link_ok)
        target = out.target
        finite = np.isfinite(target.pos).all() and np.isfinite(target.quat).all()
        if not finite:
            self.state.count("nonfinite_held")
            engaged = False
        if not engaged:
            # Hold: keep the last target (or the measured pose); only the gripper may change.
            hold = self._last_target or FrankaAction(
                obs.state.pos, obs.state.quat, float(obs.state.gripper), False, time.time()
            )
            gripper = float(target.gripper) if finite and link_ok else hold.gripper
            target = replace(hold, gripper=gripper, timestamp=time.time())
        cmd = RobotCommand(
            seq=self.seq,
            created=time.monotonic(),
            action=np.asarray(out.action, dtype=float) if engaged else np.zeros(7),
            target=target,
            mode=mode,
            engaged=engaged,
            vr_seq=sample.seq if sample is not None else -1,
            vr_t_recv=sample.t_recv if sample is not None else float("nan"),
        )
        self.seq += 1
        self.state.set_command(cmd)
        if link_ok:
            # Every tick hands the robot thread a fresh command, holding ones included (their
            # target is the held pose), so what it sends is never older than one control period.
            dropped = put_freshest(self.commands, cmd)
            if dropped:
                self.state.count("commands_dropped", dropped)
            self._last_target = target
        self.state.set_queue_depth("command", self.commands.qsize())

    def _on_policy_event(self, event: str) -> None:
        if event == "episode_toggle":
            self.state.request_episode("toggle")
        elif event == "success":
            self.state.request_episode("success")
        elif event in ("link_lost", "link_restored", "calibrated", "pose_jump", "non_finite", "engaged", "disengaged"):
            self.state.add_event("control", event)
