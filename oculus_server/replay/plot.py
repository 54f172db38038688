"""`teleop-replay plot`: one PNG overview of an episode (matplotlib, Agg backend).

Panels: per-loop achieved rates over time; robot link latency histograms (request round trip,
measurement → receipt, state age); measured vs commanded hand position per axis; gripper measured
vs commanded; VR grip and trigger; loop jitter. Events are vertical lines.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from robot_formats.recording.episode import Episode  # noqa: E402

EVENT_COLOURS = {"error": "tab:red", "success": "tab:green", "episode_start": "tab:blue", "episode_stop": "tab:purple"}


def _events(ax: plt.Axes, ep: Episode) -> None:
    for t, kind, _msg, _data in ep.events:
        colour = next((c for k, c in EVENT_COLOURS.items() if k in kind), "tab:gray")
        ax.axvline(t - ep.t0, color=colour, linestyle="--", linewidth=0.8, alpha=0.8)


def _latency(ax: plt.Axes, ep: Episode) -> None:
    """Histograms of the robot link's latencies that the recording has: the request round trip
    (states in replies), measurement → receipt (every state; the two clocks' offset included) and
    the state's age at the control tick that used it, ms; median and p99 in the legend."""
    series = (("request round trip", ep.rtt_ms), ("measurement → receipt", ep.transport_ms),
              ("state age at the tick", ep.state_age_ms))
    drawn = False
    for label, values in series:
        v = values[np.isfinite(values)]
        if not v.size:
            continue
        p50, p99 = np.percentile(v, [50, 99])
        ax.hist(v, bins=min(60, max(10, v.size // 10)), histtype="step", linewidth=1.5,
                label=f"{label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        drawn = True
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no latency figures recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("robot link latency")
    ax.set_xlabel("ms")


def plot_episode(ep: Episode, out: Path, dpi: int = 110) -> Path:
    """Draws the overview of `ep` into `out` (PNG) and returns `out`."""
    fig, axes = plt.subplots(4, 2, figsize=(14, 13), constrained_layout=True)
    ax = axes[0, 0]
    tt = ep.timing_t - ep.t0
    for name, hz in sorted(ep.loop_hz.items()):
        ax.plot(tt, hz, marker=".", label=name)
    ax.set_title("achieved loop rates")
    ax.set_ylabel("Hz")
    if ep.loop_hz:
        ax.legend(fontsize=8, loc="lower right")
    _events(ax, ep)

    _latency(axes[0, 1], ep)

    rt = ep.robot_t - ep.t0
    ct = ep.cmd_t - ep.t0
    for k, axis in enumerate("xyz"):
        ax = axes[1 + k // 2, k % 2]
        ax.plot(rt, ep.ee_pos[:, k], label="measured")
        if ep.target_pos.size:
            ax.step(ct, ep.target_pos[:, k], where="post", label="target", alpha=0.8)
        ax.set_title(f"hand {axis}")
        ax.set_ylabel("m")
        ax.legend(fontsize=8)
        _events(ax, ep)

    ax = axes[2, 1]
    ax.plot(rt, ep.gripper, label="measured")
    if ep.target_gripper.size:
        ax.step(ct, ep.target_gripper, where="post", label="commanded", alpha=0.8)
    ax.set_title("gripper (−1 open … +1 closed)")
    ax.legend(fontsize=8)
    _events(ax, ep)

    ax = axes[3, 0]
    vt = ep.vr_t - ep.t0
    for values, label in ((ep.vr_right_grip, "right grip"), (ep.vr_right_trigger, "right trigger"),
                          (ep.vr_left_grip, "left grip"), (ep.vr_left_trigger, "left trigger")):
        if np.isfinite(values).any():
            ax.plot(vt, values, label=label)
    ax.set_title("VR analog inputs")
    ax.set_xlabel("s")
    ax.legend(fontsize=8)
    _events(ax, ep)

    ax = axes[3, 1]
    for name, jit in sorted(ep.loop_jitter_p99_ms.items()):
        ax.plot(tt, jit, marker=".", label=name)
    ax.set_title("loop period jitter p99")
    ax.set_ylabel("ms")
    ax.set_xlabel("s")
    if ep.loop_jitter_p99_ms:
        ax.legend(fontsize=8)
    _events(ax, ep)

    fig.suptitle(f"{ep.path.name} — {ep.task or 'no task'} — outcome: {ep.outcome}")
    out = Path(out)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
