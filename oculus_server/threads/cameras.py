"""Camera thread: subscribes to the robot server's JPEG camera ports, keeps the newest frame.

Frames are never decoded here (the bytes go to the recording as-is), and the sockets conflate,
so camera traffic costs the control loop nothing.
"""

from __future__ import annotations

import logging
import time

import zmq

from frankateach.constants import CAM_PORT_OFFSET
from frankateach.errors import ProtocolError
from frankateach.messages import decode_camera_frame
from frankateach.network import endpoint
from frankateach.timing import RateStats
from oculus_server.state import SharedState
from oculus_server.threads.base import DaemonThread, Supervisor

log = logging.getLogger(__name__)


class CameraThread(DaemonThread):
    """Receives frames from cameras `ids` on `host` (ports CAM_PORT_OFFSET + id)."""

    def __init__(
        self,
        host: str,
        ids: list[int],
        supervisor: Supervisor,
        state: SharedState,
        port_offset: int = CAM_PORT_OFFSET,
        poll_s: float = 0.1,
        realtime_priority: int = 0,
    ) -> None:
        super().__init__("cameras", supervisor, state, realtime_priority)
        self.host = host
        self.ids = ids
        self.port_offset = port_offset
        self.poll_s = poll_s
        self.stats = RateStats("cameras", 0.0)
        state.register_rate(self.stats)
        self._ctx = zmq.Context.instance()
        self._socks: list[zmq.Socket] = []

    def body(self) -> None:
        poller = zmq.Poller()
        for cam_id in self.ids:
            s = self._ctx.socket(zmq.SUB)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.CONFLATE, 1)
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.connect(endpoint(self.host, self.port_offset + cam_id))
            poller.register(s, zmq.POLLIN)
            self._socks.append(s)
        while not self.stop_event.is_set():
            for sock, _ in poller.poll(int(self.poll_s * 1000)):
                data = sock.recv(zmq.NOBLOCK)
                try:
                    frame = decode_camera_frame(data)
                except ProtocolError as exc:
                    self.state.count("camera_errors")
                    log.debug("bad camera frame: %s", exc)
                    continue
                self.stats.tick(time.monotonic())
                self.state.add_frame(frame)

    def cleanup(self) -> None:
        for s in self._socks:
            s.close(linger=0)
