"""The unit the recording thread hands to the MCAP writer thread, 40 times a second."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from frankateach.messages import CameraFrame, FrankaState
from frankateach.sim.state_message import SimStateSample
from frankateach.timing import RateSnapshot
from oculus_server.command import ControlMode, RobotCommand
from oculus_server.vr.source import VRSample


@dataclass(frozen=True)
class RobotObservation:
    """A measured robot state and when the daemon received it.

    Attributes:
        state: as the robot server reported it (its `timestamp` is the measurement time,
            server wall clock, s).
        t_recv: `time.monotonic()` at receipt, seconds.
        t_recv_wall: `time.time()` at receipt, seconds.
        rtt_s: round trip of the request that brought it, seconds (NaN for PUB states).
    """

    state: FrankaState
    t_recv: float
    t_recv_wall: float
    rtt_s: float = float("nan")


@dataclass(frozen=True)
class Event:
    """Something that happened: episode start/stop/success, an error, a link change.

    Attributes:
        kind: short machine-readable kind ("episode_start", "episode_stop", "success",
            "error", "robot_link", "vr_link", ...).
        message: human-readable text.
        t_wall: `time.time()` when it happened, seconds.
        data: extra JSON-serialisable fields.
    """

    kind: str
    message: str
    t_wall: float
    data: Mapping[str, Any] = field(default_factory=dict)


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
        sim_state: the simulator's state blob received since the previous tick (``--debug``,
            about once a second), else None.
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
    sim_state: SimStateSample | None = None
