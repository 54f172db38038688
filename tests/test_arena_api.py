"""The arena's HTTP API on a real FastAPI app with the service's key store and auth dependencies:
keys and tiers, episodes end to end (SSE progress and log, video, blobs, trajectory), battles,
votes and the leaderboard, and the errors a client gets."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from vla_server.arena.api import create_arena_router
from vla_server.arena.models import ProviderRef
from vla_server.arena.runtime import ArenaConfig, ArenaRuntime
from vla_server.auth.deps import require_admin, require_reader
from vla_server.auth.store import KeyStore

BODY = {"model": "reach", "instruction": "pick up the red cube", "steps": 8, "width": 64, "height": 48}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str], ArenaRuntime]]:
    runtime = ArenaRuntime(ArenaConfig(data_dir=str(tmp_path / "arena"), executor="inline",
                                       provider=ProviderRef("tests.arena_fakes:TestProvider"),
                                       recordings_dir=str(tmp_path / "recordings")))
    keys = KeyStore(tmp_path / "keys.sqlite3")
    _, admin = keys.create("lab-admin", "enterprise", admin=True)
    _, reader = keys.create("viewer", "free")
    app = FastAPI()
    app.state.keystore = keys
    app.include_router(create_arena_router(runtime, require_reader, require_admin))
    with TestClient(app) as c:
        yield c, {"Authorization": f"Bearer {admin}"}, {"X-API-Key": reader}, runtime
    runtime.close()


def wait_done(c: TestClient, h: dict[str, str], eid: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ep = c.get(f"/v1/arena/episodes/{eid}", headers=h).json()
        if ep["status"] in ("done", "failed", "cancelled"):
            return ep
        time.sleep(0.1)
    raise AssertionError(f"episode {eid} not finished")


def test_auth_reading_needs_a_key_writing_an_admin_key(client) -> None:  # type: ignore[no-untyped-def]
    c, _admin, reader, _ = client
    assert c.get("/v1/arena/episodes").status_code == 401
    assert c.get("/v1/arena/episodes", headers=reader).status_code == 200
    r = c.post("/v1/arena/episodes", json=BODY, headers=reader)
    assert r.status_code == 403 and "not an admin key" in r.json()["detail"]
    assert c.post("/v1/arena/battles", json=BODY, headers=reader).status_code == 403
    assert c.get("/v1/arena/models", headers=reader).json()["models"][0]["id"] == "reach"


def test_episode_end_to_end_with_event_stream_and_downloads(client) -> None:  # type: ignore[no-untyped-def]
    c, admin, reader, _ = client
    r = c.post("/v1/arena/episodes", json=BODY | {"video": True}, headers=admin)
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    events: list[tuple[str, dict]] = []
    with c.stream("GET", f"/v1/arena/episodes/{eid}/events?api_key={reader['X-API-Key']}") as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in s.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                events.append((kind, json.loads(line[6:])))
                if kind == "end":
                    break
    kinds = [k for k, _ in events]
    assert kinds[-1] == "end" and events[-1][1]["status"] == "done"
    assert "log" in kinds and any(k == "progress" and d["status"] in ("running", "done") for k, d in events)
    assert any("step 8/8" in d["line"] for k, d in events if k == "log")
    ep = c.get(f"/v1/arena/episodes/{eid}", headers=reader).json()
    assert ep["step"] == ep["total"] == 8 and ep["metrics"]["task"] == "lift:red_cube"
    video = c.get(ep["urls"]["video"], headers=reader)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4" and video.content[4:8] == b"ftyp"
    part = c.get(ep["urls"]["video"], headers=reader | {"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100  # seekable in a browser
    assert c.get(ep["urls"]["thumbnail"], headers=reader).content[:2] == b"\xff\xd8"
    assert c.get(ep["urls"]["trajectory"], headers=reader).content[:8] == b"\x89MCAP0\r\n"
    blob = c.get(ep["urls"]["blob"], headers=reader).text
    assert len(blob) == ep["metrics"]["final_blob_chars"]
    log = c.get(f"/v1/arena/episodes/{eid}/log?offset=1", headers=reader).json()
    assert log["next_offset"] == 1 + len(log["lines"]) and log["lines"]

    # continue from the final blob; list with filters
    r = c.post("/v1/arena/episodes", json=BODY | {"start_blob": blob, "steps": 4}, headers=admin)
    assert r.status_code == 201
    cont = wait_done(c, admin, r.json()["id"])
    assert cont["status"] == "done" and cont["spec"]["start_from_blob"] is True
    listed = c.get("/v1/arena/episodes?model=reach&status=done&limit=1", headers=reader).json()
    assert len(listed["episodes"]) == 1 and listed["total"] == 2
    assert listed["episodes"][0]["urls"]["thumbnail"].endswith("/thumbnail")


def test_errors_are_clear(client) -> None:  # type: ignore[no-untyped-def]
    c, admin, reader, _ = client
    r = c.post("/v1/arena/episodes", json=BODY | {"control_hz": 15}, headers=admin)
    assert r.status_code == 422 and "whole number of 2 ms steps" in r.json()["detail"]
    r = c.post("/v1/arena/episodes", json=BODY | {"model": "gpt-9"}, headers=admin)
    assert r.status_code == 422 and "unknown model 'gpt-9'" in r.json()["detail"]
    r = c.post("/v1/arena/episodes", json=BODY | {"start_blob": "bm90IGEgYmxvYg=="}, headers=admin)
    eid = r.json()["id"]
    ep = wait_done(c, admin, eid)
    assert ep["status"] == "failed" and "not zlib" in ep["error"]
    r = c.post("/v1/arena/episodes", json=BODY | {"from_recording": "../../etc/passwd", "at_s": 1.0}, headers=admin)
    assert r.status_code == 422 and "inside the recordings folder" in r.json()["detail"]
    assert c.get("/v1/arena/episodes/ffffffff", headers=reader).status_code == 404
    assert c.get(f"/v1/arena/episodes/{eid}/video", headers=reader).status_code == 404
    assert c.post(f"/v1/arena/episodes/{eid}/cancel", headers=admin).status_code == 409
    r = c.post(f"/v1/arena/episodes/{eid}/rerun", headers=admin)
    assert r.status_code == 200 and r.json()["attempts"] == 2


def test_battle_vote_and_leaderboard(client) -> None:  # type: ignore[no-untyped-def]
    c, admin, reader, _ = client
    body = BODY | {"model_a": "reach", "model_b": "reach-slow", "outcome_by": "vote"}
    del body["model"]
    r = c.post("/v1/arena/battles", json=body, headers=admin)
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    for side in ("a", "b"):
        wait_done(c, admin, r.json()[f"episode_{side}"])
    deadline = time.monotonic() + 30
    while c.get(f"/v1/arena/battles/{bid}", headers=reader).json()["status"] != "awaiting_vote":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert c.post(f"/v1/arena/battles/{bid}/vote", json={"winner": "b"}, headers=reader).status_code == 403
    r = c.post(f"/v1/arena/battles/{bid}/vote", json={"winner": "maybe"}, headers=admin)
    assert r.status_code == 422
    r = c.post(f"/v1/arena/battles/{bid}/vote", json={"winner": "b"}, headers=admin)
    assert r.status_code == 200 and r.json()["outcome"] == "b" and r.json()["votes"]["b"] == 1
    board = c.get("/v1/arena/leaderboard?rounds=50", headers=reader).json()
    assert board["battles"] == 1
    top = board["rows"][0]
    assert top["model"] == "reach-slow" and top["wins"] == 1 and top["ci_low"] <= top["rating"] <= top["ci_high"]
    listed = c.get("/v1/arena/battles", headers=reader).json()["battles"]
    assert listed[0]["id"] == bid and listed[0]["episodes"]["a"]["urls"]["video"].endswith("/video")
    status = c.get("/v1/arena/status", headers=reader).json()
    assert status["episodes"]["done"] == 2 and status["capacity"] == 1


# -- watching an episode live (`"live": true`) --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "inline"])
def test_a_live_episode_streams_its_topics_to_a_foxglove_client_on_loopback(tmp_path: Path, executor: str) -> None:
    """`"live": true`: the process that runs the episode (a pool worker, the web UI's default, or a
    thread of the service) serves it on 127.0.0.1 at the configured port or the next free one; a
    Foxglove protocol client gets the episode's topics in sim time; the view closes at the end."""
    import statistics
    import urllib.parse

    from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms

    from robot_formats.recording import schemas as S
    from robot_formats.recording.scene import link_frame
    from tests.foxglove_ws_client import FoxgloveClient
    from tests.robot_fakes import free_port_block

    base = free_port_block(4)
    runtime = ArenaRuntime(ArenaConfig(data_dir=str(tmp_path / "arena"), executor=executor, workers=1,
                                       provider=ProviderRef("tests.arena_fakes:TestProvider"), live_port=base))
    keys = KeyStore(tmp_path / "keys.sqlite3")
    _, admin_key = keys.create("lab-admin", "enterprise", admin=True)
    admin = {"Authorization": f"Bearer {admin_key}"}
    app = FastAPI()
    app.state.keystore = keys
    app.include_router(create_arena_router(runtime, require_reader, require_admin))
    try:
        with TestClient(app) as c:
            r = c.post("/v1/arena/episodes", json=BODY | {"steps": 40, "control_hz": 10, "live": True}, headers=admin)
            assert r.status_code == 201, r.text
            eid = r.json()["id"]
            # Waiting until the episode runs; the inline executor may already have started it.
            assert r.json()["live"]["state"] in ("waiting", "on"), r.json()
            deadline = time.monotonic() + 120
            while (ep := c.get(f"/v1/arena/episodes/{eid}", headers=admin).json()).get("live", {}).get("state") != "on":
                assert ep["status"] in ("queued", "running") and time.monotonic() < deadline, ep
                time.sleep(0.05)
            live = ep["live"]
            host, port = urllib.parse.urlsplit(live["url"]).hostname, urllib.parse.urlsplit(live["url"]).port
            assert host == "127.0.0.1" and port is not None and base <= port < base + 16
            assert live["foxglove_web"] == ("https://app.foxglove.dev/~/view?ds=foxglove-websocket&ds.url="
                                            + urllib.parse.quote(live["url"], safe=""))
            client = FoxgloveClient(live["url"])
            try:
                topics = [S.TOPIC_JOINT_STATES, S.TOPIC_TF, "/camera/front/image"]
                client.wait_channels(set(topics))
                assert "time" in client.server_info["capabilities"]
                client.subscribe(topics)
                got = []
                while not client.closed and time.monotonic() < deadline:
                    got += client.collect(0.5)
            finally:
                client.close()
            ep = wait_done(c, admin, eid)
            assert ep["status"] == "done" and "live" not in ep
            log = "\n".join(c.get(f"/v1/arena/episodes/{eid}/log", headers=admin).json()["lines"])
            assert f"live view: in Foxglove, Open connection -> Foxglove WebSocket -> {live['url']}" in log
            assert "live view closed" in log
    finally:
        runtime.close()
    joints = [r for r in got if r.topic == S.TOPIC_JOINT_STATES]
    assert len(joints) > 10  # 40 steps at 10 Hz: 4 s of sim time, paced to the wall clock, sampled at 30 Hz
    stamps = [json.loads(r.data)["timestamp"] for r in joints]
    t = [s["sec"] + s["nsec"] / 1e9 for s in stamps]
    assert statistics.median(b - a for a, b in zip(t, t[1:])) == pytest.approx(1 / 30, abs=0.002)
    assert client.times and client.times == sorted(client.times)  # the server's clock is the sim time
    assert any(r.topic == "/camera/front/image" for r in got)
    tf = FrameTransforms.FromString([r for r in got if r.topic == S.TOPIC_TF][-1].data)
    assert link_frame("link7") in {x.child_frame_id for x in tf.transforms}


def test_live_is_refused_clearly_when_it_cannot_be_watched(client) -> None:  # type: ignore[no-untyped-def]
    c, admin, _, _ = client
    r = c.post("/v1/arena/episodes", json=BODY | {"live": "yes"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"] == "live: expected true or false, got 'yes'"
    r = c.post("/v1/arena/episodes", json=BODY | {"live": True, "trajectory": False}, headers=admin)
    assert r.status_code == 422 and "publishes the trajectory's topics" in r.json()["detail"]
    assert c.get("/v1/arena/episodes", headers=admin).json()["total"] == 0  # nothing stored
