"""The daemon's view of a robot: one client for the MuJoCo simulator and the real arm alike."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from frankateach.constants import CONTROL_PORT, GET_STATE, REQUEST_TIMEOUT_S
from frankateach.messages import Codec, FrankaAction, FrankaState, MsgpackCodec
from frankateach.network import ReqClient


class RobotClient:
    """Sends `FrankaAction`s and state queries over REQ/REP and measures the round trip.

    Every call has a timeout; on timeout the socket is rebuilt and `RobotTimeoutError` raised.
    An error reply raises `RobotServerError`; a malformed reply raises `ProtocolError`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = CONTROL_PORT,
        codec: Codec | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
        latency_window: int = 200,
    ) -> None:
        self.codec = codec or MsgpackCodec()
        self._req = ReqClient(host, port, timeout_s=timeout_s)
        self._rtts: deque[float] = deque(maxlen=latency_window)
        self._lock = threading.Lock()

    def _call(self, payload: bytes, timeout_s: float | None = None) -> FrankaState:
        reply = self._req.request(payload, timeout_s)
        with self._lock:
            self._rtts.append(self._req.last_rtt_s)
        return self.codec.decode_reply(reply)

    def get_state(self) -> FrankaState:
        """Asks for the measured state."""
        return self._call(GET_STATE)

    def send(self, action: FrankaAction, timeout_s: float | None = None) -> FrankaState:
        """Sends a target and returns the state the server replied with.

        `timeout_s` overrides the client's timeout for this call (a real reset takes seconds).
        """
        return self._call(self.codec.encode(action), timeout_s)

    def latency_stats(self) -> tuple[float, float, float]:
        """Returns (last, mean, p95) round trip over the recent window, seconds (NaN if none)."""
        with self._lock:
            rtts = np.fromiter(self._rtts, dtype=float)
        if not rtts.size:
            return (float("nan"),) * 3
        return float(rtts[-1]), float(rtts.mean()), float(np.percentile(rtts, 95))

    @property
    def timeouts(self) -> int:
        return self._req.timeouts

    def close(self) -> None:
        self._req.close()
