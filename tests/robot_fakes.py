"""A kinematic robot backend for daemon tests: moves instantly to its (clamped) target."""

from __future__ import annotations

import threading
import time

import numpy as np

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
    """Returns a base port such that base .. base+n-1 are free on 127.0.0.1."""
    import random
    import socket

    for _ in range(200):
        base = random.randint(20000, 60000)
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
