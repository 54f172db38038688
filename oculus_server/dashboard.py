"""Live dashboard (rich, main thread) and the compact status line for --no-dashboard / non-TTY.

Both only read snapshots from `SharedState`; neither touches a thread-owned object.
"""

from __future__ import annotations

import math
import time

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from oculus_server.state import SharedState
from oculus_server.threads.overrun import KIND as OVERRUN
from robot_formats.recording.records import ControlMode, summary_state

THREAD_ORDER = ("vr", "control", "robot", "recording", "cameras", "assist")


def _f(x: object, fmt: str = ".1f", none: str = "–") -> str:
    """`x` formatted, or `none` for None, NaN/inf and values that are not numbers (e.g. a tuple)."""
    if isinstance(x, (tuple, list)) and x:
        x = x[0]  # analog inputs may come as 1-tuples
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return none
    return format(x, fmt)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# Dashboard labels of the safety counters, in display order (`oculus_server.safety.kinds`).
SAFETY_LABELS = (
    ("box", "box"),
    ("step_pos", "step"),
    ("step_rot", "turn"),
    ("refused_nonfinite", "nonfinite"),
    ("refused_quat", "quat0"),
    ("gripper", "grip"),
    ("hold_restore", "restore"),
    ("outside_box", "outside"),
    ("implausible_state", "bad-state"),
    ("expired", "expired"),
    ("stale_link", "stale"),
)


def safety_summary(state: SharedState) -> str:
    """Non-zero safety counters, e.g. "box 3 step 12 bad-state 1" ("none" if all are zero)."""
    counts = state.counters.safety_counts()
    parts = [f"{label} {counts[k]}" for k, label in SAFETY_LABELS if counts.get(k)]
    return " ".join(parts) or "none"


def assist_summary(state: SharedState) -> str:
    """One phrase about VLA assist, e.g. "on α=0.30 color-reach lat 9/20 ms drop 0.4%" ("" if off)."""
    status, blend = state.assist.status(), state.assist.blend()
    if status is None and blend is None:
        return ""
    word = summary_state(status, blend)
    alpha = blend.alpha if blend is not None else 0.0
    text = f"{word} α={alpha:.2f}"
    if status is not None:
        text += (f" {status.model} lat {_f(status.latency_ms_p50, '.0f')}/{_f(status.latency_ms_p95, '.0f')} ms"
                 f" drop {_f(status.server_drop_rate_percent, '.1f')}%")
        if status.detail and word != "on":
            text += f" ({status.detail})"
    return text


def status_line(state: SharedState, uptime_s: float) -> str:
    """One compact line: rates, mode, robot link, queues, recording."""
    rates = state.rates.snapshot()
    c = state.counters.snapshot()
    link = state.robot.link()
    ep = state.episode.status()
    vr = state.vr.status()
    parts = [f"t={uptime_s:.0f}s", state.commands.mode().value]
    for name in THREAD_ORDER:
        r = rates.get(name)
        if r is not None and r.ticks:
            parts.append(
                f"{name}={_f(r.achieved_hz)}Hz" + (f"(p99 {_f(r.jitter_p99_ms, '.2f')}ms)" if r.target_hz else "")
            )
    if state.robot.observation() is None and not link.up:
        parts.append(f"robot: NEVER ANSWERED ({link.timeouts} timeouts)")
    else:
        parts.append(f"link={'up' if link.up else 'DOWN'} rtt={_f(link.rtt_mean_s * 1e3)}/{_f(link.rtt_p95_s * 1e3)}ms")
    parts.append(f"vr={vr.state.value} rej={vr.rejected}")
    parts.append(f"drops cmd={c.get('commands_dropped', 0)} rec={c.get('records_dropped', 0)}")
    if "queue_live" in c:  # the live view is serving
        parts.append(f"live subs={c.get('queue_live_subscriptions', 0)} sent={c.get('live_messages', 0)} "
                     f"dropped={c.get('live_ticks_dropped', 0)} ticks "
                     f"overflows={c.get('queue_live_client_overflows', 0)}")
    safety = state.safety.status()
    parts.append(
        f"safety: {safety_summary(state)}" + (f" HELD ({safety.held})" if safety.held and not safety.sending else "")
    )
    if safety.fault:
        parts.append(f"STATE FAULT: {safety.fault}")
    overrun = state.events.last(OVERRUN)
    if overrun is not None:
        parts.append(f"overruns {c.get('loop_overruns', 0):.0f}, last: {overrun.message}")
    assist = assist_summary(state)
    if assist:
        parts.append(f"assist: {assist}")
    if ep.active:
        parts.append(f"REC {ep.messages} msgs {_size(ep.bytes_written)}")
    if ep.error:
        parts.append(f"rec-error: {ep.error}")
    return " | ".join(parts)


