"""Robot fakes for daemon tests: a kinematic backend (moves instantly to its clamped target), a
backend that reports states of its choosing, and a server that logs what arrives on the wire."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from frankateach.constants import GET_STATE
from frankateach.messages import FrankaAction, FrankaState
from frankateach.server_base import RobotBackend, RobotServer


class KinematicBackend(RobotBackend):
    """Teleports to each target; records every action it was given."""

    name = "kinematic-test-robot"

    def __init__(self, pos=(0.45, 0.0, 0.3), quat=(1.0, 0.0, 0.0, 0.0), delay_s: float = 0.0) -> None:
        self.pos = np.array(pos, dtype=float)
        self.quat = np.array(quat, dtype=float)
        self.gripper = -1.0
        self.delay_s = delay_s
        self.actions: list[FrankaAction] = []
        self._lock = threading.Lock()

    def read_state(self) -> FrankaState:
        with self._lock:
            return FrankaState(self.pos.copy(), self.quat.copy(), self.gripper, time.time(), True, np.zeros(7))

    def apply_action(self, action: FrankaAction) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.actions.append(action)
            self.pos = np.array(action.pos, dtype=float)
            self.quat = np.array(action.quat, dtype=float)
            self.gripper = float(action.gripper)

    def commanded_state(self) -> FrankaState | None:
        return None


def free_port_block(n: int = 3) -> int:
    """Returns a base port such that base .. base+n-1 are free on 127.0.0.1.

    Drawn from the OS's entropy, not the `random` module: pytest-randomly reseeds `random` with the
    same seed before every test, in every xdist worker, so two workers would draw the same ports.
    Below Linux's ephemeral range (32768-60999), so no connection's local port takes them meanwhile.
    """
    import random
    import socket

    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randint(20000, 32000)
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block found")


def start_robot_server(backend: RobotBackend, port: int, latency_s: float = 0.0) -> RobotServer:
    """Serves `backend` on 127.0.0.1: control `port`, state `port+1`, commanded `port+2`."""
    server = RobotServer(backend, "127.0.0.1", latency_s=latency_s, ports=(port, port + 1, port + 2))
    server.start()
    return server


Lie = Callable[[float, np.ndarray], "tuple[Sequence[float], Sequence[float]] | None"]


class HostileBackend(KinematicBackend):
    """A kinematic robot that *reports* whatever `script(t, true_pos)` returns.

    `t` is seconds since the backend was made; `script` returns (pos, quat xyzw) to report, or None
    to report the truth. The arm itself still teleports to each target it is given (`actions`).
    """

    name = "hostile-test-robot"

    def __init__(self, script: Lie, pos=(0.45, 0.0, 0.3), quat=(1.0, 0.0, 0.0, 0.0)) -> None:
        super().__init__(pos=pos, quat=quat)
        self.script = script
        self.t0 = time.monotonic()
        self.lies = 0

    def read_state(self) -> FrankaState:
        truth = super().read_state()
        lie = self.script(time.monotonic() - self.t0, truth.pos.copy())
        if lie is None:
            return truth
        self.lies += 1
        return FrankaState(np.array(lie[0], dtype=float), np.array(lie[1], dtype=float), truth.gripper,
                           truth.timestamp, True, truth.joint_positions)


class WireLogServer(RobotServer):
    """A `RobotServer` that keeps every action exactly as it arrived (before the server's clamp).

    `wire` holds (monotonic receive time, FrankaAction) pairs.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.wire: list[tuple[float, FrankaAction]] = []
        self._wire_lock = threading.Lock()

    def handle(self, data: bytes) -> bytes:
        if bytes(data) != GET_STATE:
            try:
                action = self.codec.decode_request(data)
            except Exception:  # noqa: BLE001 - the base class answers the error
                action = None
            if isinstance(action, FrankaAction):
                with self._wire_lock:
                    self.wire.append((time.monotonic(), action))
        return super().handle(data)

    def actions(self) -> list[tuple[float, FrankaAction]]:
        with self._wire_lock:
            return list(self.wire)


def start_wire_log_server(backend: RobotBackend, port: int, latency_s: float = 0.0) -> WireLogServer:
    """Like `start_robot_server`, logging every action that arrives."""
    server = WireLogServer(backend, "127.0.0.1", latency_s=latency_s, ports=(port, port + 1, port + 2))
    server.start()
    return server
