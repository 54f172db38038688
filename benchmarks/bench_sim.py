"""MuJoCo simulator benchmarks.

Usage::

    .venv/bin/python benchmarks/bench_sim.py [--seconds 5] [--camera-width 320] [--camera-height 240]
                                              [--camera-fps 15] [--rtt-calls 500]

Prints:
  * headless throughput: sim seconds per wall second when stepping as fast as possible;
  * controller step time (µs) and mujoco step time (µs);
  * real-time physics (500 Hz, served, no client traffic) without cameras: real-time factor,
    mean control+physics step time, dropped steps, wake-up jitter;
  * the same with both cameras rendering in their process, plus achieved fps and render+JPEG
    time per camera;
  * REQ/REP round trip (latency 0): get_state and action, median and p99.
"""

from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np

from frankateach.client import RobotClient
from frankateach.messages import FrankaAction
from frankateach.sim.backend import SimBackend
from frankateach.sim.model import build_model
from frankateach.sim.server import SimServer, start_sim_server


def bench_headless(seconds: float) -> None:
    model = build_model(cameras=False)
    sim = SimBackend(model)
    home = sim.read_state()
    sim.apply_action(FrankaAction(home.pos + [0.1, 0.0, -0.1], home.quat, -1.0, False, 0.0))
    t0 = time.perf_counter()
    sim.run_for(seconds)
    wall = time.perf_counter() - t0
    print(f"headless: {seconds / wall:6.1f}x real time ({sim.mean_step_us():.0f} µs per control+physics step)")

    ctl = sim.controller
    q = sim.joint_positions()
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        ctl.step(q, sim.dt)
    ctl_us = (time.perf_counter() - t0) / n * 1e6
    data = mujoco.MjData(model)
    t0 = time.perf_counter()
    for _ in range(n):
        mujoco.mj_step(model, data)
    step_us = (time.perf_counter() - t0) / n * 1e6
    print(f"controller step: {ctl_us:6.1f} µs   mj_step: {step_us:6.1f} µs")


def report_realtime(label: str, sim: SimServer, seconds: float) -> None:
    b = sim.backend
    steps0, t_step0, drop0 = b.steps, b.step_time_s, b.dropped_steps
    sim_t0, wall0 = b.sim_time, time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - wall0
    steps = b.steps - steps0
    snap = b.loop_stats.snapshot()
    print(
        f"{label}: rtf {(b.sim_time - sim_t0) / wall:.3f} (window {b.realtime_factor():.3f}), "
        f"step {(b.step_time_s - t_step0) / max(steps, 1) * 1e6:.0f} µs, dropped {b.dropped_steps - drop0} "
        f"steps, wake-up jitter p50 {snap.jitter_p50_ms:.2f} ms p99 {snap.jitter_p99_ms:.2f} ms"
    )
    if sim.cameras is not None:
        fps, ms = sim.cameras.fps(), sim.cameras.render_ms()
        print("  cameras: " + ", ".join(f"{k} {fps[k]:.1f} fps ({ms[k]:.1f} ms render+jpeg)" for k in fps))
    elif sim.camera_error:
        print(f"  cameras off: {sim.camera_error}")


def bench_rtt(sim: SimServer, calls: int) -> None:
    client = RobotClient(port=sim.ports.control)
    try:
        home = client.get_state()
        for label, fn in [
            ("get_state", client.get_state),
            ("action", lambda: client.send(FrankaAction(home.pos, home.quat, -1.0, False, time.time()))),
        ]:
            rtts = []
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                rtts.append(time.perf_counter() - t0)
            r = np.array(rtts) * 1e3
            print(f"REQ/REP {label:9s}: median {np.median(r):.3f} ms  p99 {np.percentile(r, 99):.3f} ms  "
                  f"max {r.max():.3f} ms  ({calls} calls)")
    finally:
        client.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--camera-width", type=int, default=320)
    p.add_argument("--camera-height", type=int, default=240)
    p.add_argument("--camera-fps", type=float, default=15.0)
    p.add_argument("--rtt-calls", type=int, default=500)
    a = p.parse_args()

    bench_headless(a.seconds)
    sim = start_sim_server()
    try:
        time.sleep(1.0)
        report_realtime("real time, no cameras", sim, a.seconds)
        bench_rtt(sim, a.rtt_calls)
    finally:
        sim.stop()
    sim = start_sim_server(cameras=True, camera_width=a.camera_width, camera_height=a.camera_height,
                           camera_fps=a.camera_fps)
    try:
        time.sleep(2.0)
        report_realtime(f"real time, cameras {a.camera_width}x{a.camera_height}@{a.camera_fps:g}", sim,
                        a.seconds)
        bench_rtt(sim, a.rtt_calls)
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
