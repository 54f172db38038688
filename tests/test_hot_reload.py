"""--hot-reload: a config change restarts the daemon child; the robot server keeps running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.robot_fakes import KinematicBackend, free_port_block, start_robot_server

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(path: Path, text: str, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(errors="replace").count(text) >= count:
            return True
        time.sleep(0.1)
    return False


def test_config_change_restarts_the_daemon(tmp_path):
    port = free_port_block()
    server = start_robot_server(KinematicBackend(), port)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"robot_port: {port}\ncameras: []\nrealtime_priority: 0\n")
    log = tmp_path / "out.log"
    cmd = [sys.executable, "-m", "oculus_server.cli", "--hot-reload", "--config", str(cfg),
           "--vr-source", "scripted:hold", "--no-dashboard", "--no-recording"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert _wait_for(log, "daemon running", 1, 30), log.read_text()
        cfg.write_text(cfg.read_text() + "task: reloaded\n")
        assert _wait_for(log, "change detected", 1, 15), log.read_text()
        assert _wait_for(log, "daemon running", 2, 30), log.read_text()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    text = log.read_text()
    assert text.count("hot reload: daemon started") == 2
    # Each child exited cleanly (status line logged at its end) and none is left behind.
    assert text.count("final:") == 2
    out = subprocess.run(["pgrep", "-f", f"--config {cfg}"], capture_output=True, text=True).stdout.split()
    assert [p for p in out if int(p) != os.getpid()] == []
