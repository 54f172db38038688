"""`teleop-replay info` on a real ``--debug`` recording: sampled topics are explained, real losses
are still called missing, and the web UI's recording info says the same plain words.

One real daemon run (``oculus-server --debug``, MuJoCo Panda, scripted VR) makes the recording;
`teleop-replay info` runs as a user runs it (a subprocess of the console script); a real loss is
made by copying that recording with the official `mcap` writer, leaving out one ``/robot/command``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mcap.reader import make_reader
from mcap.writer import Writer

from robot_formats.recording import schemas as S
from robot_formats.recording.info import recording_info
from tests.daemon_fakes import record_debug_episode
from vla_server.auth import KeyStore, require_reader
from vla_server.web import mount_web

TELEOP_REPLAY = str(Path(sys.executable).with_name("teleop-replay"))


@pytest.fixture(scope="module")
def debug_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished recording of `oculus-server --debug` (about 3.5 s, no cameras)."""
    return record_debug_episode(tmp_path_factory.mktemp("debug"))


def drop_one_command(src: Path, dst: Path) -> int:
    """Copies recording `src` to `dst` without one ``/robot/command`` message (mid-file); returns
    the sequence number it was recorded after."""
    with open(src, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        commands = [m.sequence for _, ch, m in reader.iter_messages(topics=[S.TOPIC_COMMAND])]
        assert len(commands) >= 10, f"expected commands in {src}, got {len(commands)}"
        dropped = commands[len(commands) // 2]
        with open(dst, "wb") as out:
            w = Writer(out)
            w.start(profile="", library="test")
            schema_ids = {sid: w.register_schema(s.name, s.encoding, s.data) for sid, s in summary.schemas.items()}
            channel_ids = {
                cid: w.register_channel(c.topic, c.message_encoding, schema_ids.get(c.schema_id, 0), c.metadata)
                for cid, c in summary.channels.items()
            }
            f.seek(0)
            for _, ch, m in make_reader(f).iter_messages(log_time_order=False):
                if ch.topic == S.TOPIC_COMMAND and m.sequence == dropped:
                    continue
                w.add_message(channel_ids[ch.id], m.log_time, m.data, m.publish_time, m.sequence)
            f.seek(0)
            for rec in make_reader(f).iter_metadata():
                w.add_metadata(rec.name, dict(rec.metadata))
            w.finish()
    return commands[len(commands) // 2 - 1]


def info_cli(path: Path, *args: str) -> str:
    run = subprocess.run([TELEOP_REPLAY, "info", str(path), *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout


def _topic(info: dict, name: str) -> dict:
    return next(t for t in info["topics"] if t["topic"] == name)


@pytest.mark.slow
def test_sim_state_is_sampled_not_missing(debug_recording: Path) -> None:
    info = json.loads(info_cli(debug_recording, "--json"))
    sim = _topic(info, S.TOPIC_SIM_STATE)
    assert sim["count"] >= 2, f"expected about one /sim/state a second, got {sim['count']}"
    assert sim["seq_missing"] == 0 and sim["seq_gaps"] == [] and sim["sampled"]
    assert sim["seq_skipped"] > 100 and sim["sample_every"] > 100  # hundreds of physics steps per second
    cmd = _topic(info, S.TOPIC_COMMAND)
    assert cmd["count"] > 10 and cmd["seq_missing"] == 0 and not cmd["sampled"]  # every command recorded
    assert all(t["seq_missing"] == 0 for t in info["topics"] if t["sampled"])  # nothing read as lost

    text = info_cli(debug_recording)
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith(f"{S.TOPIC_SIM_STATE}:")]
    every = round(sim["sample_every"])
    assert f"{S.TOPIC_SIM_STATE}: 1 of every {every} physics steps recorded, by design:" in line
    assert "once a second" in line
    assert "sampled by design (not data loss):" in text
    assert "missing" not in line
    assert not any(ln.strip().startswith(f"{S.TOPIC_SIM_STATE}:") and "missing" in ln for ln in text.splitlines())


@pytest.mark.slow
def test_a_lost_command_is_still_missing(debug_recording: Path, tmp_path: Path) -> None:
    lossy = tmp_path / "lossy.mcap"
    after = drop_one_command(debug_recording, lossy)
    info = recording_info(lossy)
    cmd = _topic(info, S.TOPIC_COMMAND)
    assert cmd["seq_missing"] == 1 and cmd["seq_gaps"] == [{"after": after, "missing": 1}]
    assert info["gaps_found"]
    assert _topic(info, S.TOPIC_SIM_STATE)["seq_missing"] == 0
    text = info_cli(lossy)
    assert f"{S.TOPIC_COMMAND}: 1 sequence number(s) missing after {after}" in text
    assert not any(S.TOPIC_SIM_STATE in ln and "missing" in ln for ln in text.splitlines())


@pytest.fixture
def web(debug_recording: Path, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    folder = tmp_path / "recordings"
    (folder / "success").mkdir(parents=True)
    shutil.copy2(debug_recording, folder / "success" / "debug.mcap")
    app = FastAPI()
    app.state.keystore = store = KeyStore(tmp_path / "keys.sqlite3")
    _, key = store.create("reader", "free")
    mount_web(app, folder, tmp_path / "cache", reader=require_reader)
    with TestClient(app) as c:
        yield c, {"Authorization": f"Bearer {key}"}


@pytest.mark.slow
def test_web_recording_info_says_sampled(web: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = web
    listed = client.get("/v1/recordings", headers=auth).json()["recordings"]
    (row,) = listed
    assert row["sim_state"] is True
    info = client.get("/v1/recordings/success/debug.mcap/info", headers=auth).json()
    sim = _topic(info, S.TOPIC_SIM_STATE)
    assert sim["seq_missing"] == 0 and sim["sampled"] and sim["sampled_unit"] == "physics steps"
    assert "sampled by design (not data loss):" in info["text"]
    assert f"{S.TOPIC_SIM_STATE}: 1 of every " in info["text"] and " physics steps recorded, by design:" in info["text"]
    assert f"{S.TOPIC_SIM_STATE}: 1 sequence number(s) missing" not in info["text"]
    assert not any(S.TOPIC_SIM_STATE in ln and "missing" in ln for ln in info["text"].splitlines())
