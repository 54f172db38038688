"""The `/safety` topic: each intervention written once, valid against its JSON schema, read back."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import jsonschema
from mcap.reader import make_reader

from oculus_server.recording.synthetic import SyntheticEpisode
from robot_formats.recording import schemas as S
from robot_formats.recording.records import SafetyRecord
from robot_formats.recording.writer import EpisodeWriter

T0 = 1_750_000_000.0


def test_safety_records_are_written_once_and_match_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "ep.mcap"
    ep = SyntheticEpisode(t0_wall=T0)
    records = [
        SafetyRecord("box", "target (0.900, 0.000, 0.300) clamped into the workspace box by 0.150 m", T0 + 0.01,
                     3, "policy", (0.9, 0.0, 0.3), (0.75, 0.0, 0.3), 0.15),
        SafetyRecord("implausible_state", "position jumped 0.760 m within 0.150 s", T0 + 0.02, -1, "robot_state"),
        SafetyRecord("refused_nonfinite", "policy proposal refused (non-finite pose)", T0 + 0.03, 4, "assist",
                     (math.nan, 0.0, 0.3), (0.5, 0.0, 0.3), math.inf),
    ]
    w = EpisodeWriter(path, {"operator": "test"})
    for i, tick in enumerate(ep.ticks(5)):
        w.write(replace(tick, safety=tuple(records) if i == 1 else ()))
    w.close("success")

    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        schema = next(json.loads(s.data) for s in summary.schemas.values() if s.name == "teleop.Safety")
        bodies = [json.loads(m.data) for _, ch, m in reader.iter_messages(topics=[S.TOPIC_SAFETY])]
    assert [b["kind"] for b in bodies] == ["box", "implausible_state", "refused_nonfinite"]
    for b in bodies:
        jsonschema.validate(b, schema)  # every field present with its declared type; no nulls
    box, state, refused = bodies
    assert box["requested"] == [0.9, 0.0, 0.3] and box["sent"] == [0.75, 0.0, 0.3] and box["command_seq"] == 3
    assert state["command_seq"] == -1 and state["source"] == "robot_state" and state["requested"] == []
    assert refused["requested"] == [] and refused["amount"] == 0.0  # non-finite numbers are left out
    assert box["timestamp"]["sec"] == int(T0) and abs(box["timestamp"]["nsec"] - 10_000_000) < 1000
