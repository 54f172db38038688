"""Assist data → `/assist/action`, `/assist/blend`, `/assist/status` messages (JSON, see `schemas`).

Times: an action is logged and published at its receive time; a blend record at its control
tick; a status at the recording tick that carries it. Sequences: action seq; per-topic counters
for the other two. Values that are not available (no round trip, no usable policy action) are
left out, never null.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from robot_formats.recording import encode as E
from robot_formats.recording import schemas as S
from robot_formats.recording.encode import Message, finite_only
from robot_formats.recording.records import AssistAction, AssistStatus, AssistTick, BlendRecord, summary_state


def action7(values: Sequence[float] | np.ndarray) -> dict[str, float] | None:
    """{lin_x: …, …, gripper: …} of 7 finite values, else None."""
    try:
        vals = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if len(vals) != 7 or not all(math.isfinite(v) for v in vals):
        return None
    return dict(zip(S.ACTION_FIELDS, vals))


def assist_messages(tick: AssistTick, tick_ns: int) -> list[Message]:
    """The messages of one tick's assist data (malformed pieces are left out)."""
    out: list[Message] = []
    for action in tick.actions:
        msg = _action(action, tick_ns)
        if msg is not None:
            out.append(msg)
    for record in tick.blends:
        msg = _blend(record, tick_ns)
        if msg is not None:
            out.append(msg)
    if tick.status is not None:
        last = tick.blends[-1] if tick.blends else None
        out.append(_status(tick.status, last, tick_ns))
    return out


def _action(a: AssistAction, tick_ns: int) -> Message | None:
    act = action7(a.action)
    if act is None:  # recorded as received only when it is 7 finite numbers (the blend says "invalid")
        return None
    ns = E.to_ns(a.received_wall) or tick_ns
    body: dict[str, Any] = {
        "timestamp": E.time_json(ns),
        "seq": a.seq,
        "frame_id": a.frame_id,
        "action": act,
        "safety_score": a.safety_score,
        "latency_ms": a.latency_ms,
        "rtt_ms": a.rtt_ms,
        "smoothed": a.smoothed,
    }
    if a.seen_pos is not None and a.seen_quat is not None:
        body["seen_position"] = [float(v) for v in a.seen_pos]
        body["seen_orientation"] = [float(v) for v in a.seen_quat]
    body = finite_only(body)
    if "safety_score" not in body or "latency_ms" not in body:
        return None
    return Message(S.TOPIC_ASSIST_ACTION, E.dumps(body), ns, ns, a.seq)


def _blend(r: BlendRecord, tick_ns: int) -> Message | None:
    operator, blended = action7(r.operator), action7(r.blended)
    if operator is None or blended is None:
        return None
    ns = E.to_ns(r.t_wall) or tick_ns
    body: dict[str, Any] = {
        "timestamp": E.time_json(ns),
        "state": r.state,
        "alpha": r.alpha,
        "alpha_target": r.alpha_target,
        "engaged": r.engaged,
        "operator": operator,
        "policy": action7(r.policy),
        "blended": blended,
        "action_seq": r.action_seq,
        "age_ms": r.age_s * 1e3,
        "safety_score": r.safety_score,
        "gripper_source": r.gripper_source,
        "command_seq": r.command_seq,
        "reanchor": r.reanchor,
    }
    return Message(S.TOPIC_ASSIST_BLEND, E.dumps(finite_only(body)), ns, ns)


def _status(st: AssistStatus, blend: BlendRecord | None, tick_ns: int) -> Message:
    body = finite_only({
        "timestamp": E.time_json(tick_ns),
        "state": summary_state(st, blend),
        "link": st.link,
        "model": st.model,
        "url": st.url,
        "detail": st.detail,
        "frames_sent": st.frames_sent,
        "frames_skipped": st.frames_skipped,
        "actions_received": st.actions_received,
        "actions_unmatched": st.actions_unmatched,
        "client_frames_dropped": st.client_frames_dropped,
        "client_actions_dropped": st.client_actions_dropped,
        "server_frames_dropped": st.server_frames_dropped,
        "server_drop_rate_percent": st.server_drop_rate_percent,
        "server_errors": st.server_errors,
        "reconnects": st.reconnects,
        "latency_ms_p50": st.latency_ms_p50,
        "latency_ms_p95": st.latency_ms_p95,
        "rtt_ms_p50": st.rtt_ms_p50,
        "rtt_ms_p95": st.rtt_ms_p95,
        "send_hz": st.send_hz,
        "action_hz": st.action_hz,
    })
    return Message(S.TOPIC_ASSIST_STATUS, E.dumps(body), tick_ns, tick_ns)
