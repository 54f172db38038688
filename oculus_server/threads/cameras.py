"""Camera thread: subscribes to the robot server's camera ports, keeps the newest frame.

Reads this project's msgpack frames and Franka-Teach's ``rgb_image`` frames alike (detected per
message; Franka-Teach's pickles go through the restricted unpickler, never plain pickle). JPEGs are
never decoded here (the bytes go to the recording as-is), and the sockets conflate, so camera
traffic costs the control loop nothing.

A frame that cannot be read is counted (``camera_errors``), logged as a warning and reported as
an ``error`` event (shown on the dashboard, written to the recording's ``/events``) — the first
one per camera at once, then at most one summary per camera every `ERROR_REPORT_PERIOD_S`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import zmq

from frankateach.camera_format import CameraDecoder
from frankateach.constants import CAM_PORT_OFFSET
from frankateach.errors import ProtocolError
from frankateach.network import sub_socket
from frankateach.timing import RateStats
from oculus_server.state import CameraFrames, Counters, EventLog, RateBoard
from oculus_server.threads.base import DaemonThread, Supervisor

log = logging.getLogger(__name__)

ERROR_REPORT_PERIOD_S = 10.0  # at most one camera-error report per camera this often


class CameraErrorReporter:
    """Turns camera decode errors into warnings and events without flooding either.

    Args:
        counters: where errors are counted.
        events: where reports go.
        period_s: minimum time between two reports for one camera, seconds.
        clock: monotonic clock, seconds (injectable for tests).
    """

    def __init__(self, counters: Counters, events: EventLog, period_s: float = ERROR_REPORT_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.counters = counters
        self.events = events
        self.period_s = period_s
        self._clock = clock
        self._last_report: dict[int, float] = {}
        self._unreported: dict[int, int] = {}
        self.total = 0

    def error(self, camera_id: int, port: int, exc: Exception) -> None:
        """Counts one unreadable message from `camera_id`; reports it if the period allows."""
        self.total += 1
        self.counters.count("camera_errors")
        self._unreported[camera_id] = self._unreported.get(camera_id, 0) + 1
        now = self._clock()
        last = self._last_report.get(camera_id)
        if last is not None and now - last < self.period_s:
            return
        n = self._unreported.pop(camera_id)
        self._last_report[camera_id] = now
        what = "unreadable frame" if n == 1 else f"{n} unreadable frames"
        message = f"camera {camera_id} (port {port}): {what}: {exc}"
        log.warning("%s", message)
        self.events.add("error", message, camera=camera_id, port=port, frames=n)


class CameraThread(DaemonThread):
    """Receives frames from cameras `ids` on `host` (ports ``port_offset + id``).

    Args:
        frames: where frames go; counters, events: where errors are counted and reported.
        rates: where the receive rate is shown.
        names: name per camera id for frames that carry none (Franka-Teach's); default ``cam_<id>``.
    """

    def __init__(
        self,
        host: str,
        ids: list[int],
        supervisor: Supervisor,
        frames: CameraFrames,
        counters: Counters,
        events: EventLog,
        rates: RateBoard,
        port_offset: int = CAM_PORT_OFFSET,
        poll_s: float = 0.1,
        realtime_priority: int = 0,
        names: dict[int, str] | None = None,
    ) -> None:
        super().__init__("cameras", supervisor, realtime_priority)
        self.frames = frames
        self.host = host
        self.ids = ids
        self.port_offset = port_offset
        self.poll_s = poll_s
        self.stats = RateStats("cameras", 0.0)
        rates.register(self.stats)
        self.errors = CameraErrorReporter(counters, events)
        self.decoders = {i: CameraDecoder(i, (names or {}).get(i)) for i in ids}
        self._ctx: zmq.Context = zmq.Context.instance()
        self._socks: dict[zmq.Socket, int] = {}

    def body(self) -> None:
        poller = zmq.Poller()
        for cam_id in self.ids:
            s = sub_socket(self.host, self.port_offset + cam_id, conflate=True, context=self._ctx)
            poller.register(s, zmq.POLLIN)
            self._socks[s] = cam_id
        while not self.stop_event.is_set():
            for sock, _ in poller.poll(int(self.poll_s * 1000)):
                cam_id = self._socks[sock]
                data = sock.recv(zmq.NOBLOCK)
                try:
                    frame = self.decoders[cam_id].decode(data)
                except ProtocolError as exc:
                    self.errors.error(cam_id, self.port_offset + cam_id, exc)
                    continue
                if frame is None:  # a Franka-Teach non-image topic (intrinsics, depth)
                    continue
                self.stats.tick(time.monotonic())
                self.frames.add(frame)

    def cleanup(self) -> None:
        for s in self._socks:
            s.close(linger=0)
