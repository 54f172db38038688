"""The `/assist/*` topics: written through the real `EpisodeWriter`, valid against the JSON
schemas stored in the file, read back with the MCAP reader; absent when assist is off."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from oculus_server.recording.synthetic import SyntheticEpisode
from robot_formats.recording import schemas as S
from robot_formats.recording.reader import RecordingReader
from robot_formats.recording.records import AssistAction, AssistStatus, AssistTick, BlendRecord
from robot_formats.recording.writer import EpisodeWriter
from tests.recording_checks import validate_json_messages

T0 = 1_750_000_000.0
OP = (0.1, -0.2, 0.0, 0.0, 0.05, 0.0, 0.3)
POL = (1.0, 0.0, -0.5, 0.0, 0.0, 0.1, 1.0)


def _action(seq: int, action=POL, rtt: float = 12.0, seen: bool = True) -> AssistAction:
    return AssistAction(seq=seq, frame_id=seq, action=np.array(action, dtype=float), received_at=10.0 + seq,
                        received_wall=T0 + 0.01 * seq, safety_score=0.875, latency_ms=9.5, rtt_ms=rtt,
                        seen_pos=(0.45, 0.0, 0.3) if seen else None, seen_quat=(1.0, 0.0, 0.0, 0.0) if seen else None)


def _blend(k: int, alpha: float, state: str = "on") -> BlendRecord:
    pol = POL if state in ("on", "released") else ()
    blended = tuple(alpha * p + (1 - alpha) * o for p, o in zip(POL[:6], OP[:6])) + (OP[6],) if pol else OP
    return BlendRecord(t_mono=10.0 + 0.05 * k, t_wall=T0 + 0.05 * k, state=state, alpha=alpha, alpha_target=0.3,
                       engaged=state != "released", operator=OP, policy=pol, blended=blended, action_seq=k,
                       age_s=0.012 if pol else math.nan, safety_score=0.875 if pol else math.nan, command_seq=k)


def test_assist_topics_are_written_valid_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "ep.mcap"
    status = AssistStatus(link="connected", model="color-reach", url="ws://127.0.0.1:8000/v1/stream",
                          frames_sent=30, actions_received=29, server_drop_rate_percent=3.3, latency_ms_p50=9.0,
                          latency_ms_p95=20.0, send_hz=15.0, action_hz=14.5)
    ticks = [
        AssistTick(actions=(_action(0), _action(1, rtt=math.nan, seen=False)), blends=(_blend(0, 0.1),), status=status),
        AssistTick(actions=(_action(2, action=(math.nan,) * 7),), blends=(_blend(1, 0.2), _blend(2, 0.0, "stale"))),
        AssistTick(blends=(_blend(3, 0.0, "released"),)),
    ]
    ep = SyntheticEpisode(t0_wall=T0)
    w = EpisodeWriter(path, {"operator": "test"})
    for i, tick in enumerate(ep.ticks(6)):
        w.write(replace(tick, assist=ticks[i] if i < len(ticks) else None))
    w.close("success")

    checked = validate_json_messages(path)
    assert checked[S.TOPIC_ASSIST_ACTION] == 2  # the NaN action is not recorded (its blend says "invalid")
    assert checked[S.TOPIC_ASSIST_BLEND] == 4 and checked[S.TOPIC_ASSIST_STATUS] == 1
    with RecordingReader(path) as r:
        actions = [m for _, _, _, _, m in r.messages([S.TOPIC_ASSIST_ACTION])]
        blends = [(seq, m) for _, _, _, seq, m in r.messages([S.TOPIC_ASSIST_BLEND])]
        (status_msg,) = [m for _, _, _, _, m in r.messages([S.TOPIC_ASSIST_STATUS])]
        schemas = {name: sch.name for name, (_ch, sch) in r.channels().items() if sch is not None}
    assert schemas[S.TOPIC_ASSIST_BLEND] == "teleop.AssistBlend"
    assert actions[0]["action"] == dict(zip(S.ACTION_FIELDS, POL)) and actions[0]["seen_position"] == [0.45, 0.0, 0.3]
    assert "rtt_ms" not in actions[1] and "seen_position" not in actions[1]  # not available: left out, never null
    assert [s for s, _ in blends] == [0, 1, 2, 3]
    assert [m["state"] for _, m in blends] == ["on", "on", "stale", "released"]
    on = blends[1][1]
    assert on["operator"] == dict(zip(S.ACTION_FIELDS, OP)) and on["alpha"] == 0.2 and on["age_ms"] == 12.0
    for name in S.ACTION_FIELDS[:6]:  # the operator's raw action beside the policy's and the blend
        assert on["blended"][name] == 0.2 * on["policy"][name] + 0.8 * on["operator"][name]
    assert "policy" not in blends[2][1] and "age_ms" not in blends[2][1]
    assert status_msg["state"] == "on" and status_msg["link"] == "connected" and status_msg["latency_ms_p95"] == 20.0


def test_no_assist_topic_without_assist(tmp_path: Path) -> None:
    path = tmp_path / "ep.mcap"
    ep = SyntheticEpisode(t0_wall=T0)
    w = EpisodeWriter(path, {"operator": "test"})
    for tick in ep.ticks(5):
        w.write(tick)
    w.close("success")
    with RecordingReader(path) as r:
        assert not [t for t in r.channels() if t.startswith("/assist/")]
