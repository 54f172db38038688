"""The parts of a `SharedState` each daemon thread takes, as the daemon hands them (tests build threads alone)."""

from __future__ import annotations

from typing import Any

from oculus_server.state import SharedState


def robot_parts(st: SharedState) -> dict[str, Any]:
    """Keyword arguments of `RobotCommThread` taken from `st`."""
    return {"robot": st.robot, "sent": st.sent, "counters": st.counters, "interventions": st.safety,
            "events": st.events, "rates": st.rates}


def control_parts(st: SharedState) -> dict[str, Any]:
    """Keyword arguments of `ControlThread` taken from `st`."""
    return {"vr": st.vr, "robot": st.robot, "command_out": st.commands, "counters": st.counters,
            "interventions": st.safety, "events": st.events, "episode": st.episode, "rates": st.rates}


def assist_parts(st: SharedState) -> dict[str, Any]:
    """Keyword arguments of `AssistThread` taken from `st`."""
    return {"frames": st.cameras, "robot": st.robot, "channel": st.assist, "events": st.events, "rates": st.rates}
