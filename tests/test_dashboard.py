"""The live dashboard and the status line, rendered from a filled `SharedState`."""

from __future__ import annotations

import io
import time

import numpy as np
from rich.console import Console

from frankateach.messages import FrankaAction, FrankaState
from frankateach.timing import RateStats
from oculus_server import dashboard
from oculus_server.robot_link import RobotLink
from oculus_server.state import SafetyStatus, SharedState
from oculus_server.vr.source import SourceState, SourceStatus
from robot_formats.recording.records import ControlMode, RobotCommand, RobotObservation, SafetyRecord, VRSample


def _rate(name: str, hz: float, ticks: int, target: float | None = None, ended_s_ago: float = 0.0) -> RateStats:
    """Stats of a loop that ticked exactly every 1/hz seconds until `ended_s_ago` (monotonic clock)."""
    stats = RateStats(name, hz if target is None else target)
    t0 = time.monotonic() - ended_s_ago - (ticks - 1) / hz
    for k in range(ticks):
        stats.tick(t0 + k / hz)
        stats.work(0.001)
    return stats


def _filled_state(mode: ControlMode = ControlMode.PREDICTIVE) -> SharedState:
    st = SharedState()
    pose = np.eye(4)
    pose[:3, 3] = [0.1, -0.3, -0.3]
    st.vr.set_sample(
        VRSample({"r": pose}, {"rightGrip": 1.0, "rightTrig": 0.25, "A": False, "RG": True}, time.monotonic(), 17)
    )
    st.vr.set_status(SourceStatus(SourceState.CONNECTED, samples=321, rejected=2, detail="scripted"))
    state = FrankaState(np.array([0.45, -0.05, 0.31]), np.array([1.0, 0, 0, 0]), -1.0, time.time(), True, np.zeros(7))
    st.robot.set_reply(
        RobotObservation(state, time.monotonic(), time.time(), 0.004),
        RobotLink(up=True, rtt_last_s=0.004, rtt_mean_s=0.0042, rtt_p95_s=0.0071),
    )
    target = FrankaAction(np.array([0.46, -0.04, 0.32]), np.array([1.0, 0, 0, 0]), 1.0, False, time.time())
    st.commands.set_command(RobotCommand(41, time.monotonic(), np.zeros(7), target, mode, True, 17, time.monotonic()))
    st.safety.set_status(SafetyStatus(held="", fault="", sending=True))
    for name, hz in (("vr", 50.0), ("control", 40.0), ("recording", 40.0)):
        st.rates.register(_rate(name, hz, 200))
    st.rates.register(_rate("robot", 38.0, 150, target=0.0))
    st.counters.count("commands_dropped", 3)
    st.counters.count("records_dropped", 5)
    st.episode.update(active=True, path="/data/rec/20250101-120000-000.mcap.partial", started_wall=time.time() - 12.0,
                   messages=4321, bytes_written=3 * 1024 * 1024)
    st.events.add("error", "recording stopped: [Errno 28] No space left on device")
    return st


def _text(renderable) -> str:
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_dashboard_shows_threads_mode_link_queues_recording_and_last_error():
    st = _filled_state(ControlMode.PREDICTIVE)
    text = _text(dashboard.render(st, 42.0))

    lines = text.splitlines()
    for name, hz in (("vr", "50.0"), ("control", "40.0"), ("recording", "40.0"), ("robot", "38.0")):
        row = next((ln for ln in lines if ln.strip().startswith(name + " ")), None)
        assert row is not None, f"no thread row for {name!r} in:\n{text}"
        assert hz in row
    assert "cameras" not in [ln.split()[0] for ln in lines if ln.strip()]  # not registered: no row
    assert "PREDICTIVE" in text and "ENGAGED" in text and "up 42 s" in text
    assert "link" in text and " up" in text and "4.2 / 7.1 ms" in text
    assert "dropped 3" in text and "sent 0" in text  # command queue
    assert "dropped 5" in text  # mcap queue
    assert "/data/rec/20250101-120000-000.mcap.partial" in text
    assert "4321 / 5" in text and "3.0 MB" in text
    assert "last error: recording stopped: [Errno 28] No space left on device" in text
    assert "connected" in text and "321 / 2" in text
    assert "+0.450 -0.050 +0.310" in text  # measured position
    assert "+0.460 -0.040 +0.320" in text  # target position


def test_dashboard_shows_real_time_and_a_down_link():
    st = _filled_state(ControlMode.REAL_TIME)
    st.robot.set_link(RobotLink(up=False, failures=4, last_error="RobotTimeoutError: no reply"))
    text = _text(dashboard.render(st, 5.0, help_text="w/s: forward/back"))
    assert "REAL-TIME" in text and "PREDICTIVE" not in text
    assert "DOWN (4 failed)" in text
    assert "w/s: forward/back" in text


def test_dashboard_renders_an_empty_state():
    text = _text(dashboard.render(SharedState(), 0.0))
    assert "PREDICTIVE" in text and "holding" in text  # nothing anchored yet
    assert "NEVER ANSWERED (0 timeouts)" in text and "idle (A starts an episode)" in text
    assert "last error" not in text


