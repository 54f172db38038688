"""Did the simulated arm follow the scripted pick-and-place? Reads a recording and compares.

    python benchmarks/check_pick_place.py recordings/success/NAME.mcap

The trajectory's phases (`oculus_server.vr.trajectories.PICK_PLACE_TIMES`, first run of
`scripted:pick_place`) are aligned on the
recorded grip press (the `RG` rising edge on /vr/buttons, trajectory time GRIP_PRESS_T); the
measured hand position (/robot/ee_pose) at the end of each phase is compared with the expected
robot-frame displacement, and the measured gripper (finger opening on /robot/joint_states) with
the trigger phases. Prints a table; exit code 0 when every phase is within the tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oculus_server.vr.trajectories import (  # noqa: E402
    GRIP_PRESS_T,
    MOVE_PHASES,
    PICK_PLACE_TIMES,
    PICK_PLACE_WAYPOINTS,
)
from robot_formats.recording.reader import RecordingReader  # noqa: E402

# Cumulative expected hand displacement (m, robot base frame) at the end of each move phase.
EXPECTED = {phase: tuple(PICK_PLACE_WAYPOINTS[phase]) for phase in MOVE_PHASES}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path)
    ap.add_argument("--tol-mm", type=float, default=20.0, help="allowed position error per phase")
    ap.add_argument("--settle-s", type=float, default=0.3, help="time after a phase end to measure at")
    args = ap.parse_args()
    with RecordingReader(args.file) as r:
        grip_t = None
        ee_t, ee_p, js_t, js_f = [], [], [], []
        for topic, ns, _pub, _seq, msg in r.messages(["/vr/buttons", "/robot/ee_pose", "/robot/joint_states"]):
            t = ns / 1e9
            if topic == "/vr/buttons":
                if grip_t is None and (msg.get("right") or {}).get("RG"):
                    grip_t = t
            elif topic == "/robot/ee_pose":
                p = msg.pose.position
                ee_t.append(t)
                ee_p.append((p.x, p.y, p.z))
            else:
                data = msg if isinstance(msg, dict) else json.loads(msg)
                fingers = [p for n, p in zip(data.get("name", []), data.get("position", [])) if "finger" in n]
                if fingers:
                    js_t.append(t)
                    js_f.append(sum(fingers))
    if grip_t is None or not ee_t:
        print("no grip press or no robot pose in this recording")
        return 1
    ee_t, ee_p = np.array(ee_t), np.array(ee_p)

    def pos_at(t: float) -> np.ndarray:
        return ee_p[min(np.searchsorted(ee_t, t), len(ee_t) - 1)]

    t0 = grip_t - GRIP_PRESS_T  # trajectory time zero on the recording's clock
    origin = pos_at(grip_t)
    ok = True
    print(f"grip press at {grip_t - ee_t[0]:.2f} s into the recording; origin {np.round(origin, 4)} m")
    print(f"{'phase':<10}{'expected Δ (m)':>24}{'measured Δ (m)':>26}{'error mm':>10}")
    for phase, exp in EXPECTED.items():
        t_end = t0 + PICK_PLACE_TIMES[phase][1] + args.settle_s
        d = pos_at(t_end) - origin
        err = float(np.linalg.norm(d - np.array(exp)) * 1e3)
        ok &= err <= args.tol_mm
        fmt = lambda v: "(" + ", ".join(f"{x:+.3f}" for x in v) + ")"  # noqa: E731
        print(f"{phase:<10}{fmt(exp):>24}{fmt(d):>26}{err:>10.1f}")
    if js_t:
        js_t, js_f = np.array(js_t), np.array(js_f)

        def width_at(t: float) -> float:
            return float(js_f[min(np.searchsorted(js_t, t), len(js_t) - 1)])

        closed = width_at(t0 + PICK_PLACE_TIMES["close"][1] + args.settle_s)
        opened = width_at(t0 + PICK_PLACE_TIMES["open"][1] + args.settle_s)
        before = width_at(t0 + PICK_PLACE_TIMES["close"][0])
        print(f"finger opening: before close {before * 1e3:.1f} mm, after close {closed * 1e3:.1f} mm, "
              f"after open {opened * 1e3:.1f} mm")
        ok &= closed < before - 0.02 and opened > closed + 0.02
    print("FOLLOWED" if ok else "DID NOT FOLLOW")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