ASSIST_STYLES = {"on": "bold green", "connecting": "yellow", "stale": "bold yellow", "off": "dim"}


def assist_table(state: SharedState) -> Table | None:
    """The VLA assist panel (None when assist is not configured)."""
    status, blend = state.assist.status(), state.assist.blend()
    if status is None and blend is None:
        return None
    word = summary_state(status, blend)
    t = Table(title="VLA assist", expand=True, box=None, show_header=False)
    t.add_column("k")
    t.add_column("v")
    why = f" ({blend.state.replace('_', ' ')})" if blend is not None and blend.state not in ("on", word) else ""
    t.add_row("state", Text(word.upper() + why, style=ASSIST_STYLES.get(word, "")))
    if blend is not None:
        t.add_row("α now / target", f"{blend.alpha:.2f} / {blend.alpha_target:.2f}"
                  f"  action age {_f(blend.age_s * 1e3, '.0f')} ms  score {_f(blend.safety_score, '.2f')}")
    if status is not None:
        t.add_row("model / link", f"{status.model}  {status.link}" + (f": {status.detail}" if status.detail else ""))
        t.add_row("latency p50 / p95", f"{_f(status.latency_ms_p50)} / {_f(status.latency_ms_p95)} ms"
                  f"  (round trip {_f(status.rtt_ms_p50)} / {_f(status.rtt_ms_p95)} ms)")
        t.add_row("frames / actions", f"{_f(status.send_hz)} / {_f(status.action_hz)} Hz  "
                  f"sent {status.frames_sent}  received {status.actions_received}")
        t.add_row("drops", f"service {_f(status.server_drop_rate_percent, '.1f')}% ({status.server_frames_dropped})  "
                  f"client {status.client_frames_dropped}/{status.client_actions_dropped}  "
                  f"unmatched {status.actions_unmatched}  reconnects {status.reconnects}")
    return t


