"""Benchmark of the live view: the daemon (`--debug --performance`) with Foxglove WebSocket clients.

Runs the daemon once per mode, the modes interleaved, each round with the same settings:

* ``none``     no client connected (the live server listens; nothing is mapped between episodes);
* ``all``      one client subscribed to every advertised topic, reading all the time;
* ``stalled``  one client subscribed to everything that stops reading for `--stall` s (10) mid-run,
  then reads on (its socket's receive buffer is kept small, so the stall reaches the server).

Prints per run: what the client received (/control/mode and each camera, Hz from the messages'
log times), the recording's achieved rate, missing ticks and period jitter p99/max (from the
recording's own timestamps), the daemon's CPU (utime + stime of the daemon process only, over
the steady window, % of one core) and beside it that of its helper processes (``live-view``: the
live view's mapping and server; ``mcap-writer``: the recording) and RSS before / during / after
the stall, and the live view's counters (messages sent, dropped, client backlog overflows) from the last `/timing`.

    python benchmarks/bench_live.py --duration 40 --rounds 2

Not a test: it prints figures and exits 0 unless a daemon failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_daemon import analyse, cpu_seconds, rss_kib  # noqa: E402

from tests.foxglove_ws_client import FoxgloveClient, connect_when_up, free_port  # noqa: E402
from tests.robot_fakes import free_port_block  # noqa: E402

CAMERA_TOPICS = ("/camera/front/image", "/camera/wrist/image")


class Reader(threading.Thread):
    """Reads every message of a client, except while `paused` is set."""

    def __init__(self, client: FoxgloveClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.paused = threading.Event()
        self.stop = threading.Event()
        self.got: list[tuple[str, int, float]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            if self.paused.is_set():
                time.sleep(0.05)
                continue
            try:
                r = self.client.recv(0.2)
            except Exception:  # noqa: BLE001 - the daemon closed the connection at its end
                return
            if r is not None:
                self.got.append((r.topic, r.log_ns, r.t_recv))


HELPERS = ("live-view", "mcap-writer")  # the daemon's spawned helper processes, by name (comm)


def helpers(pid: int) -> dict[str, int]:
    """The daemon's helper processes, name → pid (children of any of its threads)."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            try:
                name = Path(f"/proc/{kid}/comm").read_text().strip()
            except OSError:
                continue
            if name in HELPERS:
                out[name] = kid
    return out


