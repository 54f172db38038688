"""The assist panel and status-line phrase: off / connecting / on / stale, α, latency p50/p95,
drop rate — rendered from a real `SharedState` as the assist thread and the blender fill it."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from oculus_server import dashboard
from oculus_server.state import SharedState
from robot_formats.recording.records import AssistStatus, BlendRecord, summary_state

OP = (0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
POL = (1.0, 0.0, -0.5, 0.0, 0.0, 0.0, 1.0)
UP = AssistStatus(link="connected", model="color-reach", url="ws://127.0.0.1:8000/v1/stream", frames_sent=300,
                  actions_received=297, server_drop_rate_percent=1.2, server_frames_dropped=3, latency_ms_p50=9.0,
                  latency_ms_p95=21.0, rtt_ms_p50=11.0, rtt_ms_p95=26.0, send_hz=15.0, action_hz=14.9)


def blend(state: str, alpha: float = 0.0) -> BlendRecord:
    policy = POL if state in ("on", "released") else ()
    return BlendRecord(0.0, 0.0, state, alpha, 0.3, state != "released", OP, policy, OP, 3,
                       0.012 if policy else math.nan, 0.9 if policy else math.nan)


def text(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(renderable)
    return out.getvalue()


@pytest.mark.parametrize(
    "status, record, word",
    [
        (None, None, "off"),
        (UP, blend("off"), "off"),
        (AssistStatus(link="connecting", model="color-reach"), None, "connecting"),
        (AssistStatus(link="reconnecting", model="color-reach"), blend("no_link"), "connecting"),
        (UP, None, "stale"),
        (UP, blend("stale"), "stale"),
        (UP, blend("low_score"), "stale"),
        (UP, blend("released"), "on"),  # usable, waiting for the deadman
        (UP, blend("no_action"), "stale"),
        (UP, blend("on", 0.3), "on"),
    ],
)
def test_the_assist_word(status: AssistStatus | None, record: BlendRecord | None, word: str) -> None:
    assert summary_state(status, record) == word


def test_nothing_about_assist_when_it_is_not_configured() -> None:
    st = SharedState()
    assert dashboard.assist_summary(st) == "" and dashboard.assist_table(st) is None
    assert "assist" not in dashboard.status_line(st, 1.0) and "VLA assist" not in text(dashboard.render(st, 1.0))


def test_status_line_and_panel_show_state_alpha_latency_and_drops() -> None:
    st = SharedState()
    st.assist.set_status(UP)
    st.assist.add_blend(blend("on", 0.3))
    line = dashboard.status_line(st, 12.0)
    assert "assist: on α=0.30 color-reach lat 9/21 ms drop 1.2%" in line
    panel = text(dashboard.render(st, 12.0))
    for words in ("VLA assist", "ON", "0.30 / 0.30", "color-reach  connected", "9.0 / 21.0 ms",
                  "round trip 11.0 / 26.0", "15.0 / 14.9 Hz", "service 1.2% (3)"):
        assert words in panel, panel


def test_a_lost_service_shows_as_connecting_with_the_reason() -> None:
    st = SharedState()
    st.assist.set_status(AssistStatus(link="reconnecting", model="color-reach", detail="connection lost (close 1006)"))
    st.assist.add_blend(blend("no_link"))
    assert "assist: connecting α=0.00 color-reach" in dashboard.status_line(st, 3.0)
    assert "(connection lost (close 1006))" in dashboard.status_line(st, 3.0)
    panel = text(dashboard.render(st, 3.0))
    assert "CONNECTING (no link)" in panel and "reconnecting: connection lost (close 1006)" in panel
