"""Runs `frankateach-sim` as a child process for --debug, and stops it on exit.

The child never outlives this process: it is told our pid (``--parent-pid``) and exits within
1 s of our death, whatever killed us (see `frankateach.lifeline`). Before starting it, the ports it
needs are checked; a port in use is reported with the process holding it and how to free it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from frankateach.constants import (
    CAM_PORT_OFFSET,
    COMMANDED_STATE_PORT,
    CONTROL_PORT,
    SIM_CAMERAS,
    SIM_STATE_PORT,
    STATE_PORT,
)
from frankateach.lifeline import stop_child
from frankateach.port_holder import PortInUseError, check_ports_free
from oculus_server.child_process import lifeline_args, log_tail, stop_on_interrupt
from oculus_server.errors import OculusServerError

log = logging.getLogger(__name__)

SIM_HOST = "127.0.0.1"


def sim_state_port_for(control_port: int) -> int:
    """The simulator's state-blob PUB port for a control port (shifted with it, like the others)."""
    return SIM_STATE_PORT + (control_port - CONTROL_PORT)


class SimProcess:
    """A `frankateach-sim` child on loopback. Its log goes to `log_path`.

    Args:
        latency_ms: round-trip delay the simulator emulates (deoxys is ~150 ms).
        cameras: render and publish the front and wrist cameras.
        control_port: REP port; the state and commanded ports follow the Franka-Teach layout
            relative to it (control − 1, control + 1) and cameras at `camera_port_offset` + id.
        codec: the daemon's wire codec, so both ends speak it ("pickle": Franka-Teach's format,
            cameras included).
        camera_nice: nice value of the simulator's camera renderer (config ``helper_nice``): the
            rendering gives way to the daemon's loops and the simulator's answers.
    """

    def __init__(
        self,
        latency_ms: float,
        cameras: bool = True,
        control_port: int = CONTROL_PORT,
        camera_port_offset: int = CAM_PORT_OFFSET,
        log_path: Path | None = None,
        extra_args: list[str] | None = None,
        codec: str = "msgpack",
        camera_nice: int = 0,
    ) -> None:
        self.latency_ms = latency_ms
        self.cameras = cameras
        self.control_port = control_port
        self.camera_port_offset = camera_port_offset
        self.log_path = log_path or Path("logs") / "frankateach-sim.log"
        self.extra_args = extra_args or []
        self.codec = codec
        self.camera_nice = camera_nice
        self.proc: subprocess.Popen | None = None

    def ports(self) -> dict[str, int]:
        """Role -> port of every port the simulator binds."""
        delta = self.control_port - CONTROL_PORT
        ports = {
            "robot control": self.control_port,
            "robot state": STATE_PORT + delta,
            "commanded state": COMMANDED_STATE_PORT + delta,
            "sim state": sim_state_port_for(self.control_port),
        }
        if self.cameras:
            ports.update({f"camera {name}": self.camera_port_offset + i for i, name in enumerate(SIM_CAMERAS)})
        return ports

    def command(self) -> list[str]:
        ports = self.ports()
        return [
            sys.executable, "-m", "frankateach.sim.server",
            "--host", SIM_HOST,
            "--latency-ms", str(self.latency_ms),
            "--control-port", str(ports["robot control"]),
            "--state-port", str(ports["robot state"]),
            "--commanded-port", str(ports["commanded state"]),
            "--sim-state-port", str(ports["sim state"]),
            "--camera-port-offset", str(self.camera_port_offset),
            "--cameras" if self.cameras else "--no-cameras",
            "--codec", self.codec,
            "--camera-nice", str(self.camera_nice),
            *lifeline_args(),
            *self.extra_args,
        ]

    def start(self, timeout_s: float = 60.0, check: Callable[[], None] | None = None) -> None:
        """Starts the simulator and waits until it logs that it is ready.

        Raises:
            OculusServerError: a port is in use (naming its holder), or the simulator exited or
                was not ready within `timeout_s` (with the tail of its log).
            SystemExit: 130 when interrupted (Ctrl-C) while waiting: the simulator is stopped
                and the program exits quietly, as after any Ctrl-C.

        `check` is called every poll (0.1 s) while waiting; what it raises (e.g. a recorded stop
        signal's KeyboardInterrupt, `SignalFlag.raise_if_requested`) stops the simulator likewise.
        """
        try:
            check_ports_free(SIM_HOST, self.ports())
        except PortInUseError as exc:
            raise OculusServerError(
                f"cannot start the simulator: {exc} (`--robot-port N` moves the simulator's robot "
                "ports to N-1..N+1)"
            ) from None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "wb")
        env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), PYTHONUNBUFFERED="1")
        # Mesa's software renderer (llvmpipe) otherwise renders each frame on every core at once,
        # starving the daemon's loops for ~10-20 ms per frame on a 2-core laptop.
        env.setdefault("LP_NUM_THREADS", "1")
        deadline = time.monotonic() + timeout_s
        with stop_on_interrupt(self.stop, "the simulator"):
            try:
                self.proc = subprocess.Popen(
                    self.command(), stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, start_new_session=True,
                )
            finally:
                logf.close()
            while time.monotonic() < deadline:
                if check is not None:
                    check()
                if self.proc.poll() is not None:
                    raise OculusServerError(
                        f"frankateach-sim exited with code {self.proc.returncode} during start-up; "
                        f"see {self.log_path}:\n{self.tail()}"
                    )
                if b"frankateach-sim ready" in self.log_path.read_bytes():
                    log.info("frankateach-sim started (pid %d, latency %.0f ms, log %s)",
                             self.proc.pid, self.latency_ms, self.log_path)
                    return
                time.sleep(0.1)
        self.stop()
        raise OculusServerError(f"frankateach-sim not ready after {timeout_s:.0f} s; see {self.log_path}")

    def tail(self, n: int = 20) -> str:
        """The last `n` lines of the simulator's log."""
        return log_tail(self.log_path, n)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 3.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit within `timeout_s`."""
        stop_child(self.proc, timeout_s)
