"""Benchmark: the daemon on a busy machine, with and without real-time scheduling.

Runs ``oculus-server --debug --performance`` (scripted circle, recording on) for ``--duration`` s
beside a reproducible load, once per scheduling mode, and prints for each run what the recording
itself says: recording rate, period p99 / max, ticks later than 1.5 periods, missing ticks, the
``loop_overrun`` events, and commands recorded against commands sent.

Loads (``--load``, repeatable):

* ``mixed`` — a loop of arena episodes rendering 640×480 with software EGL (``vla-arena run
  --model color-reach``), one CPU-bound process, and a writer that fsyncs 1 MiB every 0.2 s;
* ``cpu:N`` — N CPU-bound processes;
* ``none`` — nothing beside the daemon.

Scheduling (``--sched``): ``fifo`` (the default config: SCHED_FIFO where permitted), ``normal``
(a config with ``realtime_priority: 0``: what an operator without privileges gets; the helper
processes at the default ``helper_nice``), ``normal-nice0`` (also ``helper_nice: 0``: the
recording, live-view and camera render processes at the daemon's priority, as before),
``normal-thread`` (also ``writer_process: false``: the MCAP writer as a thread of the daemon, as
before), ``normal-noslice`` (``loop_slice_ms: 0``: the kernel's time slice for the loops, as
before), ``normal-single`` (``loop_wakers: 1``: each loop waits for its ticks in one thread, as
before, instead of one thread per CPU), ``normal-cg`` (as ``normal``, the daemon and its
children in the cgroup ``--cgroup``:
a group with a larger CPU weight, what ``systemd-run --user --scope -p CPUWeight=1000`` gives
an operator on a systemd desktop), ``rtkit`` (the default config, the daemon without CAP_SYS_NICE:
it may not ask for SCHED_FIFO, so RealtimeKit grants SCHED_RR, as on a desktop; as root this
script starts a private rtkit, ``tests/rtkit_sandbox.py``, unless ``--rtkit-bus`` names one), or
``all`` (all but ``normal-cg``).

    python benchmarks/bench_daemon_load.py --duration 40 --load mixed --sched all --rounds 3
    python benchmarks/bench_daemon_load.py --duration 40 --load cpu:2 --sched normal
    # as root, without systemd: a cgroup-v1 group with 10x the default weight (v2: cpu.weight 1000)
    mkdir /sys/fs/cgroup/cpu/daemon && echo 10240 > /sys/fs/cgroup/cpu/daemon/cpu.shares
    python benchmarks/bench_daemon_load.py --load mixed --sched normal --sched normal-cg \
        --cgroup /sys/fs/cgroup/cpu/daemon --rounds 3
    python benchmarks/bench_daemon_load.py --duration 40 --load mixed --sched normal-nice0 --sched normal --rounds 3
    python benchmarks/bench_daemon_load.py --load mixed --sched normal --sched rtkit --sched fifo --rounds 3

The period max is printed with when it happened (s after the first tick): a stall in the first
seconds is start-up (imports of the helper processes), one later is the load.

Every load process dies with this script (parent-death signal, own process group). Not a test:
it prints figures and exits 0 unless a daemon run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mcap.reader import make_reader

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_daemon import analyse  # noqa: E402

from frankateach.lifeline import set_parent_death_signal  # noqa: E402
from tests.rtkit_sandbox import drop_sys_nice as without_sys_nice  # noqa: E402
from tests.rtkit_sandbox import rtkit_sandbox  # noqa: E402

RECORD_HZ = 40.0
SCHEDS = {
    "fifo": {},
    "normal": {"realtime_priority": 0},
    "normal-thread": {"realtime_priority": 0, "writer_process": "false"},
    "normal-noslice": {"realtime_priority": 0, "loop_slice_ms": 0},
    "normal-nice0": {"realtime_priority": 0, "helper_nice": 0},
    "normal-single": {"realtime_priority": 0, "loop_wakers": 1},
    "normal-cg": {"realtime_priority": 0},
    "rtkit": {},
}
IN_CGROUP = {"normal-cg"}  # modes whose daemon runs in --cgroup
WITHOUT_SYS_NICE = {"rtkit"}  # modes whose daemon may not ask for SCHED_FIFO itself (no CAP_SYS_NICE)


def _die_with_parent() -> None:
    set_parent_death_signal(signal.SIGKILL)


def _spawn(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True, preexec_fn=_die_with_parent)


# -- load workers (run as `python bench_daemon_load.py --worker KIND ...`) ------------------------
def worker_cpu() -> None:
    """Spins forever."""
    x = 0
    while True:
        x += 1


def worker_fsync(path: Path, size: int = 1 << 20, period_s: float = 0.2) -> None:
    """Writes `size` bytes and fsyncs them every `period_s` s (on absolute deadlines)."""
    block = os.urandom(size)
    t = time.monotonic()
    with open(path, "wb") as f:
        while True:
            f.seek(0)
            f.write(block)
            f.flush()
            os.fsync(f.fileno())
            t += period_s
            time.sleep(max(0.0, t - time.monotonic()))


def worker_arena(data: Path) -> None:
    """Runs arena episodes (640×480 video, software EGL) one after another, forever; their
    temporary folders go under `data` (this script's own, removed at the end: the runs are
    SIGKILLed mid-episode and cannot clean up themselves)."""
    scratch = data / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MUJOCO_GL="egl", LIBGL_ALWAYS_SOFTWARE="1", TMPDIR=str(scratch))
    exe = str(Path(sys.executable).with_name("vla-arena"))
    seed = 0
    while True:
        seed += 1
        subprocess.run([exe, "--data", str(data), "run", "--model", "color-reach", "--instruction",
                        "pick up the red cube", "--width", "640", "--height", "480", "--steps", "60",
                        "--seed", str(seed)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent, check=False)


def start_load(spec: str, tmp: Path) -> list[subprocess.Popen]:
    me = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    if spec == "none":
        return []
    if spec == "mixed":
        return [_spawn([*me, "arena", str(tmp / "arena")]), _spawn([*me, "cpu"]),
                _spawn([*me, "fsync", str(tmp / "fsync.bin")])]
    if spec.startswith("cpu:"):
        return [_spawn([*me, "cpu"]) for _ in range(int(spec[4:]))]
    raise SystemExit(f"--load: expected mixed, cpu:N or none, got {spec!r}")


def stop_load(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
    for p in procs:
        p.wait(5)


# -- one daemon run ---------------------------------------------------------------------------------
def free_robot_port() -> int:
    """A control port P whose simulator ports (P-1..P+2) and cameras (P+10, P+11) are all free."""
    for _ in range(200):
        p = random.randrange(20000, 60000)
        socks = []
        try:
            for q in (p - 1, p, p + 1, p + 2, p + 10, p + 11):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


@dataclass
class Result:
    load: str
    sched: str
    rate_hz: float
    period_p99_ms: float
    period_max_ms: float
    max_at_s: float  # when the longest period ended, s after the first tick
    late: int  # recording ticks later than 1.5 periods
    missing: int  # recording ticks missing (seq gaps)
    overruns: int  # loop_overrun events
    overrun_loops: str
    recorded: int  # commands on /robot/command
    sent: int  # send counters spanned (first..last): every command sent in the episode
    control: str  # the control loop's own figures (run p99 / max jitter, late)
    code: int
    camera_fps: str = ""  # camera frames recorded per second, per camera (the renderer's share of CPU)
    late_at: str = ""  # when each late tick ended (s after the first tick) and its period (ms)


def events(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        return [json.loads(m.data) for _s, _c, m in make_reader(f).iter_messages(topics=["/events"])]


def _daemon_pre(cgroup: Path | None, drop_sys_nice: bool) -> Callable[[], None]:
    """A child's first step: dies with this script; with `cgroup`, moves into that cgroup; with
    `drop_sys_nice` (as root), gives up CAP_SYS_NICE for the program it runs, so that it may not
    ask for SCHED_FIFO itself (as an operator who is not root)."""
    def pre() -> None:
        _die_with_parent()
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))
        if drop_sys_nice:
            without_sys_nice()
    return pre


def run_daemon(load: str, sched: str, duration: float, tmp: Path, cgroup: Path | None = None,
               rtkit_bus: str | None = None) -> Result:
    out = Path(tempfile.mkdtemp(prefix=f"rec_{sched}_", dir=tmp))
    cfg = out / "sched.yaml"
    port = free_robot_port()  # other daemons may run on this machine
    cfg.write_text("".join(f"{k}: {v}\n" for k, v in {**SCHEDS[sched], "camera_port_offset": port + 10}.items()))
    cmd = [sys.executable, "-m", "oculus_server.cli", "--debug", "--performance", "--vr-source",
           "scripted:circle@loop=1", "--no-dashboard", "--record-on-start", "--recordings-dir", str(out),
           "--duration", str(duration), "--config", str(cfg), "--robot-port", str(port)]
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    if rtkit_bus:
        env["DBUS_SYSTEM_BUS_ADDRESS"] = rtkit_bus
    with open(out / "daemon.log", "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=_daemon_pre(cgroup if sched in IN_CGROUP else None,
                                                       sched in WITHOUT_SYS_NICE))
        code = proc.wait(duration + 120)
    if sched in WITHOUT_SYS_NICE and b"from RealtimeKit" not in (out / "daemon.log").read_bytes():
        print(f"  RealtimeKit did not grant real-time scheduling: see {out / 'daemon.log'}")
        code = code or 3
    files = sorted(out.glob("*/*.mcap"))
    if not files:
        print(f"  no recording ({out / 'daemon.log'})")
        nan = float("nan")
        return Result(load, sched, nan, nan, nan, nan, -1, -1, -1, "", 0, 0, "", code)
    path = max(files, key=lambda p: p.stat().st_size)
    res = analyse(path, RECORD_HZ)
    with open(path, "rb") as f:
        t = np.array([m.log_time / 1e9 for _s, _c, m in make_reader(f).iter_messages(topics=["/control/mode"])])
    with open(path, "rb") as f:
        frames: dict[str, int] = {}
        for _s, c, _m in make_reader(f).iter_messages():
            if c.topic.startswith("/camera/") and c.topic.endswith("/image"):
                frames[c.topic.split("/")[2]] = frames.get(c.topic.split("/")[2], 0) + 1
    span = float(t[-1] - t[0]) if t.size > 1 else float("nan")
    cams = " ".join(f"{k} {v / span:.1f}" for k, v in sorted(frames.items()))
    d = np.diff(t)
    late_at = " ".join(f"{t[i + 1] - t[0]:.1f}s:{d[i] * 1e3:.0f}ms" for i in np.flatnonzero(d > 1.5 / RECORD_HZ))
    ev = [e for e in events(path) if e.get("kind") == "loop_overrun"]
    loops = sorted({str(e.get("data", {}).get("loop", "?")) for e in ev})
    control = next((lp for lp in (res["timing"] or {}).get("loops", []) if lp["name"] == "control"), None)
    ctl = (f"p99 {control['run_jitter_p99_ms']:.1f} / max {control['run_jitter_max_ms']:.1f} ms jitter, "
           f"{control['late']} late" if control else "-")
    return Result(load, sched, res["recording"]["achieved_hz"], float(np.percentile(d, 99) * 1e3),
                  float(d.max() * 1e3), float(t[int(np.argmax(d)) + 1] - t[0]), int((d > 1.5 / RECORD_HZ).sum()),
                  res["missing_ticks"], len(ev), ",".join(loops), res["commands_recorded"], res["commands_span"],
                  ctl, code, cams, late_at)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--load", action="append", help="mixed | cpu:N | none (repeatable; default mixed)")
    ap.add_argument("--sched", action="append", choices=[*SCHEDS, "all"], help="repeatable; default all")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--cgroup", type=Path, help="cgroup directory (writable) the normal-cg runs' daemon joins")
    ap.add_argument("--rtkit-bus", help="D-Bus address of the system bus with rtkit for --sched rtkit (default: "
                    "as root, a private one this script starts (tests/rtkit_sandbox.py); else the system's)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds the load runs before the daemon starts")
    args = ap.parse_args()
    if args.worker is not None:
        kind, *rest = args.worker
        if kind == "cpu":
            worker_cpu()
        elif kind == "fsync":
            worker_fsync(Path(rest[0]))
        elif kind == "arena":
            worker_arena(Path(rest[0]))
        return 0

    scheds = [s for s in SCHEDS if s not in IN_CGROUP] if not args.sched or "all" in args.sched else args.sched
    if IN_CGROUP & set(scheds) and (args.cgroup is None or not (args.cgroup / "cgroup.procs").is_file()):
        raise SystemExit(f"--sched normal-cg needs --cgroup DIR, a cgroup directory; got {args.cgroup}")
    loads = args.load or ["mixed"]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench_daemon_load_") as td, ExitStack() as stack:
        tmp = Path(td)
        rtkit_bus = args.rtkit_bus
        if WITHOUT_SYS_NICE & set(scheds) and rtkit_bus is None and os.geteuid() == 0:
            rtkit_bus = stack.enter_context(rtkit_sandbox(tmp / "rtkit"))
        for rnd in range(args.rounds):
            for load in loads:
                for sched in scheds:  # alternate: each round runs every mode under the same load
                    print(f"round {rnd + 1}: load {load}, scheduling {sched}, {args.duration:.0f} s ...", flush=True)
                    procs = start_load(load, tmp)
                    try:
                        time.sleep(args.warmup if procs else 0.0)
                        r = run_daemon(load, sched, args.duration, tmp, args.cgroup, rtkit_bus)
                    finally:
                        stop_load(procs)
                    results.append(r)
                    print(f"  {fmt(r)}", flush=True)
    print(f"\n{'load':<8}{'sched':<16}{'rate Hz':>9}{'p99 ms':>8}{'max ms':>8}{'late':>6}{'miss':>6}"
          f"{'overrun ev':>11}  commands recorded/sent  control loop  camera fps")
    for r in results:
        print(f"{r.load:<8}{r.sched:<16}{r.rate_hz:>9.3f}{r.period_p99_ms:>8.1f}{r.period_max_ms:>8.1f}{r.late:>6}"
              f"{r.missing:>6}{r.overruns:>11}  {r.recorded}/{r.sent}"
              f"{'' if r.recorded == r.sent else ' (MISSING)'}  {r.control}  {r.camera_fps}"
              + (f"  overran: {r.overrun_loops}" if r.overrun_loops else "") + (f"  exit {r.code}" if r.code else ""))
    return 0 if all(r.code == 0 for r in results) else 1


def fmt(r: Result) -> str:
    return (f"{r.rate_hz:.3f} Hz, period p99 {r.period_p99_ms:.1f} / max {r.period_max_ms:.1f} ms "
            f"(at {r.max_at_s:.1f} s), late {r.late}, "
            f"missing {r.missing}, overrun events {r.overruns}, commands {r.recorded}/{r.sent}, control {r.control}, "
            f"camera fps {r.camera_fps}" + (f", late ticks at {r.late_at}" if r.late_at else ""))


if __name__ == "__main__":
    sys.exit(main())
