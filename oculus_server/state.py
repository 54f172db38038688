"""Lock-guarded state shared by the daemon's threads.

Every producer publishes immutable objects (frozen dataclasses whose arrays are marked read-only),
so a reader gets a value that can never change under it: handing out the object is handing out a
copy. Unrelated data sit behind separate locks so, say, a camera frame never waits on a VR sample.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from frankateach.messages import CameraFrame, FrankaState
from frankateach.sim.state_message import SimStateSample
from frankateach.timing import RateSnapshot, RateStats
from oculus_server.assist.channel import AssistChannel
from oculus_server.safety.kinds import ALL_KINDS, counter_name
from oculus_server.types import (
    ControlMode,
    Event,
    RobotCommand,
    RobotLink,
    RobotObservation,
    SafetyRecord,
    SentCommand,
    VRSample,
)
from oculus_server.vr.source import SourceState, SourceStatus

__all__ = ["Counters", "EpisodeStatus", "Failure", "RobotLink", "SafetyStatus", "SharedState", "freeze"]

LOG_SLOTS = 4096  # measured states / sent commands kept for the recorder (~40 s at 100 Hz)


def freeze(arrays: list[np.ndarray]) -> None:
    """Marks arrays read-only, so sharing them is as safe as sharing a copy."""
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False


@dataclass(frozen=True)
class SafetyStatus:
    """What the dashboard shows about the command path.

    Attributes:
        held: why the arm holds (or why nothing is sent), "" while it follows the operator.
        fault: why measured robot state is not believed ("" when it is).
        sending: a command left on the last control tick.
    """

    held: str = "starting"
    fault: str = ""
    sending: bool = False


@dataclass(frozen=True)
class EpisodeStatus:
    """What the dashboard shows about recording.

    Attributes:
        active: an episode is open.
        path: the file being written ('' when none).
        started_wall: `time.time()` at episode start.
        messages, bytes_written: written so far.
        success: marked successful (B).
        last_saved: path of the last finalized episode.
        error: last recording error ('' when none).
    """

    active: bool = False
    path: str = ""
    started_wall: float = float("nan")
    messages: int = 0
    bytes_written: int = 0
    success: bool = False
    last_saved: str = ""
    error: str = ""


@dataclass
class Counters:
    """Drop and queue counters (mutated only under SharedState's counter lock)."""

    commands_dropped: int = 0  # stale commands replaced by fresher ones before being sent
    commands_sent: int = 0
    records_dropped: int = 0  # ticks lost to a full MCAP queue
    records_queued: int = 0
    camera_frames: int = 0
    camera_errors: int = 0
    vr_samples: int = 0
    sim_states: int = 0  # simulator state blobs received (--debug, ~1 Hz)
    sim_state_errors: int = 0  # unreadable ones
    state_feed_states: int = 0  # measured states received on the robot server's state feed
    state_feed_errors: int = 0  # unreadable state-feed messages
    measured_unrecorded: int = 0  # measured states pushed out of the recorder's log (recorder stalled)
    sent_unrecorded: int = 0  # sent commands pushed out of the recorder's log (recorder stalled)
    live_messages: int = 0  # messages sent to live viewers (Foxglove WebSocket)
    live_dropped: int = 0  # messages not sent to live viewers: the live sink's queue was full
    live_ticks_dropped: int = 0  # ticks between episodes not mapped for the live view (MCAP queue full)


class SharedState:
    """The daemon's shared state. All methods are thread-safe and return immutable values."""

    def __init__(self) -> None:
        self._vr_lock = threading.Lock()
        self._vr: VRSample | None = None
        self._vr_status = SourceStatus(SourceState.WAITING)

        self._robot_lock = threading.Lock()
        self._robot: RobotObservation | None = None
        self._link = RobotLink()
        self._feed_live = False  # the state feed is delivering: it, not the replies, is recorded
        # Every measured state for the recorder (drained each tick), oldest first.
        self._measured: deque[RobotObservation] = deque(maxlen=LOG_SLOTS)

        self._cmd_lock = threading.Lock()
        self._command: RobotCommand | None = None
        self._mode = ControlMode.PREDICTIVE
        self._cmd_age: deque[float] = deque(maxlen=2000)  # age of each command at send, s
        self._vr_to_cmd: deque[float] = deque(maxlen=2000)  # VR receive -> command made, s
        self._sent: deque[SentCommand] = deque(maxlen=LOG_SLOTS)  # for the recorder (drained)
        self._send_seq = 0

        self._cam_lock = threading.Lock()
        self._new_frames: dict[str, list[CameraFrame]] = {}
        self._latest_frames: dict[str, tuple[CameraFrame, float]] = {}  # newest per camera, monotonic receipt
        self._sim_state: SimStateSample | None = None  # newest not yet recorded (guarded by _cam_lock)

        self._event_lock = threading.Lock()
        self._events: deque[Event] = deque(maxlen=1000)  # for the recorder (drained)
        self._recent_events: deque[Event] = deque(maxlen=20)  # for the dashboard
        self._last_error = ""

        self._episode_lock = threading.Lock()
        self._episode = EpisodeStatus()
        self._episode_requests: deque[str] = deque(maxlen=16)

        self._count_lock = threading.Lock()
        self._counters = Counters()
        self._safety_counts = {counter_name(k): 0 for k in ALL_KINDS}  # safety_box, ...
        self._queue_depths: dict[str, int] = {}

        self._rates_lock = threading.Lock()
        self._rates: dict[str, RateStats] = {}

        self._safety_lock = threading.Lock()
        self._safety: deque[SafetyRecord] = deque(maxlen=2000)  # for the recorder (drained)
        self._recent_safety: deque[SafetyRecord] = deque(maxlen=20)  # for the dashboard
        self._safety_status = SafetyStatus()

        self.assist = AssistChannel()  # VLA assist: newest action, link status, blend records

    # -- VR ------------------------------------------------------------------------------------
    def set_vr(self, sample: VRSample) -> None:
        freeze(list(sample.poses.values()))
        with self._vr_lock:
            self._vr = sample
        self.count("vr_samples")

    def vr(self) -> VRSample | None:
        with self._vr_lock:
            return self._vr

    def set_vr_status(self, status: SourceStatus) -> None:
        with self._vr_lock:
            self._vr_status = status

    def vr_status(self) -> SourceStatus:
        with self._vr_lock:
            return self._vr_status

    # -- robot ---------------------------------------------------------------------------------
    def set_robot(self, obs: RobotObservation, link: RobotLink) -> None:
        """A request reply's state (robot thread): the newest state, recorded unless the feed is live."""
        freeze([obs.state.pos, obs.state.quat, obs.state.joint_positions])
        full = False
        with self._robot_lock:
            self._robot = obs
            self._link = link
            if not self._feed_live:
                full = len(self._measured) == LOG_SLOTS
                self._measured.append(obs)
        if full:
            self.count("measured_unrecorded")

    def add_feed_state(self, state: FrankaState, t_recv: float, t_recv_wall: float) -> RobotObservation:
        """A state from the server's state feed (state-feed thread); returns it as an observation.

        It carries the link epoch current at its arrival (0 while the request link is down: after
        an outage the arm may be anywhere, so such states are never compared with older ones).
        It becomes the newest state unless a reply arrived later, and is always recorded.
        """
        freeze([state.pos, state.quat, state.joint_positions])
        with self._robot_lock:
            epoch = self._link.epoch if self._link.up else 0
            obs = RobotObservation(state=state, t_recv=t_recv, t_recv_wall=t_recv_wall, link_epoch=epoch)
            if self._robot is None or t_recv >= self._robot.t_recv:
                self._robot = obs
            full = len(self._measured) == LOG_SLOTS
            self._measured.append(obs)
        self.count("state_feed_states")
        if full:
            self.count("measured_unrecorded")
        return obs

    def set_feed_live(self, live: bool) -> None:
        """Whether the state feed delivers (then replies are no longer recorded)."""
        with self._robot_lock:
            self._feed_live = live

    def feed_live(self) -> bool:
        with self._robot_lock:
            return self._feed_live

    def take_measured(self) -> tuple[RobotObservation, ...]:
        """Returns and forgets the measured states recorded since the previous call, oldest first."""
        with self._robot_lock:
            out = tuple(self._measured)
            self._measured.clear()
        return out

    def set_link(self, link: RobotLink) -> None:
        with self._robot_lock:
            self._link = link

    def robot(self) -> RobotObservation | None:
        with self._robot_lock:
            return self._robot

    def link(self) -> RobotLink:
        with self._robot_lock:
            return self._link

    # -- commands ------------------------------------------------------------------------------
    def set_command(self, cmd: RobotCommand) -> None:
        freeze([cmd.action, cmd.target.pos, cmd.target.quat])
        with self._cmd_lock:
            self._command = cmd
            self._mode = cmd.mode
            if np.isfinite(cmd.vr_t_recv):
                self._vr_to_cmd.append(cmd.created - cmd.vr_t_recv)

    def set_mode(self, mode: ControlMode) -> None:
        with self._cmd_lock:
            self._mode = mode

    def command(self) -> RobotCommand | None:
        with self._cmd_lock:
            return self._command

    def mode(self) -> ControlMode:
        with self._cmd_lock:
            return self._mode

    def mark_sent(self, cmd: RobotCommand, t_send: float) -> SentCommand:
        """Records that `cmd` left for the robot at monotonic time `t_send` (robot thread only).

        Returns it numbered in send order; the recorder gets each one once (`take_sent`).
        """
        with self._cmd_lock:
            self._cmd_age.append(t_send - cmd.created)
            sent = SentCommand(cmd, self._send_seq, t_send, time.time())
            self._send_seq += 1
            full = len(self._sent) == LOG_SLOTS
            self._sent.append(sent)
        self.count("commands_sent")
        if full:
            self.count("sent_unrecorded")
        return sent

    def take_sent(self) -> tuple[SentCommand, ...]:
        """Returns and forgets the commands sent since the previous call, in send order."""
        with self._cmd_lock:
            out = tuple(self._sent)
            self._sent.clear()
        return out

    def latency_figures(self) -> dict[str, float]:
        """Command age at send and VR-sample-to-command latency: p50/p99/max in ms."""
        with self._cmd_lock:
            age = np.fromiter(self._cmd_age, dtype=float)
            v2c = np.fromiter(self._vr_to_cmd, dtype=float)
        out: dict[str, float] = {}
        for name, arr in (("cmd_age", age), ("vr_to_cmd", v2c)):
            if arr.size:
                out[f"{name}_p50_ms"] = float(np.percentile(arr, 50) * 1e3)
                out[f"{name}_p99_ms"] = float(np.percentile(arr, 99) * 1e3)
                out[f"{name}_max_ms"] = float(arr.max() * 1e3)
        return out

    # -- cameras -------------------------------------------------------------------------------
    def add_frame(self, frame: CameraFrame) -> None:
        with self._cam_lock:
            pending = self._new_frames.setdefault(frame.name, [])
            pending.append(frame)
            del pending[:-8]  # the recorder drains every 25 ms; never let this grow
            self._latest_frames[frame.name] = (frame, time.monotonic())
        self.count("camera_frames")

    def latest_frame(self, name: str) -> tuple[CameraFrame, float] | None:
        """The newest frame of camera `name` and its receipt time (`time.monotonic()`), not drained."""
        with self._cam_lock:
            return self._latest_frames.get(name)

    def take_new_frames(self) -> dict[str, tuple[CameraFrame, ...]]:
        """Returns and forgets the frames that arrived since the previous call."""
        with self._cam_lock:
            out = {k: tuple(v) for k, v in self._new_frames.items() if v}
            self._new_frames = {}
        return out

    # -- simulator state (--debug) ------------------------------------------------------------
    def set_sim_state(self, sample: SimStateSample) -> None:
        """Keeps the simulator's newest state blob until the recorder takes it."""
        with self._cam_lock:
            self._sim_state = sample
        self.count("sim_states")

    def peek_sim_state(self) -> SimStateSample | None:
        """The newest simulator state not yet recorded, left in place (the live view between episodes)."""
        with self._cam_lock:
            return self._sim_state

    def take_sim_state(self) -> SimStateSample | None:
        """Returns and forgets the state blob that arrived since the previous call (or None)."""
        with self._cam_lock:
            out, self._sim_state = self._sim_state, None
        return out

    # -- events --------------------------------------------------------------------------------
    def add_event(self, kind: str, message: str, **data: object) -> Event:
        ev = Event(kind=kind, message=message, t_wall=time.time(), data=dict(data))
        with self._event_lock:
            self._events.append(ev)
            self._recent_events.append(ev)
            if kind == "error":
                self._last_error = message
        return ev

    def take_events(self) -> tuple[Event, ...]:
        with self._event_lock:
            out = tuple(self._events)
            self._events.clear()
        return out

    def recent_events(self) -> tuple[Event, ...]:
        with self._event_lock:
            return tuple(self._recent_events)

    def last_error(self) -> str:
        with self._event_lock:
            return self._last_error

    # -- episodes ------------------------------------------------------------------------------
    def request_episode(self, what: str) -> None:
        """Queues an episode request: "toggle", "start", "stop" or "success"."""
        with self._episode_lock:
            self._episode_requests.append(what)

    def take_episode_requests(self) -> list[str]:
        with self._episode_lock:
            out = list(self._episode_requests)
            self._episode_requests.clear()
        return out

    def set_episode(self, **changes: Any) -> None:
        with self._episode_lock:
            self._episode = replace(self._episode, **changes)

    def episode(self) -> EpisodeStatus:
        with self._episode_lock:
            return self._episode

    # -- counters and rates --------------------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        with self._count_lock:
            if name in self._safety_counts:
                self._safety_counts[name] += n
            else:
                setattr(self._counters, name, getattr(self._counters, name) + n)

    def set_queue_depth(self, name: str, depth: int) -> None:
        with self._count_lock:
            self._queue_depths[name] = depth

    def counters(self) -> dict[str, float]:
        """Counters and queue depths as one flat map (a copy)."""
        with self._count_lock:
            out: dict[str, float] = dict(vars(self._counters))
            out.update(self._safety_counts)
            out.update({f"queue_{k}": v for k, v in self._queue_depths.items()})
        return out

    def safety_counts(self) -> dict[str, int]:
        """Safety interventions so far, by kind (`oculus_server.safety.kinds`)."""
        with self._count_lock:
            return {name[len("safety_"):]: n for name, n in self._safety_counts.items()}

    # -- safety --------------------------------------------------------------------------------
    def add_safety(self, records: tuple[SafetyRecord, ...] | list[SafetyRecord]) -> None:
        """Publishes safety interventions (counted per kind, kept for the recorder and dashboard)."""
        if not records:
            return
        with self._safety_lock:
            self._safety.extend(records)
            self._recent_safety.extend(records)
        with self._count_lock:
            for r in records:
                name = counter_name(r.kind)
                self._safety_counts[name] = self._safety_counts.get(name, 0) + 1

    def take_safety(self) -> tuple[SafetyRecord, ...]:
        """Returns and forgets the interventions since the previous call (for `/safety`)."""
        with self._safety_lock:
            out = tuple(self._safety)
            self._safety.clear()
        return out

    def recent_safety(self) -> tuple[SafetyRecord, ...]:
        with self._safety_lock:
            return tuple(self._recent_safety)

    def set_safety_status(self, status: SafetyStatus) -> None:
        with self._safety_lock:
            self._safety_status = status

    def safety_status(self) -> SafetyStatus:
        with self._safety_lock:
            return self._safety_status

    def register_rate(self, stats: RateStats) -> None:
        with self._rates_lock:
            self._rates[stats.name] = stats

    def rates(self) -> dict[str, RateSnapshot]:
        with self._rates_lock:
            stats = list(self._rates.values())
        return {s.name: s.snapshot() for s in stats}


@dataclass(frozen=True)
class Failure:
    """A thread that died: its name and the exception text."""

    thread: str
    error: str
    traceback: str = field(default="", repr=False)
