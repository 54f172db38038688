"""`frankateach-sim`: the MuJoCo Panda served over the Franka-Teach ports.

In-process use (tests, benchmarks)::

    sim = start_sim_server(cameras=False)          # free ports on 127.0.0.1
    client = RobotClient(port=sim.ports.control)
    ...
    sim.stop()

Command line: ``frankateach-sim --latency-ms 150 --no-cameras`` (see ``--help``). It logs one
line containing "ready" once every port is bound and state is flowing, an "alive" status line
every few seconds, and exits cleanly on SIGINT/SIGTERM or after ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from frankateach.constants import (
    CAM_PORT_OFFSET,
    COMMANDED_STATE_PORT,
    CONTROL_PORT,
    SIM_CAMERA_FPS,
    SIM_CAMERA_HEIGHT,
    SIM_CAMERA_WIDTH,
    SIM_CAMERAS,
    SIM_STATE_PERIOD_S,
    STATE_PORT,
    STATUS_LOG_PERIOD_S,
)
from frankateach.errors import FrankaTeachError, HardwareUnavailableError
from frankateach.lifeline import ParentWatch
from frankateach.messages import make_codec
from frankateach.network import Subscriber
from frankateach.server_base import RobotServer
from frankateach.signals import SignalFlag
from frankateach.sim.backend import SimBackend
from frankateach.sim.cameras import CameraStreamer
from frankateach.sim.model import build_model
from frankateach.sim.render_worker import CameraConfig
from frankateach.sim.state_publisher import SimStatePublisher

log = logging.getLogger("frankateach.sim")

READY_TIMEOUT_S = 10.0  # first state message must arrive within this after binding


@dataclass(frozen=True)
class SimPorts:
    """The ports a sim server uses (camera i on ``camera_offset + i``)."""

    control: int = CONTROL_PORT
    state: int = STATE_PORT
    commanded: int = COMMANDED_STATE_PORT
    camera_offset: int = CAM_PORT_OFFSET


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def find_free_ports(host: str = "127.0.0.1", n_cameras: int = len(SIM_CAMERAS)) -> SimPorts:
    """Picks currently free ports: three single ports and a block of `n_cameras` for cameras.

    Another process may still take a port before it is bound; `start_sim_server` retries.
    """
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - max(n_cameras, 1))
        if all(_port_free(host, base + i) for i in range(3 + max(n_cameras, 0))):
            return SimPorts(base, base + 1, base + 2, base + 3)
    raise FrankaTeachError(f"could not find {3 + n_cameras} free consecutive ports on {host}")


@dataclass
class SimServer:
    """A running simulator server (backend + RobotServer + optional camera process).

    Attributes:
        backend: the simulated arm, stepping in real time.
        server: the protocol server.
        ports: where it listens.
        cameras: the camera streamer, or None (disabled or unavailable).
        camera_error: why cameras are off when they were asked for ("" otherwise).
    """

    backend: SimBackend
    server: RobotServer
    ports: SimPorts
    cameras: CameraStreamer | None = None
    camera_error: str = ""
    state_publisher: SimStatePublisher | None = None  # --sim-state-port: the state blob, ~1 Hz

    def stop(self) -> None:
        """Stops serving, the cameras and the physics thread (idempotent)."""
        if self.state_publisher is not None:
            self.state_publisher.stop()
            self.state_publisher = None
        self.server.stop()
        if self.cameras is not None:
            self.backend.remove_qpos_listener(self.cameras.push)
            self.cameras.stop()
        self.backend.close()

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status_line(self) -> str:
        """One-line health summary (real-time factor, requests, errors, camera fps)."""
        b, s = self.backend, self.server
        cams = (
            " ".join(f"{k}={v:.1f}fps" for k, v in self.cameras.fps().items())
            if self.cameras is not None
            else f"off{' (' + self.camera_error + ')' if self.camera_error else ''}"
        )
        physics = "" if b.running else "PHYSICS STOPPED "
        return (
            f"alive: {physics}sim_t={b.sim_time:.1f}s rtf={b.realtime_factor():.3f} "
            f"step={b.mean_step_us():.0f}us dropped_steps={b.dropped_steps} "
            f"requests={s.requests} errors={s.errors} cameras: {cams}"
        )


def _wait_for_state(host: str, port: int, timeout_s: float) -> None:
    """Blocks until one state message arrives on the state PUB port (proves it is bound)."""
    sub = Subscriber(host, port)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sub.recv(0.2) is not None:
                return
        raise FrankaTeachError(f"no state published on {host}:{port} within {timeout_s:.0f} s")
    finally:
        sub.close()


def start_sim_server(
    host: str = "127.0.0.1",
    ports: SimPorts | None = None,
    codec: str = "msgpack",
    latency_ms: float = 0.0,
    cameras: bool = False,
    camera_fps: float = SIM_CAMERA_FPS,
    camera_width: int = SIM_CAMERA_WIDTH,
    camera_height: int = SIM_CAMERA_HEIGHT,
    require_cameras: bool = False,
    gl_backends: Sequence[str] | None = None,
    sim_state_port: int | None = None,
    sim_state_period_s: float = SIM_STATE_PERIOD_S,
    camera_nice: int = 0,
) -> SimServer:
    """Starts a simulator server in this process and returns once it serves.

    With `sim_state_port`, the simulator's state blob (`frankateach.sim.state_blob`) is also
    published there every `sim_state_period_s` (see `frankateach.sim.state_message`).

    Args:
        host: interface to bind.
        ports: ports to use; None picks free ones (retrying if one is taken meanwhile).
        codec: "msgpack" or "pickle" (Franka-Teach's wire: pickled records, their topic
            prefixes on the state feeds, ``rgb_image`` camera frames).
        latency_ms: extra delay before each action reply, ms.
        cameras: render and publish the front and wrist cameras.
        camera_fps, camera_width, camera_height: camera rate (Hz) and image size (pixels).
        require_cameras: raise instead of running without cameras when rendering fails.
        gl_backends: MUJOCO_GL values to try for the cameras (default: $MUJOCO_GL, egl, osmesa).
        camera_nice: nice value of the camera render process (0–19; 0: this process's).

    Raises:
        ProtocolError: unknown codec.
        FrankaTeachError: a port could not be bound or no state flowed.
        HardwareUnavailableError: cameras required but rendering unavailable.
    """
    make_codec(codec)  # an unknown codec is the caller's error: raise ProtocolError now
    attempts = 3 if ports is None else 1
    last: Exception | None = None
    for _ in range(attempts):
        chosen = ports or find_free_ports(host)
        try:
            sim = _start(host, chosen, codec, latency_ms, cameras, camera_fps, camera_width,
                         camera_height, require_cameras, gl_backends, camera_nice)
            if sim_state_port:
                try:
                    sim.state_publisher = SimStatePublisher(sim.backend, host, sim_state_port, sim_state_period_s)
                    sim.state_publisher.start()
                except BaseException:
                    sim.stop()
                    raise
            return sim
        except HardwareUnavailableError:
            raise
        except Exception as exc:  # e.g. a port taken between the check and the bind
            last = exc
            log.warning("sim server start on %s failed: %s", chosen, exc)
    raise FrankaTeachError(f"could not start the sim server: {last}")


def _start(
    host: str, ports: SimPorts, codec: str, latency_ms: float, cameras: bool, camera_fps: float,
    width: int, height: int, require_cameras: bool, gl_backends: Sequence[str] | None, camera_nice: int = 0,
) -> SimServer:
    backend = SimBackend(build_model(cameras=False))
    server = RobotServer(
        backend, host=host, codec=make_codec(codec), latency_s=latency_ms / 1e3,
        ports=(ports.control, ports.state, ports.commanded),
    )
    sim = SimServer(backend, server, ports)
    try:
        if cameras:
            streamer = CameraStreamer(
                CameraConfig(host=host, port_offset=ports.camera_offset, width=width,
                             height=height, fps=camera_fps, nice=camera_nice,
                             wire_format="franka_teach" if codec == "pickle" else "msgpack"),
                backend.model.nq,
                gl_backends,
            )
            try:
                streamer.start()
                sim.cameras = streamer
                backend.add_qpos_listener(streamer.push)
            except FrankaTeachError as exc:  # no GL, or a camera port taken
                if require_cameras:
                    raise
                sim.camera_error = str(exc)
                log.warning("running without cameras: %s", exc)
        backend.start()
        server.start()
        _wait_for_state(host, ports.state, READY_TIMEOUT_S)
    except BaseException:
        sim.stop()
        raise
    return sim


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="frankateach-sim",
        description="MuJoCo Franka Panda served over the Franka-Teach protocol (REP control, "
        "state/commanded PUB, JPEG camera PUB).",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="extra delay before each action reply, ms (real deoxys: ~150)")
    p.add_argument("--codec", choices=("msgpack", "pickle"), default="msgpack",
                   help="wire format; pickle speaks NYU Franka-Teach's (state, feeds and cameras)")
    p.add_argument("--cameras", dest="cameras", action="store_true", default=True,
                   help="render and publish the front and wrist cameras (default)")
    p.add_argument("--no-cameras", dest="cameras", action="store_false")
    p.add_argument("--camera-fps", type=float, default=SIM_CAMERA_FPS)
    p.add_argument("--camera-width", type=int, default=SIM_CAMERA_WIDTH)
    p.add_argument("--camera-height", type=int, default=SIM_CAMERA_HEIGHT)
    p.add_argument("--camera-nice", type=int, default=0,
                   help="nice value of the camera render process, 0-19 (default 0: the simulator's); "
                   "above 0 rendering gives way to the simulator's answers and to other programs")
    p.add_argument("--control-port", type=int, default=CONTROL_PORT)
    p.add_argument("--state-port", type=int, default=STATE_PORT)
    p.add_argument("--commanded-port", type=int, default=COMMANDED_STATE_PORT)
    p.add_argument("--camera-port-offset", type=int, default=CAM_PORT_OFFSET,
                   help="camera i publishes on this port + i")
    p.add_argument("--sim-state-port", type=int, default=0,
                   help="also publish the state blob (for the VLA arena) on this port; 0: off")
    p.add_argument("--sim-state-period", type=float, default=SIM_STATE_PERIOD_S,
                   help="seconds between state blobs on --sim-state-port")
    p.add_argument("--duration", type=float, default=0.0, help="exit after this many seconds (0: run)")
    p.add_argument("--status-period", type=float, default=STATUS_LOG_PERIOD_S,
                   help="seconds between 'alive' status lines")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--parent-pid", type=int, default=0,
                   help="exit (within 1 s) when this process, our parent, dies (0: never)")
    p.add_argument("--parent-death-signal", type=int, default=int(signal.SIGTERM),
                   help="signal the kernel sends us when the parent exits (0: rely on polling; "
                   "for parents that start us from a short-lived thread)")
    return p


def _check_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    if a.latency_ms < 0:
        p.error(f"--latency-ms must be >= 0, got {a.latency_ms}")
    if not a.camera_fps > 0:
        p.error(f"--camera-fps must be > 0, got {a.camera_fps}")
    if not (0 <= a.sim_state_port <= 65535 and a.sim_state_period > 0):
        p.error(f"--sim-state-port must be a port (0: off) and --sim-state-period > 0 s, got "
                f"{a.sim_state_port}, {a.sim_state_period}")
    if not (16 <= a.camera_width <= 4096 and 16 <= a.camera_height <= 4096):
        p.error(f"camera size must be 16..4096 pixels, got {a.camera_width}x{a.camera_height}")
    for name in ("control_port", "state_port", "commanded_port", "camera_port_offset"):
        v = getattr(a, name)
        if not 1 <= v <= 65535 - len(SIM_CAMERAS):
            p.error(f"--{name.replace('_', '-')} must be a port number, got {v}")
    if not 0 <= a.camera_nice <= 19:
        p.error(f"--camera-nice must be 0..19, got {a.camera_nice}")
    if a.duration < 0:
        p.error(f"--duration must be >= 0, got {a.duration}")
    if a.parent_pid < 0:
        p.error(f"--parent-pid must be a pid (or 0), got {a.parent_pid}")
    if not 0 <= a.parent_death_signal < signal.NSIG:
        p.error(f"--parent-death-signal must be a signal number (or 0), got {a.parent_death_signal}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point of `frankateach-sim`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()
    signals = SignalFlag()
    signals.install()  # records the signal only; the loop below stops (see frankateach.signals)
    watch = None
    if args.parent_pid:
        watch = ParentWatch(args.parent_pid, stop.set, death_signal=args.parent_death_signal)
        watch.start()
    ports = SimPorts(args.control_port, args.state_port, args.commanded_port, args.camera_port_offset)
    try:
        sim = start_sim_server(
            host=args.host, ports=ports, codec=args.codec, latency_ms=args.latency_ms,
            cameras=args.cameras, camera_fps=args.camera_fps, camera_width=args.camera_width,
            camera_height=args.camera_height, sim_state_port=args.sim_state_port or None,
            sim_state_period_s=args.sim_state_period, camera_nice=args.camera_nice,
        )
    except FrankaTeachError as exc:
        log.error("frankateach-sim could not start: %s", exc)
        return 1
    if stop.is_set() or signals.requested:  # stopped (signal, parent gone) while starting
        sim.stop()
        return 0
    cams = (
        f"cameras {','.join(SIM_CAMERAS)} on {ports.camera_offset}+i "
        f"({args.camera_width}x{args.camera_height} @ {args.camera_fps:g} fps, "
        f"MUJOCO_GL={sim.cameras.gl_backend})"
        if sim.cameras is not None
        else "cameras off"
    )
    log.info(
        "frankateach-sim ready: host %s control %d state %d commanded %d, codec %s, "
        "latency %.0f ms, %s", args.host, ports.control, ports.state, ports.commanded,
        args.codec, args.latency_ms, cams,
    )
    deadline = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    try:
        while not signals.wait(stop, max(0.0, min(args.status_period, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                break
            log.info("%s", sim.status_line())
            if sim.cameras is not None and not sim.cameras.alive:
                log.error("camera renderer exited; continuing without cameras")
                sim.backend.remove_qpos_listener(sim.cameras.push)
                sim.cameras.stop()
                sim.cameras, sim.camera_error = None, "renderer exited"
    finally:
        log.info("frankateach-sim stopping (%s)", sim.status_line())
        sim.stop()
        log.info("frankateach-sim stopped")
        if watch is not None:
            watch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