def helper_cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each helper (NaN for one that is gone)."""
    out = {}
    for name, pid in pids.items():
        try:
            out[name] = cpu_seconds(pid)
        except OSError:
            out[name] = float("nan")
    return out


def hz(log_ns: list[int]) -> float:
    t = np.sort(np.array(log_ns, dtype=float)) / 1e9
    return float((t.size - 1) / (t[-1] - t[0])) if t.size > 1 else float("nan")


def recorded_hz(path: Path, topics: tuple[str, ...]) -> dict[str, float]:
    """Hz of `topics` in a recording, from their log times."""
    from mcap.reader import make_reader

    times: dict[str, list[int]] = {t: [] for t in topics}
    with open(path, "rb") as f:
        for _schema, channel, msg in make_reader(f).iter_messages(topics=list(topics)):
            times[channel.topic].append(msg.log_time)
    return {t: hz(v) for t, v in times.items()}


def run(mode: str, duration: float, out_root: Path, stall_s: float) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"live_{mode}_", dir=out_root))
    port, cams, live_port = free_port_block(3) + 1, free_port_block(2), free_port()
    (out / "d.yaml").write_text(f"camera_port_offset: {cams}\n")
    cmd = [sys.executable, "-m", "oculus_server.cli", "--config", str(out / "d.yaml"), "--debug", "--performance",
           "--vr-source", "scripted:circle@loop=1", "--no-dashboard", "--record-on-start", "--recordings-dir",
           str(out / "rec"), "--robot-port", str(port), "--live-port", str(live_port), "--duration", str(duration)]
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    with open(out / "daemon.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=out, stdout=log, stderr=subprocess.STDOUT, env=env)
    t_start = time.monotonic()
    while not list((out / "rec").glob("*.mcap.partial")) and proc.poll() is None and time.monotonic() - t_start < 90:
        time.sleep(0.1)
    reader = None
    if mode != "none":
        # a small receive buffer: a client that stops reading pushes back on the server at once
        client = connect_when_up(f"ws://127.0.0.1:{live_port}", lambda: proc.poll() is None, 30, rcvbuf=65536)
        topics = set(client.wait_channels({"/control/mode", "/camera/front/image", "/camera/wrist/image"}, 30))
        client.subscribe(sorted(topics))
        reader = Reader(client)
        reader.start()
    time.sleep(2.0)
    window = duration - (time.monotonic() - t_start) - 2.0
    kids = helpers(proc.pid)
    t0, c0, k0 = time.monotonic(), cpu_seconds(proc.pid), helper_cpu(kids)
    rss = {"before": rss_kib(proc.pid)}
    stall = None
    if mode == "stalled":
        pre = max(1.0, (window - stall_s) / 2)
        time.sleep(pre)
        rss["before"] = rss_kib(proc.pid)
        assert reader is not None
        reader.paused.set()
        stall = (time.monotonic(), None)
        peak = 0
        end = time.monotonic() + stall_s
        while time.monotonic() < end:
            peak = max(peak, rss_kib(proc.pid))
            time.sleep(0.5)
        rss["during_max"] = peak
        reader.paused.clear()
        stall = (stall[0], time.monotonic())
        time.sleep(max(0.5, window - pre - stall_s - 0.5))
        rss["after"] = rss_kib(proc.pid)
    else:
        time.sleep(max(1.0, window))
        rss["after"] = rss_kib(proc.pid)
    elapsed = time.monotonic() - t0
    cpu = (cpu_seconds(proc.pid) - c0) / elapsed * 100
    k1 = helper_cpu(kids)
    helper_pct = {name: (k1[name] - k0[name]) / elapsed * 100 for name in kids}
    code = proc.wait(timeout=60)
    if reader is not None:
        reader.stop.set()
        reader.join(2)
    [path] = list((out / "rec").rglob("*.mcap"))
    res = analyse(path, 40.0)
    counters = {c["name"]: c["value"] for c in (res["timing"] or {}).get("counters", [])}
    got: dict[str, list[int]] = {}
    if reader is not None:
        for topic, log_ns, _t in reader.got:
            got.setdefault(topic, []).append(log_ns)
    return {"mode": mode, "code": code, "recorded_hz": recorded_hz(path, CAMERA_TOPICS), "cpu_pct": cpu,
            "helper_cpu_pct": helper_pct,
            "rss_kib": rss, "rec": res["recording"],
            "missing_ticks": res["missing_ticks"], "counters": counters, "got": got, "log": out / "daemon.log"}


def show(r: dict) -> None:
    rec = r["rec"]
    got = r["got"]
    recv = " ".join(f"{t}={hz(got[t]):.2f}Hz" for t in ("/control/mode", *CAMERA_TOPICS) if t in got) or "-"
    recorded = " ".join(f"{t}={v:.2f}Hz" for t, v in r["recorded_hz"].items())
    c = r["counters"]
    print(f"{r['mode']:8s} exit={r['code']} cpu={r['cpu_pct']:5.1f}%  recording {rec['achieved_hz']:.3f} Hz "
          f"missing={r['missing_ticks']} jitter p99={rec['jitter_p99_ms']:.2f} max={rec['jitter_max_ms']:.2f} ms  "
          f"rss={r['rss_kib']} KiB")
    print(f"{'':8s} received: {recv}  live sent={c.get('live_messages', 0):.0f} "
          f"ticks_dropped={c.get('live_ticks_dropped', 0):.0f} overflows={c.get('queue_live_client_overflows', 0):.0f}"
          f"  messages received={sum(len(v) for v in got.values())}")
    helper = " ".join(f"{n}={v:.1f}%" for n, v in sorted(r["helper_cpu_pct"].items())) or "-"
    print(f"{'':8s} recorded: {recorded}  helper cpu: {helper}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--modes", default="none,all,stalled")
    ap.add_argument("--stall", type=float, default=10.0, help="seconds the stalled client reads nothing")
    args = ap.parse_args()
    out_root = Path(tempfile.mkdtemp(prefix="bench_live_"))
    failed = False
    for i in range(args.rounds):
        print(f"round {i + 1}")
        for mode in args.modes.split(","):
            r = run(mode, args.duration, out_root, args.stall)
            show(r)
            failed |= r["code"] != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
