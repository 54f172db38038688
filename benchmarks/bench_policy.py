"""Benchmark: `VRPolicy.step` time per call, in µs (mean, p50, p99), for typical situations.

Run: ``.venv/bin/python benchmarks/bench_policy.py [--steps N]``. Target: well under 100 µs/step.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
from scipy.spatial.transform import Rotation as R

from oculus_server.policy import PolicyConfig, VRPolicy
from robot_formats.recording.records import ControlMode, VRSample

REF_POS = np.array([0.5, 0.0, 0.4])
REF_QUAT = np.array([1.0, 0.0, 0.0, 0.0])


def make_samples(n: int, buttons: dict) -> list[VRSample]:
    """A controller drawing a slow 5 cm circle while turning, sampled at 50 Hz."""
    out = []
    for i in range(n):
        a = 2 * math.pi * i / 200
        pose = np.eye(4)
        pose[:3, :3] = R.from_rotvec([0.1 * math.sin(a), 0.2 * math.cos(a), 0.05]).as_matrix()
        pose[:3, 3] = [0.1 + 0.05 * math.cos(a), -0.2 + 0.05 * math.sin(a), -0.3]
        out.append(VRSample(poses={"r": pose}, buttons=dict(buttons, rightTrig=0.5), t_recv=i * 0.02, seq=i))
    return out


def run(name: str, policy: VRPolicy, samples: list[VRSample], fresh: bool = True) -> None:
    """Steps the policy once per sample and prints per-step timing."""
    times = []
    pos = REF_POS.copy()
    engaged = 0
    for s in samples:
        now = s.t_recv + (0.001 if fresh else 1.0)
        t0 = time.perf_counter_ns()
        out = policy.step(
            s,
            robot_pos=pos,
            robot_quat=REF_QUAT,
            robot_gripper=-1.0,
            reference_pos=pos,
            reference_quat=REF_QUAT,
            mode=ControlMode.REAL_TIME,
            now=now,
            timestamp=now,
        )
        times.append((time.perf_counter_ns() - t0) / 1000.0)
        if out.target is not None:
            pos = out.target.pos  # the robot "follows" perfectly (a hold has no target: it stays)
        engaged += out.engaged
    times.sort()
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    print(
        f"{name:<34} mean {statistics.fmean(times):7.1f} µs   p50 {times[len(times) // 2]:7.1f} µs"
        f"   p99 {p99:7.1f} µs   ({len(times)} steps, {engaged} engaged)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20000, help="steps per scenario")
    args = parser.parse_args()
    n = args.steps

    def engaged_policy(config: PolicyConfig | None = None) -> VRPolicy:
        p = VRPolicy(config)
        warm = make_samples(2, {})
        for s, b in zip(warm, ({}, {"RG": True})):
            s = VRSample(poses=s.poses, buttons=dict(s.buttons, **b), t_recv=-1.0, seq=-1)
            p.step(s, robot_pos=REF_POS, robot_quat=REF_QUAT, robot_gripper=-1.0, reference_pos=REF_POS,
                   reference_quat=REF_QUAT, mode=ControlMode.REAL_TIME, now=-0.999, timestamp=0.0)
        return p

    run("engaged, moving (DROID defaults)", engaged_policy(), make_samples(n, {"RG": True}))
    run("engaged, moving (performance)", engaged_policy(PolicyConfig.performance()), make_samples(n, {"RG": True}))
    run("engaged, motion calibration mode", engaged_policy(PolicyConfig(calibration_mode="motion")),
        make_samples(n, {"RG": True}))
    run("deadman released, calibration armed", VRPolicy(), make_samples(n, {}))
    run("link lost (stale sample)", VRPolicy(), make_samples(n, {"RG": True}), fresh=False)


if __name__ == "__main__":
    main()
