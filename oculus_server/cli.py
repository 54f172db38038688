"""`oculus-server`: the teleoperation daemon's command line (run through ./run_server.sh)."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from frankateach.lifeline import stop_child
from frankateach.signals import SignalFlag
from oculus_server.config import DaemonConfig, assist_config, load_config
from oculus_server.errors import ConfigError, OculusServerError
from oculus_server.recording.leftovers import recover_leftovers
from robot_formats.recording.errors import RecordingError

__all__ = ["build_parser", "choose_source_spec", "config_from_args", "main", "recover_leftovers", "run"]

log = logging.getLogger("oculus_server")
HOT_RELOAD_STOP_S = 10.0  # --hot-reload: SIGTERM to the old daemon → SIGKILL, s


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
    p.add_argument("--vr-source", help="quest | webxr (the headset's browser, no APK) | scripted:NAME | "
                   "replay:FILE | keyboard | fake_headset; options after @, e.g. webxr@bind=0.0.0.0")
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
    p.add_argument("--live", action="store_true", default=None,
                   help="live view: serve every recorded topic to Foxglove (on by default with --debug)")
    p.add_argument("--no-live", dest="live", action="store_false", help="no live view")
    p.add_argument("--live-host", help="address the live view binds (default 127.0.0.1)")
    p.add_argument("--live-port", type=int, help="live view port (default 8765, Foxglove's; 0: any free port)")
    p.add_argument("--operator", help="operator name, stored in each recording")
    p.add_argument("--task", help="task / instruction, stored in each recording")
    a = p.add_argument_group("VLA assist", "a policy served by the inference service helps the operator "
                             "(see the README's 'VLA assist' section)")
    a.add_argument("--assist", dest="assist_model", metavar="MODEL",
                   help="turn assist on with this model (e.g. color-reach)")
    a.add_argument("--assist-url", metavar="URL",
                   help="ws://HOST:8000/v1/stream or openpi://HOST:8001 (default with --debug: start a local service)")
    a.add_argument("--assist-key", metavar="KEY", help="the service's API key (default: env VLA_API_KEY)")
    a.add_argument("--instruction", dest="assist_instruction", metavar="TEXT",
                   help="the task given to the policy, e.g. 'pick up the red cube' (default: --task)")
    a.add_argument("--assist-weight", type=float, metavar="W", help="α, the policy's share of the motion, 0..1 (0.3)")
    a.add_argument("--assist-mode", choices=("blend", "drive"),
                   help="blend (α = W) or drive (α = 1 while the deadman is held; evaluation)")
    a.add_argument("--assist-gripper", choices=("operator", "policy"), help="who commands the gripper (operator)")
    a.add_argument("--assist-min-score", type=float, metavar="S", help="ignore actions scored below this (0.5)")
    a.add_argument("--assist-toggle", dest="assist_toggle_button", metavar="BUTTON",
                   help="controller button that switches assist on/off (X with the right controller, A with the left)")
    a.add_argument("--assist-fps", type=float, metavar="HZ", help="frames sent to the service per second (15)")
    a.add_argument("--assist-catalog", metavar="FILE",
                   help="model catalog of the local --debug service (e.g. one with a policy you trained)")
    p.add_argument("--log-level", default="INFO")
    return p


OVERRIDE_KEYS = (
    "performance", "debug", "vr_source", "left_controller", "quest_ip", "robot_host", "robot_port",
    "codec", "record", "record_on_start", "recordings_dir", "duration", "dashboard", "hot_reload",
    "control_hz", "record_hz", "vr_hz", "sim_latency_ms", "sim_cameras", "start_sim", "operator", "task",
    "live", "live_host", "live_port",
)


# --assist-* flags: argparse dest -> (key of the `assist:` section, flag)
ASSIST_FLAGS = {
    "assist_model": ("model", "--assist"),
    "assist_url": ("url", "--assist-url"),
    "assist_key": ("key", "--assist-key"),
    "assist_instruction": ("instruction", "--instruction"),
    "assist_weight": ("weight", "--assist-weight"),
    "assist_mode": ("mode", "--assist-mode"),
    "assist_gripper": ("gripper", "--assist-gripper"),
    "assist_min_score": ("min_score", "--assist-min-score"),
    "assist_toggle_button": ("toggle_button", "--assist-toggle"),
    "assist_fps": ("fps", "--assist-fps"),
    "assist_catalog": ("catalog", "--assist-catalog"),
}


def flag_names(parser: argparse.ArgumentParser | None = None) -> dict[str, str]:
    """Config key → the flag that sets it (e.g. "record_hz" → "--record-hz"), for messages."""
    names: dict[str, str] = {}
    for action in (parser or build_parser())._actions:
        if action.dest in OVERRIDE_KEYS and action.option_strings and action.dest not in names:
            names[action.dest] = "/".join(action.option_strings)
    return names


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    """The config file (or configs/default.yaml) with the flags that were given applied.

    Raises:
        ConfigError: a bad file or value; the message names the key or flag, the value and
            what is allowed.
    """
    overrides = {k: getattr(args, k) for k in OVERRIDE_KEYS}
    assist = {
        key: getattr(args, dest) for dest, (key, _flag) in ASSIST_FLAGS.items() if getattr(args, dest, None) is not None
    }
    if assist:
        overrides["assist"] = assist
    try:
        return load_config(args.config, overrides, flag_names())
    except ConfigError as exc:  # name the flag a bad assist value came from
        text = str(exc)
        for key, flag in ASSIST_FLAGS.values():
            if key in assist:
                text = text.replace(f"assist config '{key}'", f"{flag} ('assist.{key}')")
        raise ConfigError(text) from None


def choose_source_spec(cfg: DaemonConfig) -> tuple[str, str]:
    """Picks the VR source spec; in --debug without a headset, a simulated one. Returns (spec, why)."""
    from oculus_server.daemon import adb_headset_present

    if cfg.vr_source != "quest" or not cfg.debug:
        return cfg.vr_source, ""
    if adb_headset_present(cfg.quest_ip):
        return "quest", ""
    if sys.stdin.isatty():
        return "keyboard", "no Quest headset found over adb: using the keyboard (see the key help)"
    return (
        "scripted:pick_place@loop=1",
        "no Quest headset found and no terminal: looping the scripted pick-and-place demo until Ctrl-C",
    )


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


def run(cfg: DaemonConfig) -> int:
    """Runs one daemon (no hot reload); returns the exit code."""
    from oculus_server import dashboard
    from oculus_server.daemon import Daemon
    from oculus_server.recording.sim_scene import SimSceneFetch
    from oculus_server.sim_process import SimProcess
    from oculus_server.vr import make_source

    # SIGINT / SIGTERM are recorded from here on, never lost wherever they land: each start-up wait
    # turns a recorded one into KeyboardInterrupt (exit 130) / SystemExit(143), stopping what it
    # started; the running daemon's wait loop into a clean stop.
    signals = SignalFlag()
    signals.install()
    recover_leftovers(Path(cfg.recordings_dir))
    sim = None
    service = None
    # The simulated scene (MJCF + camera mounts) is described by a child process while the
    # simulator starts, so the daemon never builds the MuJoCo model itself.
    scene = SimSceneFetch(nice=cfg.helper_nice).start() if cfg.debug and (cfg.record or cfg.effective_live) else None
    try:
        assist = assist_config(cfg)
        if assist is not None and assist.url is None:  # --debug without --assist-url: a local service
            from oculus_server.assist.local_service import LocalService

            assert assist.model is not None
            service = LocalService(assist.model, tier=assist.service_tier, catalog=assist.catalog)
            service.launch()  # starts while the simulator does
        if cfg.debug and cfg.start_sim:
            sim = SimProcess(cfg.sim_latency_ms, cameras=cfg.sim_cameras and bool(cfg.cameras),
                             control_port=cfg.robot_port, camera_port_offset=cfg.camera_port_offset, codec=cfg.codec,
                             camera_nice=cfg.helper_nice)
            sim.start(check=signals.raise_if_requested)
            cfg = cfg.replace(robot_host="127.0.0.1")
        if service is not None:
            assert assist is not None
            service.wait_ready(assist.service_start_timeout_s, check=signals.raise_if_requested)
            cfg = cfg.replace(assist={**cfg.assist, "url": service.url, "key": service.key})
        spec, why = choose_source_spec(cfg)
        if why:
            log.warning(why)
        if spec != cfg.vr_source:
            cfg = cfg.replace(vr_source=spec)
        source = make_source(spec, left=cfg.left_controller, ip=cfg.quest_ip)
        signals.raise_if_requested()  # interrupted during start-up: nothing is started
        daemon = Daemon(cfg, source, sim_scene=scene, signals=signals)
        attach = getattr(source, "attach_feedback", None)
        if attach is not None:  # the WebXR page shows the daemon's view (arm follows, recording)
            from oculus_server.vr.webxr_feedback import operator_feedback

            attach(lambda: operator_feedback(daemon.state.commands, daemon.state.safety, daemon.state.episode))

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
        # Stopping already: further Ctrl-C / SIGTERM must not cut the bounded clean-up short (nor
        # kill the interpreter while it finalizes, when Python's own handlers are gone).
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if scene is not None:
            scene.close()
        if sim is not None:
            sim.stop()
        if service is not None:
            service.stop()


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
                         control_port=cfg.robot_port, camera_port_offset=cfg.camera_port_offset, codec=cfg.codec,
                         camera_nice=cfg.helper_nice)
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
            stop_child(child, HOT_RELOAD_STOP_S)
            if stop["flag"] or not changed:
                return child.returncode if not stop["flag"] else 0
            log.info("hot reload: change detected, restarting the daemon (robot holds meanwhile)")
    finally:
        if sim is not None:
            sim.stop()


def main(argv: list[str] | None = None) -> int:
    """Runs the daemon; returns the exit code (2: bad flag or config, 130: Ctrl-C at start-up)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except OculusServerError as exc:
        print(f"oculus-server: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level, cfg.dashboard and sys.stdout.isatty())
    # `kill -USR1 PID` prints every thread's stack to stderr: where a daemon that seems stuck is.
    with contextlib.suppress(io.UnsupportedOperation, AttributeError, ValueError):  # stderr without a file
        faulthandler.register(signal.SIGUSR1, file=sys.stderr.fileno(), all_threads=True)
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        if cfg.hot_reload:
            return run_hot_reload(argv, cfg, args.config)
        return run(cfg)
    except ConfigError as exc:  # a bad flag or config value: same code as argparse / config errors
        log.error("%s", exc)
        return 2
    except (OculusServerError, RecordingError) as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the daemon's own handler (e.g. while the sim starts)
        log.warning("interrupted during start-up: nothing was recorded")
        return 130


if __name__ == "__main__":
    sys.exit(main())
