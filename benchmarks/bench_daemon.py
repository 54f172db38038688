"""Benchmark of the whole daemon: runs `oculus-server --debug` and measures it from outside.

Prints, for one run: per-thread achieved rate and period jitter (p50/p99/max), missing recording
ticks, command age at send, VR-sample-to-command latency, robot round trip, dropped commands and
records, and the CPU use of the daemon process (and of the simulator, for context). Recording and
control figures come from the recording's own timestamps over the whole run; the other threads'
figures from the daemon's last `/timing` snapshot (a rolling window).

    python benchmarks/bench_daemon.py --duration 60                  # --debug --performance
    python benchmarks/bench_daemon.py --duration 600                 # the 10-minute soak
    python benchmarks/bench_daemon.py --duration 60 --config configs/fast100.yaml   # 100 Hz mode
    python benchmarks/bench_daemon.py --duration 30 --kill           # SIGKILL, then recover
    python benchmarks/bench_daemon.py --duration 60 --assist color-reach   # VLA assist on (local service)

With ``--assist MODEL`` the daemon starts its local inference service (the policy blends in at
the default weight while the scripted operator draws circles) and the assist loop's figures are
printed too: frames sent and actions received per second, service latency and round trip
p50/p95, drops, and the share of control ticks the policy was used on. CPU is reported per
process: daemon, simulator, inference service (with its model worker).

Not a test: it prints figures and exits 0 unless the daemon itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from mcap.reader import make_reader

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robot_formats.recording.recover import find_partials, recover  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def period_figures(t_s: np.ndarray, target_hz: float) -> dict[str, float]:
    d = np.diff(t_s)
    jitter = np.abs(d - 1.0 / target_hz) * 1e3
    return {
        "n": int(t_s.size),
        "achieved_hz": (t_s.size - 1) / (t_s[-1] - t_s[0]),
        "jitter_p50_ms": float(np.percentile(jitter, 50)),
        "jitter_p99_ms": float(np.percentile(jitter, 99)),
        "jitter_max_ms": float(jitter.max()),
        "longest_period_ms": float(d.max() * 1e3),
    }


def analyse(path: Path, record_hz: float) -> dict:
    with open(path, "rb") as f:
        reader = make_reader(f)
        ticks_t, ticks_seq, timing, meta = [], [], None, {}
        modes: list[tuple[str, bool]] = []
        cmd_seq: list[int] = []
        ee_t: list[float] = []
        for m in reader.iter_metadata():
            meta[m.name] = dict(m.metadata)
        topics = ["/control/mode", "/timing", "/robot/command", "/robot/ee_pose", "/assist/blend", "/assist/status"]
        blend_states: dict[str, int] = {}
        alphas: list[float] = []
        assist_status: dict | None = None
        for _schema, channel, msg in reader.iter_messages(topics=topics):
            if channel.topic == "/control/mode":
                ticks_t.append(msg.log_time / 1e9)
                ticks_seq.append(msg.sequence)
                body = json.loads(msg.data)
                modes.append((body.get("mode", ""), bool(body.get("engaged"))))
            elif channel.topic == "/robot/command":
                cmd_seq.append(msg.sequence)
            elif channel.topic == "/robot/ee_pose":
                ee_t.append(msg.publish_time / 1e9)
            elif channel.topic == "/assist/blend":
                body = json.loads(msg.data)
                blend_states[body["state"]] = blend_states.get(body["state"], 0) + 1
                alphas.append(float(body["alpha"]))
            elif channel.topic == "/assist/status":
                assist_status = json.loads(msg.data)
            else:
                timing = json.loads(msg.data)
    seq = np.array(ticks_seq)
    sent = np.array(cmd_seq)
    engaged = [mode for mode, eng in modes if eng]
    ee = np.sort(np.array(ee_t))
    out = {
        "recording": period_figures(np.array(ticks_t), record_hz),
        "missing_ticks": int((np.diff(seq) - 1).sum()) if seq.size else -1,
        "timing": timing,
        "end": meta.get("recording_end", {}),
        # every command sent is recorded once: send counters consecutive from first to last
        "commands_recorded": int(sent.size),
        "commands_span": int(sent.max() - sent.min() + 1) if sent.size else 0,
        "command_seq_gaps": int((np.diff(np.sort(sent)) - 1).clip(min=0).sum()) if sent.size else -1,
        "measured_states": int(ee.size),
        "measured_hz": float((ee.size - 1) / (ee[-1] - ee[0])) if ee.size > 1 else float("nan"),
        "real_time_engaged": (engaged.count("REAL-TIME") / len(engaged)) if engaged else float("nan"),
        "engaged_ticks": len(engaged),
        "assist_blend_states": blend_states,
        "assist_alpha_mean": float(np.mean(alphas)) if alphas else float("nan"),
        "assist_status": assist_status,
    }
    return out


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    """A /proc/PID/status memory figure (VmRSS, VmHWM), KiB (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--vr-source", default="scripted:circle@loop=1")
    ap.add_argument("--config", type=Path, help="e.g. configs/fast100.yaml")
    ap.add_argument("--no-performance", action="store_true")
    ap.add_argument("--no-cameras", action="store_true")
    ap.add_argument("--latency-ms", type=float, default=150.0)
    ap.add_argument("--kill", action="store_true", help="SIGKILL the daemon near the end and recover")
    ap.add_argument("--assist", metavar="MODEL", help="VLA assist with this model (a local inference service)")
    ap.add_argument("--instruction", default="pick up the red cube", help="with --assist: the policy's task")
    args = ap.parse_args()

    out_dir = Path(tempfile.mkdtemp(prefix="bench_daemon_"))
    cmd = [sys.executable, "-m", "oculus_server.cli", "--debug", "--vr-source", args.vr_source,
           "--no-dashboard", "--record-on-start", "--recordings-dir", str(out_dir),
           "--sim-latency-ms", str(args.latency_ms)]
    if not args.no_performance:
        cmd.append("--performance")
    if args.config:
        cmd += ["--config", str(args.config)]
    if args.no_cameras:
        cmd.append("--no-sim-cameras")
    if not args.kill:
        cmd += ["--duration", str(args.duration)]
    if args.assist:
        cmd += ["--assist", args.assist, "--instruction", args.instruction]
        if not args.no_performance:
            # 40 Hz: 2 periods (50 ms) are shorter than a 15 fps frame period; use the setting
            # the daemon's own warning recommends, so the blend is on between frames.
            extra = Path(tempfile.mkdtemp(prefix="bench_daemon_cfg_")) / "assist.yaml"
            base = yaml.safe_load(args.config.read_text()) if args.config else {}
            base = dict(base or {})
            base["assist"] = {"max_age_periods": 4, **dict(base.get("assist") or {})}
            extra.write_text(yaml.safe_dump(base))
            if args.config:
                i = cmd.index("--config")
                cmd[i + 1] = str(extra)
            else:
                cmd += ["--config", str(extra)]
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    log_path = out_dir / "daemon.log"
    print(f"$ {' '.join(cmd)}\n  (log: {log_path})", flush=True)
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, env=env)
    # Wait for the episode file, then measure CPU over the steady part of the run.
    t_start = time.monotonic()
    while not list(out_dir.glob("*.mcap.partial")) and proc.poll() is None and time.monotonic() - t_start < 90:
        time.sleep(0.1)
    time.sleep(1.0)
    sim_pids = [p for p in children(proc.pid)]
    roles = {p: role(p) for p in sim_pids}
    t0, c0 = time.monotonic(), cpu_seconds(proc.pid)
    s0 = {p: cpu_seconds(p) + sum(cpu_seconds(c) for c in children(p)) for p in sim_pids}
    window = max(1.0, args.duration - 3.0)
    killed_at = None
    rss_samples: list[int] = []
    hwm = 0
    if args.kill:
        time.sleep(window)
        c1, t1 = cpu_seconds(proc.pid), time.monotonic()
        s1 = {p: cpu_seconds(p) + sum(cpu_seconds(c) for c in children(p)) for p in sim_pids}
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for p in sim_pids:  # the simulator runs in its own session: stop it (and its renderer) too
            try:
                os.killpg(p, signal.SIGTERM)
            except OSError:
                continue
            for _ in range(30):
                if not Path(f"/proc/{p}").exists() or "Z" in Path(f"/proc/{p}/stat").read_text().split()[2]:
                    break
                time.sleep(0.1)
            else:
                os.killpg(p, signal.SIGKILL)
    else:
        while proc.poll() is None and time.monotonic() - t0 < window:
            rss_samples.append(rss_kib(proc.pid))
            time.sleep(0.2)
        hwm = rss_kib(proc.pid, "VmHWM")
        c1, t1 = cpu_seconds(proc.pid), time.monotonic()
        s1 = {
            p: cpu_seconds(p) + sum(cpu_seconds(c) for c in children(p))
            for p in sim_pids
            if Path(f"/proc/{p}").exists()
        }
        proc.wait(timeout=args.duration + 60)
    daemon_cpu = (c1 - c0) / (t1 - t0) * 100
    child_cpu = {p: (s1.get(p, s0[p]) - s0[p]) / (t1 - t0) * 100 for p in s0}
    sim_cpu = sum(v for p, v in child_cpu.items() if roles[p] == "simulator")
    service_cpu = sum(v for p, v in child_cpu.items() if roles[p] == "inference service")
    other_cpu = sum(v for p, v in child_cpu.items() if roles[p] == "other")
    rec_cpu = sum(v for p, v in child_cpu.items() if roles[p] == "recording process")
    print(f"daemon exit code {proc.returncode}")

    if args.kill:
        partials = find_partials(out_dir)
        if partials:  # the writer ran in the daemon (writer_process: false): recover the partial
            report = recover(partials[0])
            print(f"SIGKILL at wall {killed_at:.3f}; recover: {report.describe()}")
            last = report.last_log_time_ns / 1e9
            files = [report.output]
        else:  # the recording process finalized the episode when the daemon died
            time.sleep(3.0)
            files = sorted(out_dir.glob("*/*.mcap"))
            if not files:
                print("no recording found")
                return 1
            with open(files[0], "rb") as f:
                last = max(m.log_time for _, _, m in make_reader(f).iter_messages(log_time_order=False)) / 1e9
            print(f"SIGKILL at wall {killed_at:.3f}; the recording process finalized {files[0]}")
        print(f"  data lost to SIGKILL: {killed_at - last:.3f} s (kill time − last recorded log time)")
    else:
        files = sorted(out_dir.glob("*/*.mcap"))
    if not files:
        print("no recording found")
        return 1
    path = max(files, key=lambda p: p.stat().st_size)
    record_hz = 100.0 if args.config and "100" in args.config.name else 40.0
    res = analyse(path, record_hz)
    r = res["recording"]
    print(f"\nrecording {path.name}: {path.stat().st_size / 1e6:.1f} MB, {r['n']} ticks")
    print(
        f"recorded ticks (the file's own log times): {r['achieved_hz']:.3f} Hz (target {record_hz:.0f}), "
        f"period jitter p50 {r['jitter_p50_ms']:.3f} / p99 {r['jitter_p99_ms']:.3f} / max {r['jitter_max_ms']:.3f} ms, "
        f"missing ticks {res['missing_ticks']}"
    )
    timing = res["timing"] or {"loops": [], "counters": []}
    print("per thread, as the daemon measured its own wake-ups over the whole run (last /timing):")
    print(f"{'thread':<12}{'target':>8}{'achieved':>10}{'p50 ms*':>9}{'p99 ms':>9}{'max ms':>9}  ticks / missed / late")
    for loop in timing["loops"]:
        tgt = loop["target_hz"] or float("nan")
        if loop["target_hz"]:
            print(
                f"{loop['name']:<12}{tgt:>8.1f}{loop['run_hz']:>10.3f}{loop['jitter_p50_ms']:>9.3f}"
                f"{loop['run_jitter_p99_ms']:>9.3f}{loop['run_jitter_max_ms']:>9.3f}  "
                f"{loop['ticks']} / {loop['missed']} / {loop['late']}"
            )
        else:
            print(f"{loop['name']:<12}{'-':>8}{loop['run_hz']:>10.3f}{'':>27}  {loop['ticks']} exchanges/frames")
    print("  (* p50 over the last window of 4000 periods)")
    counters = {c["name"]: c["value"] for c in timing["counters"]}
    for key in ("cmd_age_p50_ms", "cmd_age_p99_ms", "cmd_age_max_ms", "vr_to_cmd_p50_ms", "vr_to_cmd_p99_ms",
                "rtt_mean_ms", "rtt_p95_ms", "commands_sent", "commands_dropped", "records_dropped", "records_queued"):
        if key in counters:
            print(f"  {key:<20} {counters[key]:.3f}")
    print(f"CPU: daemon {daemon_cpu:.1f}% of one core; simulator (physics + renderer) {sim_cpu:.1f}%"
          + (f"; inference service (+ worker) {service_cpu:.1f}%" if args.assist else "")
          + (f"; recording process {rec_cpu:.1f}%" if rec_cpu else "")
          + (f"; other children {other_cpu:.1f}%" if other_cpu else "")
          + f"  (over {t1 - t0:.1f} s)")
    if rss_samples:
        steady = sorted(rss_samples)[len(rss_samples) // 2]
        print(f"memory: daemon RSS median {steady / 1024:.1f} MiB, peak (VmHWM) {hwm / 1024:.1f} MiB")
    sent_total = counters.get("commands_sent")
    print(f"commands: {res['commands_recorded']} recorded on /robot/command, send counters "
          f"{res['commands_span']} consecutive ({res['command_seq_gaps']} missing)"
          + (f"; daemon counted {sent_total:.0f} sent by its last /timing (~1 s before the end)" if sent_total else ""))
    print(f"measured state: {res['measured_states']} states on /robot/ee_pose at {res['measured_hz']:.1f} Hz; "
          f"control REAL-TIME in {res['real_time_engaged'] * 100:.1f}% of {res['engaged_ticks']} engaged ticks")
    if args.assist:
        print_assist(res)
    return 0 if proc.returncode == 0 or args.kill else 1


def print_assist(res: dict) -> None:
    """The assist loop's figures (from the last /assist/status and every /assist/blend)."""
    st = res["assist_status"] or {}
    states = res["assist_blend_states"]
    ticks = sum(states.values())

    def f(key: str, fmt: str = ".1f") -> str:
        return format(st[key], fmt) if key in st else "-"

    print(f"assist ({st.get('model', '?')}, link {st.get('link', '?')}): frames sent {f('send_hz')} Hz, "
          f"actions received {f('action_hz')} Hz; service latency p50 {f('latency_ms_p50')} / p95 "
          f"{f('latency_ms_p95')} ms, round trip p50 {f('rtt_ms_p50')} / p95 {f('rtt_ms_p95')} ms")
    print(f"  frames sent {st.get('frames_sent', 0)}, actions {st.get('actions_received', 0)} "
          f"(unmatched {st.get('actions_unmatched', 0)}); drops: service {f('server_drop_rate_percent')}% "
          f"({st.get('server_frames_dropped', 0)} frames), client {st.get('client_frames_dropped', 0)} frames / "
          f"{st.get('client_actions_dropped', 0)} actions; reconnects {st.get('reconnects', 0)}")
    if ticks:
        share = ", ".join(f"{k} {v / ticks * 100:.1f}%" for k, v in sorted(states.items(), key=lambda kv: -kv[1]))
        print(f"  control ticks ({ticks}): {share}; mean α {res['assist_alpha_mean']:.3f}")


def role(pid: int) -> str:
    """What a child of the daemon is, from its command line."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    if "frankateach.sim" in cmdline:
        return "simulator"
    if "vla_server.cli serve" in cmdline:
        return "inference service"
    if "multiprocessing.spawn" in cmdline:
        return "recording process"
    return "other"


if __name__ == "__main__":
    sys.exit(main())
