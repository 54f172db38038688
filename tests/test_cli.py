"""`oculus-server` command line: flags to config, config errors, source choice, one in-process run."""

from __future__ import annotations

import io
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from oculus_server.cli import build_parser, choose_source_spec, config_from_args, main
from oculus_server.config import DaemonConfig
from oculus_server.daemon import policy_config
from tests.daemon_fakes import read_episode
from tests.robot_fakes import KinematicBackend, free_port_block, start_robot_server


def _cfg(*argv: str) -> DaemonConfig:
    return config_from_args(build_parser().parse_args(list(argv)))


def test_flags_map_onto_the_config():
    cfg = _cfg(
        "--performance", "--left-controller", "--no-recording", "--duration", "2.5",
        "--robot-host", "10.0.0.2", "--robot-port", "9001", "--vr-source", "scripted:figure8",
        "--no-dashboard", "--codec", "pickle", "--record-hz", "25", "--vr-hz", "60",
        "--sim-latency-ms", "0", "--no-sim-cameras", "--operator", "ada", "--task", "stack cups",
        "--recordings-dir", "/tmp/somewhere", "--ip", "192.168.1.20",
    )
    assert cfg.performance and cfg.effective_control_hz == 40.0
    assert cfg.left_controller and not cfg.record and cfg.duration == 2.5
    assert (cfg.robot_host, cfg.robot_port, cfg.codec) == ("10.0.0.2", 9001, "pickle")
    assert cfg.vr_source == "scripted:figure8" and not cfg.dashboard
    assert (cfg.record_hz, cfg.vr_hz, cfg.sim_latency_ms, cfg.sim_cameras) == (25.0, 60.0, 0.0, False)
    assert (cfg.operator, cfg.task, cfg.recordings_dir, cfg.quest_ip) == (
        "ada",
        "stack cups",
        "/tmp/somewhere",
        "192.168.1.20",
    )
    pc = policy_config(cfg)
    assert pc.right_controller is False and pc.control_hz == 40.0


def test_unset_flags_keep_the_config_file_values(tmp_path: Path):
    assert _cfg() == DaemonConfig()  # configs/default.yaml == the dataclass defaults
    f = tmp_path / "c.yaml"
    f.write_text("robot_port: 9100\ncontrol_hz: 30\ncameras: []\nrecord_on_start: true\n")
    cfg = _cfg("--config", str(f))
    assert (cfg.robot_port, cfg.effective_control_hz, cfg.cameras, cfg.record_on_start) == (9100, 30.0, (), True)
    cfg = _cfg("--config", str(f), "--robot-port", "9200", "--control-hz", "50", "--no-record-on-start")
    assert (cfg.robot_port, cfg.effective_control_hz, cfg.record_on_start) == (9200, 50.0, False)
    assert _cfg("--debug").debug and _cfg("--hot-reload").hot_reload and not _cfg("--no-start-sim").start_sim


def test_unknown_config_key_exits_2_with_a_clear_message(tmp_path: Path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("robot_port: 9100\nrobot_hots: 10.0.0.2\n")
    assert main(["--config", str(f), "--no-dashboard"]) == 2
    err = capsys.readouterr().err
    assert "oculus-server:" in err and "unknown config key 'robot_hots'" in err and "robot_host" in err

    f.write_text("cameras: front\n")
    assert main(["--config", str(f)]) == 2
    assert "expected a list of camera ids" in capsys.readouterr().err

    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_debug_without_headset_or_terminal_picks_the_scripted_demo(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no adb binary anywhere
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a TTY
    spec, why = choose_source_spec(DaemonConfig(debug=True))
    assert spec == "scripted:pick_place@loop=1" and "no Quest headset" in why  # repeats until Ctrl-C

    # An explicit source, or a run without --debug, is used as given.
    assert choose_source_spec(DaemonConfig(debug=True, vr_source="scripted:circle")) == ("scripted:circle", "")
    assert choose_source_spec(DaemonConfig(debug=False)) == ("quest", "")


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_debug_without_headset_at_a_terminal_picks_the_keyboard(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "stdin", _TTY(""))
    spec, why = choose_source_spec(DaemonConfig(debug=True))
    assert spec == "keyboard" and "keyboard" in why


@pytest.fixture
def _process_globals(monkeypatch):
    """`main` installs signal handlers and logging; put the test process back afterwards."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    before = sys.getswitchinterval()
    monkeypatch.setenv("MUJOCO_GL", "egl")
    yield
    for s, h in handlers.items():
        signal.signal(s, h)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    sys.setswitchinterval(before)


def test_main_runs_the_daemon_for_a_duration_against_a_robot(tmp_path: Path, capsys, _process_globals):
    port = free_port_block()
    backend = KinematicBackend()
    server = start_robot_server(backend, port)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("cameras: []\nrealtime_priority: 0\n")
    rec = tmp_path / "rec"
    try:
        code = main([
            "--config", str(cfg), "--vr-source", "scripted:circle", "--robot-port", str(port),
            "--recordings-dir", str(rec), "--duration", "2.5", "--no-dashboard", "--task", "draw circle",
        ])
    finally:
        server.stop()
    assert code == 0
    (path,) = rec.glob("failure/*.mcap")
    assert path.name.endswith("_draw-circle.mcap")
    ep = read_episode(path)
    assert ep.has_summary and ep.metadata["recording_start"]["task"] == "draw circle"
    assert ep.metadata["recording_end"]["outcome"] == "shutdown"
    assert len(backend.actions) > 0
    err = capsys.readouterr().err
    assert "duration of 2.5 s reached" in err and f"recording saved: {path}" in err


def test_main_reports_a_bad_vr_source(tmp_path: Path, capsys, _process_globals):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("cameras: []\nrealtime_priority: 0\n")
    code = main(["--config", str(cfg), "--vr-source", "scripted:nope", "--recordings-dir", str(tmp_path / "r"),
                 "--robot-port", str(free_port_block()), "--no-dashboard"])
    assert code == 2
    assert "unknown VR trajectory 'nope'" in capsys.readouterr().err


# -- the real command line as a process: a bad config value exits 2, names it, no traceback --------

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("yaml_text", "flags", "expected"),
    [
        ('control_hz: "fast"\n', [], "'control_hz': got 'fast' (str); expected a number"),
        ('record: "no"\n', [], "'record': got 'no' (str); expected true or false"),
        ("vr_hz: -50\n", [], "'vr_hz': got -50; expected a number with 0 < value <= 1000 (Hz)"),
        ("", ["--record-hz", "0"], "--record-hz ('record_hz'): got 0.0; expected a number with 0 < value"),
        (
            "",
            ["--robot-port", "99999"],
            "--robot-port ('robot_port'): got 99999; expected an integer with 1 <= value <= 65535",
        ),
        ("", ["--duration", "-5"], "--duration ('duration'): got -5.0; expected a number with 0 < value"),
    ],
)
def test_bad_config_exits_2_naming_key_value_and_what_is_allowed(
    tmp_path: Path, yaml_text: str, flags: list[str], expected: str
):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text + "cameras: []\n")
    out = subprocess.run(
        [sys.executable, "-m", "oculus_server.cli", "--config", str(cfg), "--no-dashboard",
         "--recordings-dir", str(tmp_path / "rec"), *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )
    assert out.returncode == 2, out.stderr
    assert expected in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "rec").exists()  # nothing started, nothing recorded
