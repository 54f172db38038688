"""State shared by the daemon's threads, split by concern.

Every producer publishes immutable objects (frozen dataclasses whose arrays are marked read-only),
so a reader gets a value that can never change under it: handing out the object is handing out a
copy. Each concern is a small class with its own lock, so, say, a camera frame never waits on a
VR sample. The daemon builds one `SharedState` (the parts, composed) and hands each thread only
the parts it uses:

==============  ====================  =================================  ==========================
part            class                 written by                         read by
==============  ====================  =================================  ==========================
``vr``          `VRChannel`           VR thread                          control, recorder, dashboard
``robot``       `RobotChannel`        robot, state-feed threads          control, recorder, assist, dashboard
``measured``    `MeasuredLog`         (via ``robot``)                    recorder (drains)
``commands``    `CommandChannel`      control thread                     recorder, dashboard
``sent``        `SendLog`             robot thread                       recorder (drains), dashboard
``cameras``     `CameraFrames`        camera thread                      recorder (drains), assist
``sim``         `SimStateSlot`        sim-state thread                   recorder (takes)
``events``      `EventLog`            every thread                       recorder (drains), dashboard
``episode``     `EpisodeChannel`      control, recorder, writer, keys    recorder, dashboard
``safety``      `SafetyChannel`       control, robot threads             recorder (drains), dashboard
``counters``    `Counters`            every thread                       recorder (~1 Hz), dashboard
``rates``       `RateBoard`           every loop (registers once)        recorder (~1 Hz), dashboard
``assist``      `AssistChannel`       assist, control threads            recorder, dashboard
==============  ====================  =================================  ==========================
"""

from __future__ import annotations

from oculus_server.assist.channel import AssistChannel
from oculus_server.state.cameras import CameraFrames
from oculus_server.state.commands import CommandChannel, SendLog
from oculus_server.state.counters import Counters
from oculus_server.state.episode import EpisodeChannel, EpisodeStatus
from oculus_server.state.events import EventLog
from oculus_server.state.freeze import freeze
from oculus_server.state.rates import RateBoard
from oculus_server.state.robot import MeasuredLog, RobotChannel
from oculus_server.state.safety import SafetyChannel, SafetyStatus
from oculus_server.state.sim import SimStateSlot
from oculus_server.state.vr import VRChannel

__all__ = [
    "CameraFrames", "CommandChannel", "Counters", "EpisodeChannel", "EpisodeStatus", "EventLog",
    "MeasuredLog", "RateBoard", "RobotChannel", "SafetyChannel", "SafetyStatus", "SendLog", "SharedState",
    "SimStateSlot", "VRChannel", "freeze",
]


class SharedState:
    """Every part of the daemon's shared state, composed (see the module docstring).

    All parts are thread-safe and return immutable values. Only the daemon, the recorder and the
    dashboard hold the whole; other threads get the parts they use.
    """

    def __init__(self) -> None:
        self.counters = Counters()
        self.rates = RateBoard()
        self.vr = VRChannel(self.counters)
        self.measured = MeasuredLog(self.counters)
        self.robot = RobotChannel(self.counters, self.measured)
        self.commands = CommandChannel()
        self.sent = SendLog(self.counters)
        self.cameras = CameraFrames(self.counters)
        self.sim = SimStateSlot(self.counters)
        self.events = EventLog()
        self.episode = EpisodeChannel()
        self.safety = SafetyChannel(self.counters)
        self.assist = AssistChannel()  # VLA assist: newest action, link status, blend records

    def latency_figures(self) -> dict[str, float]:
        """Command age at send and VR-sample-to-command latency: p50/p99/max in ms."""
        return {**self.sent.latency_figures(), **self.commands.latency_figures()}

