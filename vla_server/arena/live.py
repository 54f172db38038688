"""Arena episodes live (`vla-arena run --live`): the episode's topics while it runs, in sim time.

Each trajectory sample the episode takes (30 Hz of sim time) becomes a `RecordTick` through the
same `trajectory.SampleTicks` that writes ``trajectory.mcap``, is mapped by the recording's
`TickMapper` (with the 3D scene) and published by a `LiveServer` (Foxglove WebSocket). Message
times are the episode's time base plus sim time, and the server tells clients the sim time
(Foxglove's time capability). With `realtime` the episode is paced so sim time runs no faster
than the wall clock (watchable; the trajectory is the same either way: pacing only waits).

The live view belongs to the process that runs the episode, so it needs the inline executor; the
CLI installs it with `install` and episodes pick it up through `current`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from robot_formats.recording.live import LiveServer
from robot_formats.recording.mapping import TickMapper
from robot_formats.recording.scene import ScenePainter
from vla_server.arena.trajectory import McapSample, SampleTicks

_current: ArenaLive | None = None


class ArenaLive:
    """Publishes one episode at a time.

    Args:
        server: the Foxglove WebSocket server (its time capability on).
        realtime: pace the episode to the wall clock.
    """

    def __init__(self, server: LiveServer, realtime: bool = True) -> None:
        self.server = server
        self.realtime = realtime
        self._ticks: SampleTicks | None = None
        self._mapper: TickMapper | None = None
        self._wall0 = 0.0
        self.published = 0

    def begin(self, start_step: int, time_base: float) -> None:
        """A new episode starts at physics step `start_step`; sim time zero is `time_base`."""
        self._ticks = SampleTicks(start_step, time_base)
        self._mapper = TickMapper(scene=ScenePainter())
        self._wall0 = time.monotonic()

    def sample(self, i: int, s: McapSample, events: Sequence[tuple[int, str, str, dict[str, Any]]] = ()) -> None:
        """Publishes sample `i` (with the events that happened up to it)."""
        if self._ticks is None or self._mapper is None:
            raise RuntimeError("ArenaLive.sample before begin")
        tick = self._ticks.tick(i, s, events)
        if self.realtime:
            wait = self._wall0 + tick.t_mono - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        if self.server.wanted:
            self.published += self.server.publish(self._mapper.tick(tick))
        self.server.broadcast_time(round(tick.t_wall * 1e9))


def install(live: ArenaLive | None) -> None:
    """Makes `live` the view of the episodes this process runs (None: off)."""
    global _current
    _current = live


def current() -> ArenaLive | None:
    """The installed live view, if any."""
    return _current
