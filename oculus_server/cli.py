"""`oculus-server`: the teleoperation daemon's command line (run through ./run_server.sh)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from oculus_server.config import DaemonConfig, load_config
from oculus_server.errors import ConfigError, OculusServerError

log = logging.getLogger("oculus_server")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oculus-server",
        description="VR teleoperation and MCAP recording daemon for Franka arms.",
        epilog="Examples: ./run_server.sh --debug   |   ./run_server.sh --performance --robot-host 172.16.0.4",
    )
    p.add_argument("--config", type=Path, help="YAML config (default configs/default.yaml); flags override it")
    p.add_argument("--performance", action="store_true", default=None,
                   help="40 Hz control, position gain 10, rotation gain 3, 5 cm / 0.1 rad max step")
    p.add_argument("--debug", action="store_true", default=None,
                   help="start the MuJoCo simulator as the robot; simulated VR if no headset is found")
    p.add_argument("--vr-source", help="quest | scripted:NAME | replay:FILE | keyboard | fake_headset")
    p.add_argument("--left-controller", action="store_true", default=None, help="teleoperate with the left controller")
    p.add_argument("--ip", dest="quest_ip", help="Quest IP address for network adb (port 5555)")
    p.add_argument("--robot-host", help="robot server host (default 127.0.0.1)")
    p.add_argument("--robot-port", type=int, help="robot control port (default 8901)")
    p.add_argument("--codec", choices=("msgpack", "pickle"), help="wire codec (pickle: existing Franka-Teach server)")
    p.add_argument("--no-recording", dest="record", action="store_false", default=None, help="record nothing")
    p.add_argument("--record-on-start", action="store_true", default=None, help="open an episode at launch")
    p.add_argument("--no-record-on-start", dest="record_on_start", action="store_false")
    p.add_argument("--recordings-dir", help="where episodes are written (default recordings/)")
    p.add_argument("--duration", type=float, help="exit cleanly after this many seconds")
    p.add_argument("--no-dashboard", dest="dashboard", action="store_false", default=None,
                   help="log a status line every few seconds instead of the live dashboard")
    p.add_argument("--hot-reload", action="store_true", default=None,
                   help="restart the daemon when code or config changes (robot holds meanwhile)")
    p.add_argument("--control-hz", type=float, help="override the control rate")
    p.add_argument("--record-hz", type=float, help="override the recording rate")
    p.add_argument("--vr-hz", type=float, help="override the VR polling rate")
    p.add_argument("--sim-latency-ms", type=float, help="--debug: simulator round-trip delay (default 150)")
    p.add_argument("--no-sim-cameras", dest="sim_cameras", action="store_false", default=None)
    p.add_argument("--no-start-sim", dest="start_sim", action="store_false", default=None,
                   help="--debug without starting the simulator (one is already running)")
    p.add_argument("--operator", help="operator name, stored in each recording")
    p.add_argument("--task", help="task / instruction, stored in each recording")
    p.add_argument("--log-level", default="INFO")
    return p


OVERRIDE_KEYS = (
    "performance", "debug", "vr_source", "left_controller", "quest_ip", "robot_host", "robot_port",
    "codec", "record", "record_on_start", "recordings_dir", "duration", "dashboard", "hot_reload",
    "control_hz", "record_hz", "vr_hz", "sim_latency_ms", "sim_cameras", "start_sim", "operator", "task",
)


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    overrides = {k: getattr(args, k) for k in OVERRIDE_KEYS}
    return load_config(args.config, overrides)


def choose_source_spec(cfg: DaemonConfig) -> tuple[str, str]:
    """Picks the VR source spec; in --debug without a headset, a simulated one. Returns (spec, why)."""
    from oculus_server.daemon import adb_headset_present

    if cfg.vr_source != "quest" or not cfg.debug:
        return cfg.vr_source, ""
    if adb_headset_present(cfg.quest_ip):
        return "quest", ""
    if sys.stdin.isatty():
        return "keyboard", "no Quest headset found over adb: using the keyboard (see the key help)"
    return "scripted:pick_place", "no Quest headset found and no terminal: using the scripted pick-and-place demo"


def recover_leftovers(directory: Path) -> list[Path]:
    """Recovers `*.mcap.partial` files a crashed run left behind into `directory/failure/`.

    Returns the recovered files. A file that cannot be recovered is left where it is, with a
    message saying how to retry by hand.
    """
    from oculus_server.recording.recover import find_partials, recover

    out: list[Path] = []
    for partial in find_partials(directory):
        try:
            report = recover(partial)
        except Exception as exc:  # noqa: BLE001 - never block start-up on an old file
            log.warning("could not recover %s: %s (try: teleop-replay recover %s)", partial, exc, partial)
            continue
        if report.output is None:
            log.warning("leftover %s holds nothing recoverable: %s", partial, report.describe())
            continue
        dest_dir = directory / "failure"
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / report.output.name
        os.replace(report.output, dest)
        out.append(dest)
        log.warning("recovered a recording left by a crashed run -> %s: %s", dest, report.describe())
    return out


def setup_logging(level: str, rich_console: bool) -> None:
    handlers: list[logging.Handler]
    if rich_console:
        from rich.logging import RichHandler

        handlers = [RichHandler(show_path=False, rich_tracebacks=False)]
        fmt = "%(message)s"
    else:
        handlers = [logging.StreamHandler(sys.stderr)]
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=fmt, handlers=handlers, force=True)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run(cfg: DaemonConfig) -> int:
    """Runs one daemon (no hot reload); returns the exit code."""
    from oculus_server import dashboard
    from oculus_server.daemon import Daemon
    from oculus_server.sim_process import SimProcess
    from oculus_server.vr import make_source

    recover_leftovers(Path(cfg.recordings_dir))
    # Until the daemon's own handler is installed, SIGTERM unwinds (exit 143) so the simulator is stopped.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    sim = None
    try:
        if cfg.debug and cfg.start_sim:
            sim = SimProcess(cfg.sim_latency_ms, cameras=cfg.sim_cameras and bool(cfg.cameras),
                             control_port=cfg.robot_port, camera_port_offset=cfg.camera_port_offset)
            sim.start()
            cfg = cfg.replace(robot_host="127.0.0.1")
        spec, why = choose_source_spec(cfg)
        if why:
            log.warning(why)
        if spec != cfg.vr_source:
            cfg = cfg.replace(vr_source=spec)
        source = make_source(spec, left=cfg.left_controller, ip=cfg.quest_ip)
        daemon = Daemon(cfg, source)

        def on_signal(signum: int, _frame: object) -> None:
            daemon.stop_event.set()  # only this: the main loop does the rest

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        use_dashboard = cfg.dashboard and sys.stdout.isatty()
        help_text = getattr(source, "help_text", "") if spec == "keyboard" else ""
        if use_dashboard:
            from rich.live import Live

            with Live(dashboard.render(daemon.state, 0.0), refresh_per_second=4, screen=False) as live:
                code = daemon.run(lambda: live.update(
                    dashboard.render(daemon.state, time.monotonic() - daemon.started_at, help_text=help_text)))
        else:
            last = [time.monotonic()]

            def status() -> None:
                if time.monotonic() - last[0] >= 5.0:
                    last[0] = time.monotonic()
                    log.info("%s", dashboard.status_line(daemon.state, time.monotonic() - daemon.started_at))

            code = daemon.run(status)
        log.info("final: %s", dashboard.status_line(daemon.state, time.monotonic() - daemon.started_at))
        for path in daemon.writer.saved:
            log.info("recording saved: %s", path)
        return code
    finally:
        if sim is not None:
            sim.stop()


def watched_files(cfg_path: Path | None) -> list[Path]:
    root = Path(__file__).resolve().parent.parent
    files = [*root.glob("oculus_server/**/*.py"), *root.glob("frankateach/**/*.py"), *root.glob("configs/*.yaml")]
    if cfg_path is not None:
        files.append(cfg_path)
    return files


def snapshot_mtimes(files: list[Path]) -> dict[Path, float]:
    out = {}
    for f in files:
        try:
            out[f] = f.stat().st_mtime
        except OSError:
            pass
    return out


def run_hot_reload(argv: list[str], cfg: DaemonConfig, cfg_path: Path | None) -> int:
    """Runs the daemon as a child and restarts it when code or config changes.

    The simulator (with --debug) lives in this supervisor, so the robot server keeps running and
    the arm keeps holding its last target while the daemon restarts.
    """
    from oculus_server.sim_process import SimProcess

    child_args = [a for a in argv if a != "--hot-reload"]
    stop = {"flag": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sim = None
    if cfg.debug and cfg.start_sim:
        sim = SimProcess(cfg.sim_latency_ms, cameras=cfg.sim_cameras and bool(cfg.cameras),
                         control_port=cfg.robot_port, camera_port_offset=cfg.camera_port_offset)
        try:
            sim.start()
        except BaseException:
            sim.stop()
            raise
        child_args.append("--no-start-sim")
    try:
        while True:
            files = watched_files(cfg_path)
            before = snapshot_mtimes(files)
            child = subprocess.Popen([sys.executable, "-m", "oculus_server.cli", *child_args])
            log.info("hot reload: daemon started (pid %d); watching %d files", child.pid, len(files))
            changed = False
            while child.poll() is None and not stop["flag"]:
                time.sleep(0.5)
                if snapshot_mtimes(watched_files(cfg_path)) != before:
                    changed = True
                    break
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            if stop["flag"] or not changed:
                return child.returncode if not stop["flag"] else 0
            log.info("hot reload: change detected, restarting the daemon (robot holds meanwhile)")
    finally:
        if sim is not None:
            sim.stop()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except OculusServerError as exc:
        print(f"oculus-server: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level, cfg.dashboard and sys.stdout.isatty())
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        if cfg.hot_reload:
            return run_hot_reload(argv, cfg, args.config)
        return run(cfg)
    except ConfigError as exc:  # a bad flag or config value: same code as argparse / config errors
        log.error("%s", exc)
        return 2
    except OculusServerError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
