"""VR thread (50 Hz): polls the `VRSource` and publishes the newest sample to shared state."""

from __future__ import annotations

from oculus_server.constants import VR_FREQ
from oculus_server.state import SharedState
from oculus_server.threads.base import RateThread, Supervisor
from oculus_server.vr.source import VRSource


class VRThread(RateThread):
    """Owns the VR source: only this thread calls `start`, `poll` and `close` on it."""

    def __init__(
        self, source: VRSource, supervisor: Supervisor, state: SharedState, hz: float = VR_FREQ,
        realtime_priority: int = 0,
    ) -> None:
        super().__init__("vr", hz, supervisor, state, realtime_priority=realtime_priority)
        self.source = source

    def setup(self) -> None:
        self.source.start()

    def step(self) -> None:
        sample = self.source.poll()
        if sample is not None:
            self.state.set_vr(sample)
        self.state.set_vr_status(self.source.status())

    def cleanup(self) -> None:
        self.source.close()
