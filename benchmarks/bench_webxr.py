"""WebXR source benchmark: the daemon (`--debug`) driven through the WebXR page vs the scripted source.

Usage::

    .venv/bin/python benchmarks/bench_webxr.py [--seconds 20]

For each source the daemon runs as its own process (``python -m oculus_server.cli --debug``, no
cameras, no dashboard) looping the scripted pick-and-place: once with ``scripted:pick_place@loop=1``,
once with ``webxr`` while headless Chromium with IWER (Meta's WebXR emulation runtime; run
tools/install_iwer.sh first) plays the same trajectory in the page. Prints, side by side: the frame
rate the daemon received (the emulated headset's frame rate), the page → daemon WebSocket latency
p50/p99 on loopback (both ends on one clock), and the daemon process's CPU (its own threads, not
the simulator child and not the browser), measured over `--seconds` after a 3 s warm-up, and its
resident memory at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from frankateach.lifeline import stop_child  # noqa: E402
from oculus_server.vr.scripted import ScriptedSource  # noqa: E402
from tests.robot_fakes import free_port_block  # noqa: E402
from tests.test_web_webxr import IWER, iwer_step, open_page  # noqa: E402
from tests.web_browser import make_driver, wait_for  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` itself (children excluded), s."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of `pid`, MiB."""
    with open(f"/proc/{pid}/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


def start_daemon(spec: str, tmp: Path) -> tuple[subprocess.Popen[bytes], Path]:
    cfg = tmp / "daemon.yaml"
    cfg.write_text("cameras: []\nrealtime_priority: 0\n")
    log = tmp / f"daemon-{spec.split('@')[0].replace(':', '_')}.log"
    port = free_port_block(3) + 1
    argv = [sys.executable, "-m", "oculus_server.cli", "--config", str(cfg), "--debug", "--vr-source", spec,
            "--no-dashboard", "--no-sim-cameras", "--robot-port", str(port), "--recordings-dir", str(tmp / "rec")]
    env = dict(os.environ, MUJOCO_GL="egl", PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    return proc, log


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as an operator stops the daemon; SIGKILL after 30 s."""
    stop_child(proc, 30, sig=signal.SIGINT, kill_wait_s=5)


def steps_for_loop(seconds: float) -> list[dict[str, Any]]:
    clock = [0.0]
    src = ScriptedSource("pick_place", rate_hz=100.0, loop=True, clock=lambda: clock[0])
    src.start()
    out = []
    for k in range(int(seconds * 100)):
        clock[0] = k / 100
        s = src.poll()
        assert s is not None
        out.append(iwer_step(s))
    return out


def measure(proc: subprocess.Popen[bytes], seconds: float) -> float:
    time.sleep(3.0)
    c0, t0 = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(proc.pid), time.monotonic()
    assert proc.poll() is None, "the daemon exited during the measurement"
    return 100.0 * (c1 - c0) / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    if not IWER.is_file():
        sys.exit(f"{IWER} missing: run tools/install_iwer.sh")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        proc, log = start_daemon("scripted:pick_place@loop=1", tmp)
        try:
            wait_for(lambda: "frankateach-sim started" in log.read_text(errors="replace") or proc.poll() is not None,
                     90, what="daemon start")
            cpu = measure(proc, args.seconds)
            rows.append(("scripted", "50 (grid)", "–", "–", cpu, rss_mib(proc.pid)))
        finally:
            stop(proc)
        proc, log = start_daemon(f"webxr@port=0,emulate={IWER}", tmp)
        driver = make_driver(800, 600)
        try:
            url_re = re.compile(r"open (http://localhost:\d+/\?token=[\w-]+) in the headset's browser")
            m = wait_for(lambda: url_re.search(log.read_text(errors="replace")), 90, what="URL")
            open_page(driver, m.group(1))
            driver.execute_script("window.__xrEmu.play(arguments[0], 10)", steps_for_loop(args.seconds + 10))
            cpu = measure(proc, args.seconds)
            st = driver.execute_script("return window.__status")
            rows.append(("webxr", f"{st['rate_hz']:.1f}", f"{st['delay_ms_p50']:.2f}", f"{st['delay_ms_p99']:.2f}",
                         cpu, rss_mib(proc.pid)))
            print(f"webxr link: accepted {st['accepted']}, late {st['late']}, out of order {st['out_of_order']}, "
                  f"bad {st['rejected'] - st['late'] - st['out_of_order']}")
        finally:
            driver.quit()
            stop(proc)
    print(f"{'source':10} {'frames/s received':>18} {'latency p50 ms':>15} {'p99 ms':>8} {'daemon CPU %':>13} "
          f"{'daemon RSS MiB':>15}")
    for name, rate, p50, p99, cpu, rss in rows:
        print(f"{name:10} {rate:>18} {p50:>15} {p99:>8} {cpu:>13.1f} {rss:>15.0f}")


if __name__ == "__main__":
    main()
