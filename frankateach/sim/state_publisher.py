"""Publishes the simulator's state blob on a PUB port about once a second (``--sim-state-port``).

Each sample is taken under the physics lock (`state_blob.capture`), so it is a consistent state
the arena can continue bit for bit; the loop wakes on absolute deadlines and stops with its event.
"""

from __future__ import annotations

import logging
import threading
import time

from frankateach.network import Publisher
from frankateach.sim import state_blob as SB
from frankateach.sim.backend import SimBackend
from frankateach.sim.state_message import SimStateSample
from frankateach.thread_name import set_os_thread_name
from frankateach.timing import Ticker

log = logging.getLogger(__name__)


class SimStatePublisher:
    """A thread publishing `SimStateSample`s of `backend` on `host:port` every `period_s`."""

    def __init__(self, backend: SimBackend, host: str, port: int, period_s: float) -> None:
        if not period_s > 0:
            raise ValueError(f"sim state period must be > 0 s, got {period_s}")
        self.backend = backend
        self.period_s = float(period_s)
        self._pub = Publisher(host, port, role="sim state publisher")
        self._hash = SB.backend_scene_hash(backend).hex()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-state", daemon=True)
        self.published = 0

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> SimStateSample:
        snap = SB.capture(self.backend)
        return SimStateSample(snap.time, snap.physics_step, time.time(), self._hash, SB.encode(snap))

    def _run(self) -> None:
        set_os_thread_name("sim-state")
        ticker = Ticker(1.0 / self.period_s, name="sim-state")
        while ticker.wait(self._stop):
            try:
                self._pub.publish(self.sample().encode())
                self.published += 1
            except Exception:  # a failed sample must not stop the simulator
                log.exception("sim state sample failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._pub.close()
