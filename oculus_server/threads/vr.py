"""VR thread (50 Hz): polls the `VRSource` and publishes the newest sample to shared state."""

from __future__ import annotations

from oculus_server.constants import VR_FREQ
from oculus_server.state import RateBoard, VRChannel
from oculus_server.threads.base import RateThread, Supervisor
from oculus_server.threads.overrun import OverrunReporter
from oculus_server.vr.source import VRSource


class VRThread(RateThread):
    """Owns the VR source: only this thread calls `start`, `poll` and `close` on it."""

    def __init__(
        self, source: VRSource, supervisor: Supervisor, vr: VRChannel, rates: RateBoard, hz: float = VR_FREQ,
        realtime_priority: int = 0, overruns: OverrunReporter | None = None,
    ) -> None:
        super().__init__("vr", hz, supervisor, rates, realtime_priority=realtime_priority, overruns=overruns)
        self.source = source
        self.vr = vr

    def setup(self) -> None:
        self.source.start()

    def step(self) -> None:
        sample = self.source.poll()
        if sample is not None:
            self.vr.set_sample(sample)
        self.vr.set_status(self.source.status())

    def cleanup(self) -> None:
        self.source.close()
