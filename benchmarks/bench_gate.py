"""Benchmark: the control path's safety cost per control step, in µs (mean, p50, p99).

`StateCheck.judge` (one new measured state) + `CommandGate.admit` (one proposal) for typical
situations: following a moving hand (steps sometimes limited), holding, and refusing.
Run: ``.venv/bin/python benchmarks/bench_gate.py [--steps N]``. Target: well under 100 µs/step.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from frankateach.messages import FrankaState
from oculus_server.safety.config import SafetyConfig
from oculus_server.safety.gate import CommandGate, Proposal, RobotView
from oculus_server.safety.plausibility import StateCheck
from robot_formats.recording.records import ControlMode, RobotObservation

DOWN = np.array([1.0, 0.0, 0.0, 0.0])


def run(name: str, n: int, proposal_at, hz: float = 40.0) -> None:
    cfg = SafetyConfig()
    gate, check = CommandGate(cfg, hz), StateCheck(cfg, hz)
    times = []
    pos = np.array([0.45, 0.0, 0.3])
    limited = 0
    for i in range(n):
        now = i / hz
        obs = RobotObservation(FrankaState(pos.copy(), DOWN, -1.0, now, True, np.zeros(7)), now, now, 0.01, 1)
        t0 = time.perf_counter_ns()
        v = check.judge(obs, gate.last_sent)
        r = gate.admit(proposal_at(i, pos), RobotView(v.believed, check.believed, ControlMode.REAL_TIME, 1), now)
        times.append((time.perf_counter_ns() - t0) / 1000.0)
        if r.command is not None:
            pos = np.asarray(r.command.command.target.pos)
            limited += bool(r.records)
    times.sort()
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    print(f"{name:<32} mean {statistics.fmean(times):6.1f} µs   p50 {times[len(times) // 2]:6.1f} µs"
          f"   p99 {p99:6.1f} µs   ({n} steps, {limited} with an intervention)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=20000)
    n = ap.parse_args().steps

    def circle(i: int, pos: np.ndarray) -> Proposal:  # 10 cm circle, fast enough to be step-limited at times
        a = 2 * math.pi * i / 60
        goal = np.array([0.45 + 0.1 * math.cos(a), 0.1 * math.sin(a), 0.3])
        return Proposal("policy", True, goal, DOWN, -1.0, np.zeros(7))

    run("following a moving hand", n, circle)
    run("holding (deadman released)", n, lambda i, pos: Proposal("policy", False, None, None, -1.0))
    run("refusing a non-finite proposal", n, lambda i, pos: Proposal("policy", True, [math.nan, 0, 0], DOWN, -1.0))


if __name__ == "__main__":
    main()
