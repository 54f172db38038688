"""Sim-state thread (``--debug``): receives the simulator's state blob (~1 Hz) for the recording.

``frankateach-sim --sim-state-port`` publishes `SimStateSample`s; the newest one waits in the
shared state until the recorder puts it into a tick, which the writer records on ``/sim/state``
(what ``vla-arena run --from-recording FILE --at SECONDS`` starts from). The socket conflates, so
this costs the control loop nothing; an unreadable message is counted and logged, never fatal.
"""

from __future__ import annotations

import logging

import zmq

from frankateach.errors import ProtocolError
from frankateach.network import sub_socket
from frankateach.sim.state_message import decode_sim_state
from oculus_server.state import Counters, SimStateSlot
from oculus_server.threads.base import DaemonThread, Supervisor

log = logging.getLogger(__name__)


class SimStateThread(DaemonThread):
    """Subscribes to the simulator's state blobs on `host:port`."""

    def __init__(self, host: str, port: int, supervisor: Supervisor, sim: SimStateSlot, counters: Counters,
                 poll_s: float = 0.2, realtime_priority: int = 0) -> None:
        super().__init__("sim-state", supervisor, realtime_priority)
        self.sim, self.counters = sim, counters
        self.host, self.port, self.poll_s = host, int(port), poll_s
        self._sock: zmq.Socket | None = None
        self.received = 0

    def body(self) -> None:
        self._sock = sub_socket(self.host, self.port)
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        while not self.stop_event.is_set():
            if not poller.poll(int(self.poll_s * 1000)):
                continue
            data = self._sock.recv(zmq.NOBLOCK)
            try:
                sample = decode_sim_state(data)
            except ProtocolError as exc:
                self.counters.count("sim_state_errors")
                log.warning("unreadable simulator state on port %d: %s", self.port, exc)
                continue
            self.received += 1
            self.sim.set(sample)

    def cleanup(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