def test_status_line_has_rates_mode_link_and_drops():
    st = _filled_state(ControlMode.PREDICTIVE)
    line = dashboard.status_line(st, 42.4)
    parts = line.split(" | ")
    assert parts[0] == "t=42s" and parts[1] == "PREDICTIVE"
    assert any(p.startswith("vr=50.0Hz") for p in parts)
    assert any(p.startswith("control=40.0Hz") for p in parts)
    assert any(p.startswith("recording=40.0Hz") for p in parts)
    assert "robot=38.0Hz" in parts  # no target rate: no jitter figure
    assert "link=up rtt=4.2/7.1ms" in parts
    assert "drops cmd=3 rec=5" in parts
    assert "REC 4321 msgs 3.0 MB" in parts
    assert "vr=connected rej=2" in parts  # VR rejections are counted in the status line

    st.robot.set_link(RobotLink(up=False))
    st.episode.update(active=False, error="disk full")
    line = dashboard.status_line(st, 1.0)
    assert "link=DOWN rtt=–/–ms" in line and "rec-error: disk full" in line and "REC " not in line


def test_safety_counters_fault_and_held_state_are_shown():
    st = _filled_state(ControlMode.REAL_TIME)
    assert "safety: none" in dashboard.status_line(st, 1.0).split(" | ")
    now = time.time()
    st.safety.add([SafetyRecord("box", "target clamped", now), SafetyRecord("box", "target clamped", now),
                   SafetyRecord("step_pos", "position step 0.076 m limited to 0.040 m", now)])
    st.safety.add([SafetyRecord("implausible_state", "position jumped 0.760 m within 0.200 s", now)])
    st.safety.set_status(SafetyStatus(held="robot state not believed", fault="position jumped 0.760 m", sending=False))
    counters = st.counters.snapshot()
    assert counters["safety_box"] == 2 and counters["safety_step_pos"] == 1 and counters["safety_expired"] == 0

    line = dashboard.status_line(st, 1.0)
    parts = line.split(" | ")
    assert "safety: box 2 step 1 bad-state 1 HELD (robot state not believed)" in parts
    assert "STATE FAULT: position jumped 0.760 m" in parts

    text = _text(dashboard.render(st, 3.0))
    assert "ENGAGED" not in text and "nothing sent: robot state not believed" in text
    assert "box 2 step 1 bad-state 1" in text
    assert "NOT BELIEVED: position jumped 0.760 m" in text
    assert "position jumped 0.760 m within 0.200 s" in text  # the last intervention


def test_event_driven_rate_drops_to_zero_during_an_outage():
    """Cameras (no target rate) that stopped sending 11 s ago show 0 Hz, not their old 30 Hz."""
    st = _filled_state()
    st.rates.register(_rate("cameras", 30.0, 300, target=0.0, ended_s_ago=11.0))
    assert "cameras=0.0Hz" in dashboard.status_line(st, 60.0).split(" | ")
    st.rates.register(_rate("cameras", 30.0, 300, target=0.0, ended_s_ago=0.0))
    assert "cameras=30.0Hz" in dashboard.status_line(st, 60.0).split(" | ")
    # A loop with a target rate keeps its figures (its missed ticks say it stalled).
    st.rates.register(_rate("control", 40.0, 200, ended_s_ago=11.0))
    assert any(p.startswith("control=40.0Hz") for p in dashboard.status_line(st, 60.0).split(" | "))


def test_a_robot_that_never_answered_is_said_so():
    st = SharedState()
    st.robot.set_link(RobotLink(up=False, failures=9, timeouts=9))
    line = dashboard.status_line(st, 10.0)
    assert "robot: NEVER ANSWERED (9 timeouts)" in line.split(" | ")
    assert "NEVER ANSWERED (9 timeouts)" in _text(dashboard.render(st, 10.0))
    # Once it has answered, a lost link is DOWN, not "never answered".
    st2 = _filled_state()
    st2.robot.set_link(RobotLink(up=False, failures=2))
    assert "NEVER" not in dashboard.status_line(st2, 10.0)


def test_live_view_subscriptions_and_drops_are_shown_only_when_it_serves():
    st = SharedState()
    assert "live" not in dashboard.status_line(st, 1.0)
    assert "live view" not in _text(dashboard.render(st, 1.0))
    st.counters.set_queue_depth("live", 0)
    st.counters.set_queue_depth("live_subscriptions", 3)
    st.counters.set_queue_depth("live_client_overflows", 1)
    st.counters.count("live_messages", 1200)
    st.counters.count("live_ticks_dropped", 17)
    line = dashboard.status_line(st, 1.0)
    assert "live subs=3 sent=1200 dropped=17 ticks overflows=1" in line
    text = _text(dashboard.render(st, 1.0))
    assert "live view (80)" in text and "dropped 17 ticks" in text and "client overflows 1" in text


def test_loop_overruns_never_push_the_operators_events_out_of_the_events_line():
    """Under load overrun events come several a second; they have their own line, so the events
    line still shows the episode start after them."""
    from oculus_server.threads.overrun import KIND as OVERRUN

    st = SharedState()
    st.events.add("episode_start", "episode 20250101-120000-000_stack started")
    for k in range(6):
        st.events.add(OVERRUN, f"vr loop overran: a tick started up to {30 + k} ms late")
    text = _text(dashboard.render(st, 1.0))
    events_line = next(ln for ln in text.splitlines() if ln.startswith("events:"))
    assert "episode 20250101-120000-000_stack started" in events_line and "overran" not in events_line
    assert "loop overruns:" in text and "35 ms late" in text  # the newest overrun, on its own line
