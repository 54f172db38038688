"""The records a teleop recording is made of: what the daemon (and the arena) hand the writer.

Everything here is a frozen dataclass (arrays inside are marked read-only by the daemon's
`SharedState` when published), so a value handed to another thread can be read without a lock.
`RecordTick` carries one recording tick; `mapping.TickMapper` turns it into topic messages.

Who makes what in the daemon (the arena makes `RecordTick`s of its own simulation):

=====================  ===================  ==========================================================
type                   made by              read by
=====================  ===================  ==========================================================
`VRSample`             VR thread (sources)  control thread (policy), recorder
`RobotObservation`     robot / state-feed   control thread (plausibility, policy, gate), recorder
`RobotCommand`         the command gate     robot thread (inside a `GatedCommand`), recorder
`SentCommand`          robot thread         recorder (`/robot/command`: every command sent, once)
`SafetyRecord`         the command gate     dashboard, recorder (`/safety`)
`Event`                any thread           recorder (`/events`), dashboard
`RecordTick`           recorder             MCAP-writer thread
`EpisodeStart/Stop`    recorder             MCAP-writer thread
`AssistAction`         assist thread        control thread (blender), recorder (`/assist/action`)
`AssistStatus`         assist thread        control thread, dashboard, recorder (`/assist/status`)
`BlendRecord`          control (blender)    dashboard, recorder (`/assist/blend`)
`AssistTick`           recorder             MCAP-writer thread
=====================  ===================  ==========================================================

The daemon's own thread values (`RobotLink`, `GatedCommand`) live in `oculus_server`.

Frames and units: positions metres and quaternions xyzw of the hand TCP in the robot base frame;
times `time.monotonic()` seconds unless the name says wall (`time.time()`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frankateach.messages import CameraFrame, FrankaAction, FrankaState
from frankateach.sim.state_message import SimStateSample
from frankateach.timing import RateSnapshot

Vector = Sequence[float] | np.ndarray  # a (n,) vector given as a sequence of floats or an array

# --- VR -----------------------------------------------------------------------------------------

ButtonValue = bool | float | tuple[float, float]

# Button names, as oculus_reader exposes them. Booleans: A B RTr RG RThU RJ (right),
# X Y LTr LG LThU LJ (left). Analog: rightTrig rightGrip leftTrig leftGrip (plain floats here,
# 1-tuples in oculus_reader); joysticks rightJS leftJS as (x, y).
RIGHT_BOOLS = ("A", "B", "RTr", "RG", "RThU", "RJ")
LEFT_BOOLS = ("X", "Y", "LTr", "LG", "LThU", "LJ")
RIGHT_ANALOG = ("rightTrig", "rightGrip")
LEFT_ANALOG = ("leftTrig", "leftGrip")


def analog_value(value: object) -> float:
    """A trigger or grip value as a float: oculus_reader's 1-tuples (lists, arrays) give their
    first entry, anything else what `float()` makes of it. May be non-finite (callers decide).

    Raises:
        ValueError: an empty sequence or something that is not a number.
    """
    if isinstance(value, (tuple, list, np.ndarray)):
        flat = np.asarray(value, dtype=float).reshape(-1)
        if not flat.size:
            raise ValueError("expected an analog value, got an empty sequence")
        return float(flat[0])
    try:
        return float(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"expected an analog value (a number), got {type(value).__name__}") from None


@dataclass(frozen=True)
class VRSample:
    """One reading of the controllers.

    Attributes:
        poses: side ("r" or "l") -> (4, 4) head_T_controller; a side may be absent.
        buttons: oculus_reader-style button map (see module constants); only the sides present.
        t_recv: `time.monotonic()` when the sample was received by the daemon, seconds.
        seq: per-source sample counter, starting at 0 (gaps mean skipped samples).
    """

    poses: Mapping[str, np.ndarray]
    buttons: Mapping[str, ButtonValue]
    t_recv: float
    seq: int

    def pose(self, side: str) -> np.ndarray | None:
        """Returns a copy of the (4, 4) pose of `side` ("r" or "l"), or None if absent."""
        p = self.poses.get(side)
        return None if p is None else np.array(p, dtype=float)


# --- Robot --------------------------------------------------------------------------------------


class ControlMode(str, enum.Enum):
    """Where the control thread takes its reference pose from."""

    REAL_TIME = "REAL-TIME"  # the measured robot pose is fresh (≤ 2 control periods old)
    PREDICTIVE = "PREDICTIVE"  # measured state is stale: the last commanded target is the reference


@dataclass(frozen=True)
class RobotObservation:
    """A measured robot state and when the daemon received it.

    Attributes:
        state: as the robot server reported it (its `timestamp` is the measurement time,
            server wall clock, s).
        t_recv: `time.monotonic()` at receipt, seconds.
        t_recv_wall: `time.time()` at receipt, seconds.
        rtt_s: round trip of the request that brought it, seconds (NaN for PUB states).
        link_epoch: which connection brought it: the robot thread counts 1 for the first reply
            and one more for the first reply after every outage (0: unknown).
    """

    state: FrankaState
    t_recv: float
    t_recv_wall: float
    rtt_s: float = float("nan")
    link_epoch: int = 0


@dataclass(frozen=True)
class RobotCommand:
    """One control step's command, as the command gate let it out.

    Attributes:
        seq: gate counter (one per command that left; a gap never happens).
        created: `time.monotonic()` when the command was made, seconds.
        action: (7,) policy velocity action in [-1, 1]: lin xyz, rot xyz (Euler), gripper;
            zeros when the arm holds.
        target: the pose target sent to the robot (base frame, m / xyzw).
        mode: reference used for this step.
        engaged: the arm is meant to move (deadman held, link fine, not held by the gate).
        vr_seq: seq of the VR sample this command was made from (-1 if none).
        vr_t_recv: receive time of that VR sample (monotonic, s); NaN if none.
        source: who proposed it: "policy", "hold", "reset", "assist", ...
        interventions: what the gate changed, e.g. ("box", "step_pos"); empty if nothing.
    """

    seq: int
    created: float
    action: np.ndarray
    target: FrankaAction
    mode: ControlMode
    engaged: bool
    vr_seq: int = -1
    vr_t_recv: float = float("nan")
    source: str = "policy"
    interventions: tuple[str, ...] = ()


@dataclass(frozen=True)
class SentCommand:
    """A command as it left for the robot: what the robot thread put on the wire, in order.

    Attributes:
        command: the gated command that was sent.
        send_seq: the robot thread's counter of commands sent, from 0; consecutive, so a gap
            in a recording means a command that was sent but not recorded.
        t_sent: `time.monotonic()` when it was handed to the socket, seconds.
        t_sent_wall: `time.time()` at the same moment, seconds.
    """

    command: RobotCommand
    send_seq: int
    t_sent: float
    t_sent_wall: float


@dataclass(frozen=True)
class SafetyRecord:
    """One safety intervention: something clamped, limited, refused or held, and why.

    Attributes:
        kind: what happened (`oculus_server.safety.kinds`): "box", "step_pos", "step_rot",
            "refused_nonfinite", "refused_quat", "gripper", "implausible_state",
            "state_plausible", "hold_restore", ...
        message: human-readable reason, with the numbers.
        t_wall: `time.time()` when it happened, seconds.
        command_seq: seq of the command it applies to (-1: no command left, e.g. a refusal).
        source: the proposal's source ("policy", "hold", ...) or "robot_state".
        requested: (3,) position asked for, metres (empty if none or not finite).
        sent: (3,) position that left, metres (empty if nothing left).
        amount: size of the change: metres, radians or 1 for a refusal.
    """

    kind: str
    message: str
    t_wall: float
    command_seq: int = -1
    source: str = ""
    requested: tuple[float, ...] = ()
    sent: tuple[float, ...] = ()
    amount: float = 0.0


@dataclass(frozen=True)
class Event:
    """Something that happened: episode start/stop/success, an error, a link change.

    Attributes:
        kind: short machine-readable kind ("episode_start", "episode_stop", "success",
            "error", "robot_link", "vr_link", "safety_warning", ...).
        message: human-readable text.
        t_wall: `time.time()` when it happened, seconds.
        data: extra JSON-serialisable fields.
    """

    kind: str
    message: str
    t_wall: float
    data: Mapping[str, Any] = field(default_factory=dict)


# --- Recording ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordTick:
    """Everything the daemon knew at one recording tick (copies, safe to hand across threads).

    Attributes:
        seq: recording-tick counter within the episode (a gap means a dropped tick).
        t_mono: tick time, `time.monotonic()`, seconds.
        t_wall: tick time, `time.time()`, seconds (MCAP log_time is derived from this).
        vr: newest VR sample, or None before the first.
        robot: newest *measured* robot state, or None before the first. Never a prediction.
        command: newest command made by the control thread (its target is the commanded pose).
        mode: control mode at this tick.
        cameras: camera name -> frames that arrived since the previous tick (usually 0 or 1).
        events: events since the previous tick.
        rates: loop name -> timing figures; filled about once a second, else empty.
        counters: queue depths and drop counters (name -> value); filled with `rates`.
        safety: safety interventions since the previous tick (`/safety`).
        sim_state: the simulator's state blob received since the previous tick (``--debug``,
            about once a second), else None.
        robot_states: every measured state received since the previous tick, oldest first
            (the 100 Hz state feed while it is live, else the request replies): the robot
            topics record exactly these. None: they record `robot`, the newest state (writers
            that have no such log).
        sent_commands: every command sent to the robot since the previous tick, in send order:
            the command topics record exactly these (each once). None: the command topics
            record `command`, the newest one made (writers that have no send log).
        assist: policy actions, blend records and assist status since the previous tick
            (`/assist/*`); None when there are none (assist off).
    """

    seq: int
    t_mono: float
    t_wall: float
    vr: VRSample | None
    robot: RobotObservation | None
    command: RobotCommand | None
    mode: ControlMode
    cameras: Mapping[str, tuple[CameraFrame, ...]] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    rates: Mapping[str, RateSnapshot] = field(default_factory=dict)
    counters: Mapping[str, float] = field(default_factory=dict)
    safety: tuple[SafetyRecord, ...] = ()
    sim_state: SimStateSample | None = None
    robot_states: tuple[RobotObservation, ...] | None = None
    sent_commands: tuple[SentCommand, ...] | None = None
    assist: AssistTick | None = None


@dataclass(frozen=True)
class EpisodeStart:
    """Open a new episode file named `name` (no extension)."""

    name: str
    t_wall: float
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EpisodeStop:
    """Close the open episode. `outcome`: "success", "failure" or "shutdown".

    `events` (the stop itself among them) and `sent_commands` (sent since the last tick) are
    written to the file before it is closed.
    """

    outcome: str
    success: bool
    reason: str = ""
    events: tuple[Event, ...] = ()
    sent_commands: tuple[SentCommand, ...] = ()


# --- Assist (a VLA policy helping the operator; oculus_server.assist) ---------------------------

ASSIST_OFF = "off"  # switched off (button) or not configured
ASSIST_CONNECTING = "connecting"  # no session with the service (yet, or again)
ASSIST_ON = "on"  # fresh, well-scored actions arrive (α > 0 while the deadman is held)
ASSIST_STALE = "stale"  # connected, but the newest action is too old, scored too low or unusable
ASSIST_STATES = (ASSIST_OFF, ASSIST_CONNECTING, ASSIST_ON, ASSIST_STALE)


@dataclass(frozen=True)
class AssistAction:
    """One policy action as the assist thread received it (made by the assist thread).

    Attributes:
        seq: the daemon's count of actions received, from 0.
        frame_id: the frame (per service session) it answers.
        action: (7,) as received (`robot_formats.action_space`), read-only; not trusted: the
            control thread uses only finite values.
        received_at: `time.monotonic()` when it reached the daemon, seconds.
        received_wall: `time.time()` at the same moment, seconds.
        safety_score: the service's score, 0..1 (openpi servers: 1.0).
        latency_ms: frame arrival → action at the service (openpi: observation age at emission).
        rtt_ms: frame sent → action received, ms (NaN when unknown).
        seen_pos: (3,) pose sent with the frame it answers (base frame, m), or None: the action
            applies to the pose of the moment it is used (openpi chunk rows).
        seen_quat: (4,) xyzw of that pose, or None.
        smoothed: the service applied its EMA.
    """

    seq: int
    frame_id: int
    action: np.ndarray
    received_at: float
    received_wall: float
    safety_score: float
    latency_ms: float
    rtt_ms: float = float("nan")
    seen_pos: tuple[float, float, float] | None = None
    seen_quat: tuple[float, float, float, float] | None = None
    smoothed: bool = False


@dataclass(frozen=True)
class AssistStatus:
    """The assist thread's link to its service and its figures (dashboard, `/assist/status`).

    Attributes:
        link: "connecting", "connected", "reconnecting" or "failed" (refused for good).
        model: the policy's catalog id.
        url: the service URL (never the key).
        detail: why not connected / what failed ("" when fine).
        frames_sent, frames_skipped: frames sent; send ticks without a fresh camera frame or
            robot state.
        actions_received, actions_unmatched: actions received; of those, answers to frames
            whose pose was no longer known (not used).
        client_frames_dropped, client_actions_dropped: the client's drops (newer frame, unread
            action).
        server_frames_dropped, server_drop_rate_percent: the service's drops (its `stats`).
        server_errors, reconnects: error replies; sessions re-opened after a link loss.
        latency_ms_p50, latency_ms_p95: service latency over the recent actions, ms.
        rtt_ms_p50, rtt_ms_p95: frame → action round trip, ms.
        send_hz, action_hz: frames sent / actions received per second, recent window.
        t_mono: `time.monotonic()` of this snapshot, seconds.
    """

    link: str = "connecting"
    model: str = ""
    url: str = ""
    detail: str = ""
    frames_sent: int = 0
    frames_skipped: int = 0
    actions_received: int = 0
    actions_unmatched: int = 0
    client_frames_dropped: int = 0
    client_actions_dropped: int = 0
    server_frames_dropped: int = 0
    server_drop_rate_percent: float = float("nan")
    server_errors: int = 0
    reconnects: int = 0
    latency_ms_p50: float = float("nan")
    latency_ms_p95: float = float("nan")
    rtt_ms_p50: float = float("nan")
    rtt_ms_p95: float = float("nan")
    send_hz: float = float("nan")
    action_hz: float = float("nan")
    t_mono: float = float("nan")

    @property
    def connected(self) -> bool:
        return self.link == "connected"


@dataclass(frozen=True)
class BlendRecord:
    """What the control thread did with the policy on one tick (made by `AssistBlender`).

    Attributes:
        t_mono, t_wall: the control tick, `time.monotonic()` / `time.time()` seconds.
        state: "on", "off", "no_link", "no_action", "stale", "low_score", "invalid" or
            "released" (deadman released: the policy has no say).
        alpha: the policy's share used this tick (0: operator only).
        alpha_target: the share aimed at (weight, or 1 in drive mode).
        engaged: the operator engages the arm (deadman held, VR fine).
        operator: (7,) the operator's raw action.
        policy: (7,) the policy's action re-expressed from this tick's reference (gripper as
            received), or empty when there was no usable one.
        blended: (7,) the action proposed to the command gate (the operator's when α = 0).
        action_seq: seq of the `AssistAction` used (-1: none).
        age_s: age of the newest policy action, seconds (NaN: none).
        safety_score: its score (NaN: none).
        gripper_source: "operator", "policy" or "keep" (the last gripper target stands).
        command_seq: seq of the command the gate let out (-1: none left).
        reanchor: α fell to 0: the arm held one tick and the operator's origin was re-anchored.
    """

    t_mono: float
    t_wall: float
    state: str
    alpha: float
    alpha_target: float
    engaged: bool
    operator: tuple[float, ...]
    policy: tuple[float, ...]
    blended: tuple[float, ...]
    action_seq: int = -1
    age_s: float = float("nan")
    safety_score: float = float("nan")
    gripper_source: str = "operator"
    command_seq: int = -1
    reanchor: bool = False


@dataclass(frozen=True)
class AssistTick:
    """Assist data since the previous recording tick (recorder → MCAP writer).

    Attributes:
        actions: policy actions received (`/assist/action`).
        blends: one record per control tick (`/assist/blend`).
        status: the link and figures, about once a second (`/assist/status`), else None.
    """

    actions: tuple[AssistAction, ...] = ()
    blends: tuple[BlendRecord, ...] = ()
    status: AssistStatus | None = None


def summary_state(status: AssistStatus | None, blend: BlendRecord | None) -> str:
    """The dashboard's word for assist: off, connecting, on or stale (the ``state`` of `/assist/status`).

    On while the policy is usable (moving the arm, or ready to as soon as the deadman is held);
    stale while connected but the newest action is too old, scored too low or not usable.
    """
    if status is None and blend is None:
        return ASSIST_OFF
    if blend is not None and blend.state == "off":
        return ASSIST_OFF
    if status is None or not status.connected:
        return ASSIST_CONNECTING
    if blend is None:
        return ASSIST_STALE
    # With the deadman released the policy has no say; it still counts as on when its action is
    # usable (the record then carries the policy's motion).
    if blend.state == "on" or (blend.state == "released" and blend.policy):
        return ASSIST_ON
    return ASSIST_STALE
