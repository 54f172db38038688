"""VR input benchmarks: parser throughput, and QuestReader end to end through the fake headset.

Usage::

    .venv/bin/python benchmarks/bench_vr.py [--lines 20000] [--seconds 5] [--rate 50] [--poll-hz 50]

Prints: parser lines/s on realistic app lines (threadtime prefix, both controllers) and on a
logcat stream where 2 of 3 lines are unrelated; then, for the fake headset streaming at --rate
into a real `QuestReader` polled at --poll-hz: app lines parsed per second, samples returned per
second, parse failures, reconnects, and the time one poll() call takes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from oculus_server.vr.app_log import format_logcat_line
from oculus_server.vr.factory import make_source
from oculus_server.vr.fake_headset import FakeHeadset
from oculus_server.vr.parser import ParsedLine, parse_line
from oculus_server.vr.trajectories import get_trajectory


def realistic_lines(n: int) -> list[bytes]:
    """n app lines from the figure-8 and pick-place trajectories (varied numbers and buttons)."""
    lines = []
    for k in range(n):
        tr = get_trajectory("figure8" if k % 2 else "pick_place")
        poses, buttons = tr.sample((k * 0.02) % 9.5)
        order = ("r", "l") if k % 3 else ("l", "r")
        lines.append(format_logcat_line(poses, buttons, wall_time=1.7e9 + k * 0.02, order=order))
    return lines


def bench_parser(n: int) -> None:
    lines = realistic_lines(n)
    t0 = time.perf_counter()
    ok = sum(isinstance(parse_line(line), ParsedLine) for line in lines)
    dt = time.perf_counter() - t0
    print(f"parser, app lines:          {n / dt:12,.0f} lines/s  ({dt / n * 1e6:.1f} µs/line, {n - ok} rejected)")

    fake = FakeHeadset(-1, noise=2, seed=1)
    mixed: list[bytes] = []
    for line in lines:
        mixed += fake.noise_lines().splitlines(keepends=True) + [line]
    t0 = time.perf_counter()
    for line in mixed:
        parse_line(line)
    dt = time.perf_counter() - t0
    print(f"parser, logcat stream (1/3 app): {len(mixed) / dt:7,.0f} lines/s  ({n / dt:,.0f} app lines/s)")


def bench_reader(seconds: float, rate: float, poll_hz: float) -> None:
    src = make_source(f"fake_headset:figure8@rate={rate:g},noise=2")
    poll_times: list[float] = []
    returned = 0
    try:
        src.start()
        deadline = time.monotonic() + 60.0
        while src.status().samples == 0:  # wait for the child to start (not timed)
            if time.monotonic() > deadline:
                raise SystemExit(f"no sample within 60 s: {src.status()}")
            src.poll()
            time.sleep(0.005)
        start = src.status()
        t0 = time.monotonic()
        next_poll = t0
        while (now := time.monotonic()) - t0 < seconds:
            if now < next_poll:
                time.sleep(next_poll - now)
            next_poll += 1.0 / poll_hz
            p0 = time.perf_counter()
            sample = src.poll()
            poll_times.append(time.perf_counter() - p0)
            returned += sample is not None
        elapsed = time.monotonic() - t0
        end = src.status()
    finally:
        src.close()
    pt = np.array(poll_times) * 1e3
    parsed = end.samples - start.samples
    print(f"reader via fake headset at {rate:g} Hz, polled at {poll_hz:g} Hz for {elapsed:.1f} s:")
    print(f"  app lines parsed:   {parsed / elapsed:8.1f} /s  ({parsed} lines)")
    print(
        f"  samples returned:   {returned / elapsed:8.1f} /s  ({returned} polls with a new sample of {len(poll_times)})"
    )
    print(f"  parse failures:     {end.rejected - start.rejected}   reasons: {dict(end.reject_reasons) or '{}'}")
    print(f"  reconnects:         {end.reconnects}   final state: {end.state.value}")
    print(
        f"  poll() time:        p50 {np.percentile(pt, 50):.3f} ms, p99 {np.percentile(pt, 99):.3f} ms, "
        f"max {pt.max():.3f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=20000, help="lines for the parser benchmark")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of the end-to-end run")
    ap.add_argument("--rate", type=float, default=50.0, help="fake headset line rate, Hz")
    ap.add_argument("--poll-hz", type=float, default=50.0, help="how often the reader is polled")
    args = ap.parse_args()
    bench_parser(args.lines)
    bench_reader(args.seconds, args.rate, args.poll_hz)


if __name__ == "__main__":
    main()
