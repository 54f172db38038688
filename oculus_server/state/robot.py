"""`RobotChannel`: the newest measured robot state and the request link's health.

Written by the robot thread (request replies, link up/down) and the state-feed thread (feed
states); read by the control thread, the recorder, the assist thread and the dashboard. Every
measured state that should be recorded also goes into the `MeasuredLog` the recorder drains.
"""

from __future__ import annotations

import threading

from frankateach.messages import FrankaState
from oculus_server.robot_link import RobotLink
from oculus_server.state.counters import Counters
from oculus_server.state.drain import DrainLog
from oculus_server.state.freeze import freeze
from robot_formats.recording.records import RobotObservation

LOG_SLOTS = 4096  # measured states kept for the recorder (~40 s at 100 Hz)


class MeasuredLog(DrainLog[RobotObservation]):
    """Every measured state to be recorded, oldest first (drained by the recorder each tick)."""

    def __init__(self, counters: Counters | None = None, slots: int = LOG_SLOTS) -> None:
        super().__init__(slots, counters, "measured_unrecorded")


class RobotChannel:
    """The newest `RobotObservation`, the `RobotLink`, and whether the state feed is live."""

    def __init__(self, counters: Counters, measured: MeasuredLog) -> None:
        self._lock = threading.Lock()
        self._counters = counters
        self._measured = measured
        self._obs: RobotObservation | None = None
        self._link = RobotLink()
        self._feed_live = False  # the state feed is delivering: it, not the replies, is recorded

    def set_reply(self, obs: RobotObservation, link: RobotLink) -> None:
        """A request reply's state (robot thread): the newest state, recorded unless the feed is live."""
        freeze([obs.state.pos, obs.state.quat, obs.state.joint_positions])
        with self._lock:
            self._obs = obs
            self._link = link
            record = not self._feed_live
        if record:
            self._measured.append(obs)

    def add_feed_state(self, state: FrankaState, t_recv: float, t_recv_wall: float) -> RobotObservation:
        """A state from the server's state feed (state-feed thread); returns it as an observation.

        It carries the link epoch current at its arrival (0 while the request link is down: after
        an outage the arm may be anywhere, so such states are never compared with older ones).
        It becomes the newest state unless a reply arrived later, and is always recorded.
        """
        freeze([state.pos, state.quat, state.joint_positions])
        with self._lock:
            epoch = self._link.epoch if self._link.up else 0
            obs = RobotObservation(state=state, t_recv=t_recv, t_recv_wall=t_recv_wall, link_epoch=epoch)
            if self._obs is None or t_recv >= self._obs.t_recv:
                self._obs = obs
        self._measured.append(obs)
        self._counters.count("state_feed_states")
        return obs

    def set_feed_live(self, live: bool) -> None:
        """Whether the state feed delivers (then replies are no longer recorded)."""
        with self._lock:
            self._feed_live = live

    def feed_live(self) -> bool:
        with self._lock:
            return self._feed_live

    def set_link(self, link: RobotLink) -> None:
        with self._lock:
            self._link = link

    def observation(self) -> RobotObservation | None:
        """The newest measured state (None before the first)."""
        with self._lock:
            return self._obs

    def link(self) -> RobotLink:
        with self._lock:
            return self._link
