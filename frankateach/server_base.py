"""The robot-server half of the protocol, shared by the MuJoCo simulator and the real arm.

A `RobotServer` wraps a `RobotBackend` (physics or hardware) and serves it exactly the same way:
REP on CONTROL_PORT, measured state PUB on STATE_PORT at 100 Hz, commanded-state PUB on
COMMANDED_STATE_PORT. A client therefore cannot tell the simulator from the real robot.

Bad requests (garbage, oversized, NaN, non-unit quaternions, unknown commands) get an error
reply; the server keeps running and the backend keeps holding its last valid target.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import replace

import numpy as np
import zmq

from frankateach.constants import (
    COMMANDED_STATE_PORT,
    CONTROL_PORT,
    GET_STATE,
    ROBOT_WORKSPACE_MAX,
    ROBOT_WORKSPACE_MIN,
    STATE_PORT,
    STATE_PUB_FREQ,
)
from frankateach.errors import FrankaTeachError
from frankateach.messages import Codec, FrankaAction, FrankaState, MsgpackCodec
from frankateach.network import Publisher, serve_rep
from frankateach.port_holder import PortInUseError
from frankateach.stop_event import StopEvent
from frankateach.thread_name import set_os_thread_name
from frankateach.timing import Ticker

log = logging.getLogger(__name__)


def clamp_to_workspace(pos: np.ndarray) -> np.ndarray:
    """Clamps a (3,) hand position (m, base frame) into Franka-Teach's workspace box."""
    return np.clip(np.asarray(pos, dtype=float), ROBOT_WORKSPACE_MIN, ROBOT_WORKSPACE_MAX)


class RobotBackend(ABC):
    """What a robot (simulated or real) must offer to be served."""

    name: str = "robot"

    @abstractmethod
    def read_state(self) -> FrankaState:
        """Returns the latest measured state (must be cheap: called at 100 Hz)."""

    @abstractmethod
    def apply_action(self, action: FrankaAction) -> None:
        """Makes `action` (already validated and workspace-clamped) the arm's target.

        May block for as long as the hardware needs to take the command.
        """

    @abstractmethod
    def commanded_state(self) -> FrankaState | None:
        """Returns the target being followed, as a state message, or None before any command."""

    def close(self) -> None:
        """Releases the hardware or simulation."""


class RobotServer:
    """Serves a `RobotBackend` over the Franka-Teach ports until `stop()`.

    Args:
        backend: the simulated or real robot.
        host: interface to bind ("127.0.0.1" for tests, "0.0.0.0" to serve a network).
        codec: wire codec (msgpack by default; pickle for Franka-Teach clients).
        latency_s: extra delay before each action reply, emulating a slow controller.
        ports: (control, state, commanded) ports.
    """

    def __init__(
        self,
        backend: RobotBackend,
        host: str = "127.0.0.1",
        codec: Codec | None = None,
        latency_s: float = 0.0,
        ports: tuple[int, int, int] = (CONTROL_PORT, STATE_PORT, COMMANDED_STATE_PORT),
        state_hz: float = STATE_PUB_FREQ,
    ) -> None:
        self.backend = backend
        self.host = host
        self.codec = codec or MsgpackCodec()
        self.latency_s = float(latency_s)
        self.control_port, self.state_port, self.commanded_port = ports
        self.state_hz = state_hz
        self.stop_event = StopEvent()
        self.requests = 0
        self.errors = 0
        self.last_error = ""
        self._threads: list[threading.Thread] = []
        self._commanded_pub: Publisher | None = None

    # -- request handling ---------------------------------------------------------------------
    def handle(self, data: bytes) -> bytes:
        """Answers one request; never raises (errors become error replies)."""
        self.requests += 1
        try:
            request = self.codec.decode_request(data)
            if request == GET_STATE:
                return self.codec.encode(self.backend.read_state())
            assert isinstance(request, FrankaAction)
            action = replace(request, pos=clamp_to_workspace(request.pos))
            self.backend.apply_action(action)
            if self._commanded_pub is not None:
                commanded = self.backend.commanded_state()
                if commanded is not None:
                    self._commanded_pub.publish(self.codec.encode_commanded_feed(commanded))
            if self.latency_s > 0:
                time.sleep(self.latency_s)
            return self.codec.encode(self.backend.read_state())
        except FrankaTeachError as exc:
            return self._error(str(exc))
        except Exception as exc:  # a backend bug must not kill the server or wedge the client
            log.exception("robot backend failed on a request")
            return self._error(f"internal error: {exc.__class__.__name__}: {exc}")

    def _error(self, message: str) -> bytes:
        """An error reply; it carries the current state when there is one, so that peers which
        can only read a state (unmodified Franka-Teach clients, pickle codec) survive it."""
        self.errors += 1
        self.last_error = message
        log.warning("rejected request: %s", message)
        try:
            state: FrankaState | None = self.backend.read_state()
        except Exception:  # noqa: BLE001 - no state to attach: the codec's bare error reply
            state = None
        return self.codec.encode_error(message, state)

    # -- threads --------------------------------------------------------------------------------
    def _publish_state(self, pub: Publisher) -> None:
        set_os_thread_name("state-pub")
        ticker = Ticker(self.state_hz, name="state-pub")
        try:
            while ticker.wait(self.stop_event):
                try:
                    pub.publish(self.codec.encode_state_feed(self.backend.read_state()))
                except FrankaTeachError as exc:  # e.g. no state yet: skip this tick, keep going
                    log.debug("state publisher skipped a tick: %s", exc)
        finally:
            pub.close()

    def start(self) -> None:
        """Binds all sockets and starts serving in background threads.

        Raises:
            PortInUseError: a port is taken (raised here, not in a thread; names the holder).
            FrankaTeachError: the control port could not be bound.
        """
        # Bind the publishers here so a port clash fails loudly instead of killing a thread.
        state_pub = Publisher(self.host, self.state_port, role="state")
        try:
            self._commanded_pub = Publisher(self.host, self.commanded_port, role="commanded state")
        except Exception:
            state_pub.close()
            raise
        ready = threading.Event()
        bind_error: list[BaseException] = []

        def serve() -> None:
            set_os_thread_name("rep")
            try:
                serve_rep(self.host, self.control_port, self.handle, self.stop_event, ready=ready)
            except (zmq.ZMQError, FrankaTeachError) as exc:  # bind failed (or the socket died)
                bind_error.append(exc)
                if ready.is_set():
                    log.error("control socket failed: %s", exc)

        rep = threading.Thread(target=serve, name="rep", daemon=True)
        pub = threading.Thread(
            target=self._publish_state, args=(state_pub,), name="state-pub", daemon=True
        )
        self._threads = [rep, pub]
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + 5.0
        while not ready.wait(0.05):
            if not rep.is_alive() or time.monotonic() > deadline:  # the bind raised in the thread
                self.stop()
                if bind_error and isinstance(bind_error[0], PortInUseError):
                    raise bind_error[0]
                cause = f": {bind_error[0]}" if bind_error else ""
                raise FrankaTeachError(
                    f"could not bind control port {self.control_port} on {self.host}{cause}"
                )
        log.info(
            "%s serving on %s (control %d, state %d, commanded %d, codec %s, latency %.0f ms)",
            self.backend.name,
            self.host,
            self.control_port,
            self.state_port,
            self.commanded_port,
            self.codec.name,
            self.latency_s * 1e3,
        )

    def stop(self) -> None:
        """Stops serving and joins the threads (the backend keeps holding its target)."""
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=2.0)
        if self._commanded_pub is not None:
            self._commanded_pub.close()
            self._commanded_pub = None
