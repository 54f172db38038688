"""The command gate: the last stage before the command queue, and the one owner of holding.

Every command, whatever proposed it (the VR policy, a hold, a reset, later an assist policy),
passes `CommandGate.admit`, and only the gate can make a `GatedCommand` — the only thing the
robot thread accepts. For each proposal the gate decides:

* **Whether anything leaves.** Nothing does while the robot view is not OK (link down, measured
  state stale or not believed): the arm keeps its last target on its own. Nothing does either
  when the first command after a fresh start would have to move the arm into the workspace box
  by more than one step (``outside_box``: the arm was left outside it).
* **Hold or move.** The arm holds when the proposal does not engage it, when the proposal is not
  finite or has a zero quaternion (refused, counted), and for the first command after an
  outage, a state fault or a start (it holds the freshly measured pose; the policy is told to
  re-anchor its origin). A hold target is the *measured* pose, never an extrapolation: while the
  arm comes to rest (``hold_settle_s``) it follows the measured pose, then it is latched, so a
  steady-state error of the arm's controller cannot make the held target creep.
* **Limits.** The position is clamped into the workspace box; the step from the previous target
  that left (or, with none since the last outage, from the measured pose) is limited to
  `SafetyConfig.step_limits` in position and in rotation (slerp). The gripper is kept in [-1, 1].

Every change is returned as a `SafetyRecord` (for the dashboard and the `/safety` topic) and its
kind is listed in the command's `interventions`. Used by the control thread only; not
thread-safe.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from frankateach.messages import FrankaAction
from oculus_server.errors import SafetyError
from oculus_server.safety import kinds
from oculus_server.safety.config import SafetyConfig
from oculus_server.safety.pose import (
    Vec3,
    as_floats,
    clamp_box,
    distance,
    finite,
    step_toward,
)
from robot_formats.recording.records import (
    ControlMode,
    RobotCommand,
    RobotObservation,
    SafetyRecord,
    Vector,
)
from robot_formats.rotations import Quat, angle_between, turn_toward

Pose = tuple[Vec3, Quat]
_BOX_TOL_M = 1e-9  # float slack when checking "inside the box"
_SEAL = object()  # only this module holds it: a GatedCommand cannot be made elsewhere

SOURCE_POLICY = "policy"
SOURCE_HOLD = "hold"
SOURCE_RESET = "reset"


@dataclass(frozen=True)
class Proposal:
    """What a command source asks for; the gate decides what leaves.

    Attributes:
        source: who proposes ("policy", "hold", "reset", "assist", ...).
        engaged: the source wants the arm to move to `pos`/`quat`.
        pos: (3,) target position, metres, base frame (None with engaged False).
        quat: (4,) target orientation, xyzw (None with engaged False).
        gripper: gripper target, -1 open … +1 closed (NaN: keep the last one).
        action: (7,) velocity action behind the proposal, recorded with the command.
        reset: ask the robot to go to its home pose (pose fields are filled with the measured
            pose; the gate re-anchors everything afterwards).
        vr_seq: seq of the VR sample behind it (-1 if none).
        vr_t_recv: that sample's receive time, monotonic seconds (NaN if none).
    """

    source: str
    engaged: bool
    pos: Vector | None = None
    quat: Vector | None = None
    gripper: float = math.nan
    action: Vector | None = None
    reset: bool = False
    vr_seq: int = -1
    vr_t_recv: float = math.nan


@dataclass(frozen=True)
class RobotView:
    """What the control path knows about the robot this tick.

    Attributes:
        ok: the link is up, the newest state is believed and no older than the hold limit.
        obs: the newest believed state (None before the first).
        mode: REAL_TIME (state fresh) or PREDICTIVE.
        epoch: link epoch of `obs` (changes after every outage).
        why: why not OK ("" when OK), for the dashboard.
    """

    ok: bool
    obs: RobotObservation | None
    mode: ControlMode = ControlMode.PREDICTIVE
    epoch: int = 0
    why: str = ""


@dataclass(frozen=True)
class GatedCommand:
    """A command that passed the gate: the only item the robot thread sends.

    Attributes:
        command: the command (its target pose arrays are read-only).
        link_epoch: the link epoch it was made for; the robot thread drops it if the link
            was re-established since.
        max_step_m, max_step_rad: the step limits it was checked against (per command).
    """

    command: RobotCommand
    link_epoch: int
    max_step_m: float
    max_step_rad: float
    seal: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.seal is not _SEAL:
            raise SafetyError("a GatedCommand can only be made by CommandGate.admit")


@dataclass(frozen=True)
class GateResult:
    """The gate's answer to one proposal.

    Attributes:
        command: what leaves (None: nothing is sent this tick).
        records: what the gate clamped, limited, refused or held, and why.
        reanchor: the policy must re-anchor its origin (its reference moved under it).
        held: the command (if any) holds instead of moving the arm.
        why_held: short reason of a hold or of nothing leaving ("" when the arm moves).
    """

    command: GatedCommand | None
    records: tuple[SafetyRecord, ...] = ()
    reanchor: bool = False
    held: bool = True
    why_held: str = ""


def check_gated(item: object, workspace_min: Sequence[float], workspace_max: Sequence[float]) -> GatedCommand:
    """The robot thread's last look at a queue item before it goes on the wire.

    Raises:
        SafetyError: `item` is not a `GatedCommand`, or its target is not finite or lies outside
            the box (cannot happen for a command the gate made: this is a programming error).
    """
    if not isinstance(item, GatedCommand) or item.seal is not _SEAL:
        raise SafetyError(
            f"the robot thread got a {type(item).__name__} that did not pass the command gate; "
            "every command must come from CommandGate.admit"
        )
    t = item.command.target
    pos, quat = as_floats(t.pos, 3), as_floats(t.quat, 4)
    if pos is None or quat is None or not (finite(pos) and finite(quat) and math.isfinite(t.gripper)):
        raise SafetyError(f"gated command {item.command.seq} has a non-finite target: {t}")
    if not _inside(pos, workspace_min, workspace_max):
        raise SafetyError(f"gated command {item.command.seq} lies outside the workspace box: {list(pos)}")
    return item


class CommandGate:
    """Clamps, limits, refuses and holds; makes every `GatedCommand`.

    Args:
        config: the safety limits.
        control_hz: rate of `admit` calls (the step limits are per call), Hz.
        wall: wall clock for the records and the target timestamp (`time.time`).
    """

    def __init__(self, config: SafetyConfig, control_hz: float, wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.step_m, self.step_rad = config.step_limits(control_hz)
        self._lo = config.workspace_min
        self._hi = config.workspace_max
        self._wall = wall
        self.seq = 0
        self._last: tuple[Vec3, Quat, float] | None = None  # last target that left
        self._restore = True  # the next command holds the fresh measured pose
        self._epoch: int | None = None
        self._hold: Pose | None = None  # latched hold target (clamped measured pose)
        self._hold_since = math.nan
        self._hold_final = False
        self._outside = False  # the last call refused because the arm was outside the box

    # -- public --------------------------------------------------------------------------------

    @property
    def last_sent(self) -> Pose | None:
        """(pos, unit quat) of the last target that left since the last outage, or None."""
        return None if self._last is None else (self._last[0], self._last[1])

    def invalidate(self) -> None:
        """Forgets the previous target and the hold: the next command holds the fresh pose."""
        self._last = None
        self._hold = None
        self._hold_final = False
        self._restore = True

    def admit(self, proposal: Proposal, view: RobotView, now: float) -> GateResult:
        """Decides what (if anything) leaves for the robot this tick.

        Args:
            proposal: what the source asks for.
            view: the robot as the control path sees it now.
            now: monotonic time of this tick, seconds (the command's `created`).
        """
        if not view.ok or view.obs is None:
            self.invalidate()
            return GateResult(None, why_held=view.why or "robot not ready")
        if view.epoch != self._epoch:
            self._epoch = view.epoch
            self.invalidate()
        wall = self._wall()
        m_pos, m_quat = _measured_pose(view.obs)
        records: list[SafetyRecord] = []

        def note(kind: str, message: str, requested: Vector = (), amount: float = 1.0) -> None:
            req = as_floats(requested, 3) or ()
            req = req if finite(req) else ()
            records.append(SafetyRecord(kind, message, wall, -1, proposal.source, req, (), float(amount)))

        hold = not proposal.engaged or proposal.reset
        why = "reset" if proposal.reset else ("" if proposal.engaged else "not engaged")
        reanchor = False
        if self._restore:
            self._restore, reanchor = False, True
            if not hold:
                note(
                    kinds.HOLD_RESTORE,
                    "first command after an outage, a state fault or the start: holding the measured pose",
                )
                hold, why = True, "restore"
        want: Pose | None = None
        if not hold:
            want, problem = _proposed_pose(proposal)
            if want is None:
                kind = kinds.REFUSED_QUAT if problem.startswith("zero") else kinds.REFUSED_NONFINITE
                note(kind, f"{proposal.source} proposal refused ({problem}); holding the measured pose",
                     proposal.pos if proposal.pos is not None else ())
                hold, why, reanchor = True, "refused", True
            elif problem:
                note(kinds.QUAT, f"target quaternion renormalised ({problem})", (), 0.0)
        if hold:
            latched, want = self._hold_target(m_pos, m_quat, view.obs.t_recv, now)
        else:
            latched = False
            self._hold, self._hold_final = None, False
        assert want is not None

        pos, quat = want
        clamped = clamp_box(pos, self._lo, self._hi)
        d = distance(pos, clamped)
        if d > _BOX_TOL_M and (latched or not hold):
            what = "held (measured) pose" if hold else "target"
            note(kinds.BOX, f"{what} {_fmt(pos)} clamped into the workspace box by {d:.3f} m", pos, d)
        base_pos, base_quat = (self._last[0], self._last[1]) if self._last is not None else (m_pos, m_quat)
        out_pos, limited = step_toward(base_pos, clamped, self.step_m)
        if limited:
            over = distance(base_pos, clamped)
            note(
                kinds.STEP_POS,
                f"position step {over:.3f} m limited to {self.step_m:.3f} m",
                clamped,
                over - self.step_m,
            )
        out_quat, turned = turn_toward(base_quat, quat, self.step_rad)
        if turned:
            over = angle_between(base_quat, quat)
            note(
                kinds.STEP_ROT,
                f"rotation step {over:.3f} rad limited to {self.step_rad:.3f} rad",
                (),
                over - self.step_rad,
            )
        if not _inside(out_pos, self._lo, self._hi):
            # Only possible with no earlier target: the arm stands outside the box by more than
            # one step, and moving it in would take a bigger step than allowed: send nothing.
            records[:] = [r for r in records if r.kind not in (kinds.BOX, kinds.STEP_POS, kinds.STEP_ROT)]
            if not self._outside:
                out = distance(m_pos, clamp_box(m_pos, self._lo, self._hi))
                note(kinds.OUTSIDE_BOX, f"the arm is at {_fmt(m_pos)}, {out:.3f} m outside the workspace box "
                     f"(more than one {self.step_m:.3f} m step): nothing is sent until it is inside", m_pos, out)
            self._outside = True
            self._hold, self._hold_final = None, False
            return GateResult(None, tuple(records), reanchor, True, "outside box")
        self._outside = False

        gripper = self._gripper(proposal.gripper, view.obs.state.gripper, note)
        source = SOURCE_HOLD if hold and proposal.source == SOURCE_POLICY else proposal.source
        command = RobotCommand(
            seq=self.seq,
            created=now,
            action=_action(None if hold else proposal.action),
            target=_target(out_pos, out_quat, gripper, proposal.reset, wall),
            mode=view.mode,
            engaged=not hold,
            vr_seq=proposal.vr_seq,
            vr_t_recv=proposal.vr_t_recv,
            source=source,
            interventions=tuple(r.kind for r in records),
        )
        self._last = (out_pos, out_quat, gripper)
        if proposal.reset:
            self.invalidate()  # the arm is going home: what follows holds whatever is measured then
        sent = tuple(float(v) for v in out_pos)
        stamped = tuple(
            SafetyRecord(r.kind, r.message, r.t_wall, self.seq, r.source, r.requested, sent, r.amount) for r in records
        )
        self.seq += 1
        gated = GatedCommand(command, view.epoch, self.step_m, self.step_rad, _SEAL)
        return GateResult(gated, stamped, reanchor, hold, why)

    # -- pieces ---------------------------------------------------------------------------------

    def _hold_target(self, m_pos: Vec3, m_quat: Quat, t_recv: float, now: float) -> tuple[bool, Pose]:
        """(re-latched this call, held pose): follows the measured pose until the arm has
        settled (a state received `hold_settle_s` after the hold began), then stays."""
        if self._hold is None:
            self._hold_since = now
            self._hold_final = False
        latched = not self._hold_final
        if latched:
            self._hold = (m_pos, m_quat)
            if t_recv >= self._hold_since + self.config.hold_settle_s:
                self._hold_final = True
        assert self._hold is not None
        return latched, self._hold

    def _gripper(self, wanted: object, measured: object, note: Callable[..., None]) -> float:
        """The gripper target: `wanted` clipped to [-1, 1]; NaN keeps the last one."""
        g = _float(wanted)
        if math.isfinite(g):
            c = min(1.0, max(-1.0, g))
            if c != g:
                note(kinds.GRIPPER, f"gripper {g:+.3f} clipped to {c:+.0f}", (), abs(g - c))
            return c
        if self._last is not None:
            keep = self._last[2]
        else:
            m = _float(measured)
            keep = min(1.0, max(-1.0, m)) if math.isfinite(m) else -1.0
        if not math.isnan(g):
            note(kinds.GRIPPER, f"gripper {wanted!r} is not a finite number; kept {keep:+.2f}", (), 1.0)
        return keep


def _float(v: object) -> float:
    """`v` as a float; +inf if it is not a number (so it counts as unusable, not as 'keep')."""
    if isinstance(v, bool):
        return math.inf
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.inf


def _inside(pos: Sequence[float], lo: Sequence[float], hi: Sequence[float]) -> bool:
    return all(lo[i] - _BOX_TOL_M <= pos[i] <= hi[i] + _BOX_TOL_M for i in range(3))


def _measured_pose(obs: RobotObservation) -> Pose:
    """(pos, unit quat) of a believed state (finite and unit by plausibility)."""
    p = as_floats(obs.state.pos, 3)
    q = as_floats(obs.state.quat, 4)
    if p is None or q is None or not (finite(p) and finite(q)):
        raise SafetyError(f"the gate was given an unchecked robot state: {obs.state}")
    n = math.sqrt(sum(v * v for v in q))
    if not n > 0:
        raise SafetyError(f"the gate was given a robot state with a zero quaternion: {obs.state}")
    return (p[0], p[1], p[2]), (q[0] / n, q[1] / n, q[2] / n, q[3] / n)


def _proposed_pose(p: Proposal) -> tuple[Pose | None, str]:
    """(pos, unit quat) of a proposal and a note, or (None, why it is refused)."""
    pos = as_floats(p.pos, 3) if p.pos is not None else None
    quat = as_floats(p.quat, 4) if p.quat is not None else None
    if pos is None or quat is None:
        return None, "no position / quaternion of the right size"
    if not (finite(pos) and finite(quat)):
        return None, f"non-finite pose: pos {list(pos)}, quat {list(quat)}"
    n = math.sqrt(sum(v * v for v in quat))
    if not (math.isfinite(n) and n > 1e-9):
        return None, f"zero-length quaternion {list(quat)}"
    unit = (quat[0] / n, quat[1] / n, quat[2] / n, quat[3] / n)
    note = f"norm {n:.6g}" if abs(n - 1.0) > 1e-6 else ""
    return ((pos[0], pos[1], pos[2]), unit), note


def _action(action: Vector | None) -> np.ndarray:
    """(7,) read-only action; zeros when holding or when the proposal's action is unusable."""
    out = np.zeros(7)
    if action is not None:
        a = np.asarray(action, dtype=float).reshape(-1)
        if a.shape == (7,) and np.isfinite(a).all():
            out = np.clip(a, -1.0, 1.0)
    out.flags.writeable = False
    return out


def _target(pos: Vec3, quat: Quat, gripper: float, reset: bool, wall: float) -> FrankaAction:
    p, q = np.array(pos, dtype=float), np.array(quat, dtype=float)
    p.flags.writeable = False
    q.flags.writeable = False
    return FrankaAction(pos=p, quat=q, gripper=float(gripper), reset=bool(reset), timestamp=wall)


def _fmt(v: Sequence[float]) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in v) + ")"