def render(state: SharedState, uptime_s: float, title: str = "oculus-server", help_text: str = "") -> Group:
    """The full dashboard as a rich renderable."""
    rates = state.rates.snapshot()
    c = state.counters.snapshot()
    link = state.robot.link()
    mode = state.commands.mode()
    cmd = state.commands.command()
    obs = state.robot.observation()
    vr = state.vr.sample()
    vrs = state.vr.status()
    ep = state.episode.status()

    head = Text()
    head.append(f"{title}  ", style="bold")
    head.append(f" {mode.value} ", style="black on green" if mode is ControlMode.REAL_TIME else "black on yellow")
    safety = state.safety.status()
    engaged = cmd is not None and cmd.engaged and safety.sending
    head.append("  ENGAGED " if engaged else "  holding ", style="bold green" if engaged else "dim")
    if safety.held and not safety.sending:
        head.append(f"  nothing sent: {safety.held}", style="bold yellow")
    head.append(f"  up {uptime_s:.0f} s")

    threads = Table(title="threads", expand=True, box=None)
    for col in ("thread", "target Hz", "achieved Hz", "jitter p50/p99/max ms", "missed", "late", "work p99 ms"):
        threads.add_column(col, justify="right" if col != "thread" else "left")
    for name in THREAD_ORDER:
        r = rates.get(name)
        if r is None:
            continue
        target = _f(r.target_hz, ".0f") if r.target_hz else "as fast"
        threads.add_row(
            name,
            target,
            _f(r.achieved_hz),
            f"{_f(r.jitter_p50_ms, '.2f')} / {_f(r.jitter_p99_ms, '.2f')} / {_f(r.jitter_max_ms, '.2f')}"
            if r.target_hz
            else "–",
            str(r.missed),
            str(r.late),
            _f(r.work_p99_ms, ".2f"),
        )

    robot = Table(title="robot", expand=True, box=None, show_header=False)
    robot.add_column("k")
    robot.add_column("v")
    if obs is None and not link.up:
        robot.add_row("link", Text(f"NEVER ANSWERED ({link.timeouts} timeouts)", style="bold red"))
    else:
        robot.add_row(
            "link", Text("up", style="green") if link.up else Text(f"DOWN ({link.failures} failed)", style="bold red")
        )
    robot.add_row("round trip mean / p95", f"{_f(link.rtt_mean_s * 1e3)} / {_f(link.rtt_p95_s * 1e3)} ms")
    robot.add_row("timeouts / errors", f"{link.timeouts} / {link.errors}")
    if obs is not None:
        robot.add_row(
            "measured pos (m)",
            " ".join(_f(x, "+.3f") for x in obs.state.pos) + f"  age {(time.monotonic() - obs.t_recv) * 1e3:.0f} ms",
        )
    if cmd is not None:
        robot.add_row(
            "target pos (m)", " ".join(_f(x, "+.3f") for x in cmd.target.pos) + f"  gripper {cmd.target.gripper:+.0f}"
        )
    lat = state.latency_figures()
    robot.add_row("cmd age at send p50/p99", f"{_f(lat.get('cmd_age_p50_ms'))} / {_f(lat.get('cmd_age_p99_ms'))} ms")

    queues = Table(title="queues", expand=True, box=None, show_header=False)
    queues.add_column("k")
    queues.add_column("v")
    queues.add_row(
        "command (2)",
        f"depth {c.get('queue_command', 0)}  dropped {c.get('commands_dropped', 0)}  sent {c.get('commands_sent', 0)}",
    )
    queues.add_row("mcap (1000)", f"depth {c.get('queue_mcap', 0)}  dropped {c.get('records_dropped', 0)}")
    if "queue_live" in c:
        queues.add_row(
            "live view (80)",
            f"depth {c.get('queue_live', 0)}  subs {c.get('queue_live_subscriptions', 0)}  "
            f"sent {c.get('live_messages', 0)}  dropped {c.get('live_ticks_dropped', 0)} ticks  "
            f"client overflows {c.get('queue_live_client_overflows', 0)}",
        )
    queues.add_row("camera frames", f"{c.get('camera_frames', 0)}  bad {c.get('camera_errors', 0)}")

    vrt = Table(title="VR", expand=True, box=None, show_header=False)
    vrt.add_column("k")
    vrt.add_column("v")
    style = {"connected": "green", "stale": "yellow", "disconnected": "bold red"}.get(vrs.state.value, "")
    vrt.add_row("source", Text(f"{vrs.state.value}  {vrs.detail}", style=style))
    vrt.add_row("samples / rejected", f"{vrs.samples} / {vrs.rejected}")
    if vr is not None:
        b = vr.buttons
        pressed = [k for k, v in b.items() if v is True]
        vrt.add_row(
            "grip / trigger",
            f"{_f(b.get('rightGrip', b.get('leftGrip', float('nan'))), '.2f')} / "
            f"{_f(b.get('rightTrig', b.get('leftTrig', float('nan'))), '.2f')}",
        )
        vrt.add_row("pressed", " ".join(pressed) or "–")

    rec = Table(title="recording", expand=True, box=None, show_header=False)
    rec.add_column("k")
    rec.add_column("v")
    if ep.active:
        rec.add_row("file", ep.path)
        rec.add_row("duration / size", f"{time.time() - ep.started_wall:.1f} s / {_size(ep.bytes_written)}")
        rec.add_row("messages / dropped", f"{ep.messages} / {c.get('records_dropped', 0)}")
        rec.add_row("success", "yes (B)" if ep.success else "no")
    else:
        rec.add_row("state", "idle (A starts an episode)")
    if ep.last_saved:
        rec.add_row("last saved", ep.last_saved)
    if ep.error:
        rec.add_row("error", Text(ep.error, style="bold red"))

    grid = Table.grid(expand=True)
    grid.add_column()
    grid.add_column()
    grid.add_row(robot, vrt)
    grid.add_row(queues, rec)
    saf = Table(title="safety (command gate)", expand=True, box=None, show_header=False)
    saf.add_column("k")
    saf.add_column("v")
    saf.add_row("interventions", safety_summary(state))
    saf.add_row(
        "robot state",
        Text(f"NOT BELIEVED: {safety.fault}", style="bold red") if safety.fault else Text("believed", style="green"),
    )
    recent = state.safety.recent()
    if recent:
        saf.add_row("last", recent[-1].message)
    grid.add_row(saf, assist_table(state) or Text(""))
    parts: list = [head, threads]
    overrun = state.events.last(OVERRUN)
    if overrun is not None:
        when = time.strftime("%H:%M:%S", time.localtime(overrun.t_wall))
        parts.append(Text(f"loop overruns: {c.get('loop_overruns', 0):.0f}; last {when}: {overrun.message}",
                          style="bold yellow"))
    parts.append(grid)
    err = state.events.last_error()
    if err:
        parts.append(Text(f"last error: {err}", style="red"))
    # Overruns have their own line above: they would push the operator's events out of this one.
    events = [e for e in state.events.recent() if e.kind != OVERRUN][-4:]
    if events:
        parts.append(
            Text(
                "events: "
                + " · ".join(f"{time.strftime('%H:%M:%S', time.localtime(e.t_wall))} {e.message}" for e in events),
                style="dim",
            )
        )
    if help_text:
        parts.append(Panel(help_text, title="keys", expand=True))
    return Group(*parts)
