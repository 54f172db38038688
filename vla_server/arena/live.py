"""Arena episodes live (`vla-arena run --live`): the episode's topics while it runs, in sim time.

Each trajectory sample the episode takes (30 Hz of sim time) becomes a `RecordTick` through the
same `trajectory.SampleTicks` that writes ``trajectory.mcap``, is mapped by the recording's
`TickMapper` (with the 3D scene) and published by a `LiveServer` (Foxglove WebSocket). Message
times are the episode's time base plus sim time, and the server tells clients the sim time
(Foxglove's time capability). With `realtime` the episode is paced so sim time runs no faster
than the wall clock (watchable; the trajectory is the same either way: pacing only waits).

The live view belongs to the process that runs the episode. The CLI (inline executor) installs one
with `install` and episodes pick it up through `current`. Episodes from the HTTP API / web UI ask
for it with `LiveOptions` in their job payload: the process that runs the job (a thread of the
service, or a worker of the local pool) serves that episode on 127.0.0.1 with `serve_episode`, at
the configured port or the next free one, and reports the address (`links`) as a job event.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from robot_formats.recording.errors import RecordingError
from robot_formats.recording.live import DEFAULT_PORT, LiveServer, advertised_topics
from robot_formats.recording.mapping import TickMapper
from robot_formats.recording.scene import ScenePainter
from vla_server.arena.trajectory import McapSample, SampleTicks

_current: ArenaLive | None = None

LIVE_HOST = "127.0.0.1"  # the protocol has no authentication: episodes from the API serve loopback only
PORT_TRIES = 16  # the configured port, then the next ones (another episode or the daemon may hold it)
FOXGLOVE_WEB = "https://app.foxglove.dev/~/view"
FOXGLOVE_DESKTOP = "foxglove://open"


@dataclass(frozen=True)
class LiveOptions:
    """An API episode's live view: first port to try (0: any free port), paced to the wall clock."""

    port: int = DEFAULT_PORT
    realtime: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"port": self.port, "realtime": self.realtime}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LiveOptions:
        return cls(int(d["port"]), bool(d.get("realtime", True)))


def episode_server(host: str, port: int) -> LiveServer:
    """A Foxglove WebSocket server for an arena episode at `host:port` (its topics, sim-time clock).

    Raises:
        RecordingError: the port could not be bound.
    """
    return LiveServer(host, port, topics=advertised_topics(["front"]), name="vla-arena", time_capability=True)


def serve_episode(options: LiveOptions, tries: int = PORT_TRIES) -> LiveServer:
    """A Foxglove WebSocket server on 127.0.0.1 at `options.port` or the next free port.

    Raises:
        RecordingError: none of `tries` ports could be bound (the message names them).
    """
    ports = [0] if options.port == 0 else [p for p in range(options.port, options.port + tries) if p <= 65535]
    last = ""
    for port in ports:
        try:
            return episode_server(LIVE_HOST, port)
        except RecordingError as exc:
            last = str(exc)
    raise RecordingError(f"live view: no free port in {ports[0]}..{ports[-1]} on {LIVE_HOST} ({last})")


def links(ws_url: str) -> dict[str, str]:
    """How to open `ws_url`: the address, the Foxglove web app and desktop app links."""
    query = urllib.parse.urlencode({"ds": "foxglove-websocket", "ds.url": ws_url})
    return {"url": ws_url, "foxglove_web": f"{FOXGLOVE_WEB}?{query}", "foxglove_desktop": f"{FOXGLOVE_DESKTOP}?{query}"}


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
