"""Live-sink thread: maps ticks with the recording's `TickMapper` and publishes them.

It runs in the live-view process (`oculus_server.threads.live_process`), never in the daemon:
the daemon forwards the recorder's ticks there and this thread maps and encodes them (the same
`TickMapper` + `ScenePainter` the recording's writer uses, so the bytes are the file's) and talks
to the `LiveServer`. `offer_tick` never blocks: with nobody subscribed it returns at once, and a
full queue drops the tick and counts it (`live_ticks_dropped`), so a slow viewer can never hold up
whoever offers.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from oculus_server.threads.base import DaemonThread, Supervisor
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.live import LiveServer
from robot_formats.recording.mapping import TickMapper
from robot_formats.recording.records import RecordTick

log = logging.getLogger(__name__)

LIVE_QUEUE_SIZE = 80  # ticks: 2 s at 40 Hz


class LiveCounters(Protocol):
    """Where the live sink's figures go (`oculus_server.state.Counters`, or the live process's relay)."""

    def count(self, name: str, n: int = 1) -> None:
        """Adds `n` to counter `name`."""
        ...

    def set_queue_depth(self, name: str, depth: int) -> None:
        """Sets gauge ``queue_<name>``."""
        ...


def offer(q: queue.Queue[RecordTick], tick: RecordTick, counters: LiveCounters) -> None:
    """Queues `tick` without waiting: a full queue drops it, counted as ``live_ticks_dropped``."""
    try:
        q.put_nowait(tick)
    except queue.Full:
        counters.count("live_ticks_dropped")


class LiveSinkThread(DaemonThread):
    """Owns the `LiveServer` from `open` to stop; maps and publishes the ticks offered.

    Args:
        server_factory: binds the server (called by `open`, before the threads start).
        mapper_factory: a fresh `TickMapper` (with the 3D scene) for each viewing session.
        counters: where sent / dropped counts and the live queue's figures go.
    """

    def __init__(self, server_factory: Callable[[], LiveServer], mapper_factory: Callable[[], TickMapper],
                 supervisor: Supervisor, counters: LiveCounters, queue_size: int = LIVE_QUEUE_SIZE) -> None:
        super().__init__("live-sink", supervisor, realtime_priority=0)
        self._factory = server_factory
        self._mapper_factory = mapper_factory
        self._mapper: TickMapper | None = None
        self.counters = counters
        self.server: LiveServer | None = None
        self.error = ""
        self.map_errors = 0
        self.queue: queue.Queue[RecordTick] = queue.Queue(maxsize=queue_size)

    def open(self) -> bool:
        """Binds the server; False (the reason in `error`, logged) when it cannot serve."""
        try:
            self.server = self._factory()
        except RecordingError as exc:
            self.error = str(exc)
            log.error("%s", exc)
            return False
        return True

    @property
    def wanted(self) -> bool:
        """A client is subscribed to something: worth building ticks for (a lock-free read)."""
        server = self.server
        return server is not None and server.wanted

    def offer_tick(self, tick: RecordTick) -> None:
        """Queues a tick for the viewers; never blocks (a full queue drops it, counted)."""
        if self.wanted:
            offer(self.queue, tick, self.counters)

    def body(self) -> None:
        server = self.server
        if server is None:
            raise RecordingError("the live view was started without a server (call open() first)")
        while not self.stop_event.is_set():
            try:
                tick = self.queue.get(timeout=0.1)
            except queue.Empty:
                tick = None
            if not server.wanted:
                self._mapper = None  # the next viewer gets calibrations and the scene afresh
            elif tick is not None:
                self._publish(server, tick)
            self.counters.set_queue_depth("live", self.queue.qsize())
            self.counters.set_queue_depth("live_subscriptions", server.subscriptions)
            self.counters.set_queue_depth("live_client_overflows", server.client_overflows)

    def _publish(self, server: LiveServer, tick: RecordTick) -> None:
        try:
            if self._mapper is None:
                self._mapper = self._mapper_factory()
            sent = server.publish(self._mapper.tick(tick))
        except Exception:  # a viewer's problem is never the daemon's
            self.map_errors += 1
            if self.map_errors <= 3:
                log.exception("live view: a tick could not be published")
            return
        if sent:
            self.counters.count("live_messages", sent)

    def cleanup(self) -> None:
        # The SDK's stop waits for each client's close handshake (seconds for one that stopped
        # reading): it finishes in a thread of its own so the daemon's shutdown never waits on it.
        if self.server is not None:
            stopper = threading.Thread(target=self.server.stop, name="live-stop", daemon=True)
            stopper.start()
            stopper.join(timeout=0.5)
