"""Recordings API of the web UI: list, info, plot, MP4 made on demand, downloads, id checks, auth.

Real synthetic MCAP recordings on disk, the real router in a FastAPI app, the real job thread and
PyAV encoder, and the service's own key store and `require_reader` dependency.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from oculus_server.recording.synthetic import write_synthetic
from vla_server.auth import KeyStore, require_reader
from vla_server.web import mount_web
from vla_server.web.recordings import (
    BadRecordingId,
    RecordingLibrary,
    RecordingNotFound,
    check_id,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recordings")
    (root / "success").mkdir()
    (root / "failure").mkdir()
    write_synthetic(
        root / "success" / "ep_cam.mcap",
        seconds=2.0,
        cameras={"front": (64, 48)},
        metadata={"task": "pick up the red cube"},
    )
    bad = write_synthetic(root / "failure" / "ep_nocam.mcap", seconds=1.0, cameras={})
    os.utime(bad, (time.time() + 5, time.time() + 5))  # newest
    (root / "success" / "broken.mcap").write_bytes(b"not an mcap file at all")
    (root / "partial.mcap.partial").write_bytes(b"\x89MCAP0\r\n")
    (root / ".hidden").mkdir()
    write_synthetic(root / ".hidden" / "secret.mcap", seconds=0.5)
    return root


AUTH: dict[str, str] = {}


@pytest.fixture(scope="module")
def client(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.keystore = store = KeyStore(tmp_path_factory.mktemp("keys") / "keys.sqlite3")
    _, key = store.create("reader", "free")
    AUTH["Authorization"] = f"Bearer {key}"
    mount_web(app, folder, tmp_path_factory.mktemp("cache"), reader=require_reader)
    with TestClient(app) as c:
        yield c


def test_whoami(client: TestClient) -> None:
    me = client.get("/v1/auth/whoami", headers=AUTH).json()
    assert me["name"] == "reader" and me["tier"] == "free" and me["admin"] is False and me["max_fps"] == 10.0
    assert client.get("/v1/auth/whoami", headers={"Authorization": "Bearer vla_000000000000_nope"}).status_code == 401


def test_every_route_needs_a_key(client: TestClient) -> None:
    for path in (
        "/v1/recordings",
        "/v1/recordings/success/ep_cam.mcap/info",
        "/v1/recordings/success/ep_cam.mcap/plot.png",
        "/v1/recordings/success/ep_cam.mcap/video",
        "/v1/recordings/success/ep_cam.mcap/file",
        "/v1/recordings/success/ep_cam.mcap/video/front.mp4",
    ):
        assert client.get(path).status_code == 401, path
    assert client.post("/v1/recordings/success/ep_cam.mcap/video").status_code == 401


def test_static_ui_is_served(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and '<script type="module" src="js/app.js">' in page.text
    for asset in ("/ui/style.css", "/ui/js/app.js", "/ui/js/api.js", "/ui/js/pages/recordings.js"):
        assert client.get(asset).status_code == 200, asset


def test_list_newest_first_with_summaries(client: TestClient) -> None:
    body = client.get("/v1/recordings", headers=AUTH).json()
    ids = [r["id"] for r in body["recordings"]]
    assert ids[0] == "failure/ep_nocam.mcap"
    assert set(ids) == {"failure/ep_nocam.mcap", "success/ep_cam.mcap", "success/broken.mcap"}  # no partials, no hidden
    cam = next(r for r in body["recordings"] if r["id"] == "success/ep_cam.mcap")
    assert cam["outcome"] == "success" and cam["folder"] == "success" and cam["cameras"] == ["front"]
    assert cam["task"] == "pick up the red cube" and cam["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert cam["sim_state"] is False  # no /sim/state: not a start for arena episodes
    broken = next(r for r in body["recordings"] if r["id"] == "success/broken.mcap")
    assert broken["error"] and broken["duration_s"] is None


def test_info_is_what_teleop_replay_info_says(client: TestClient, folder: Path, capsys: pytest.CaptureFixture) -> None:
    from oculus_server.replay.cli import main

    info = client.get("/v1/recordings/success/ep_cam.mcap/info", headers=AUTH).json()
    assert info["file"] == "success/ep_cam.mcap" and str(folder) not in info["text"]  # no server paths leak
    assert main(["info", str(folder / "success" / "ep_cam.mcap")]) == 0
    cli_lines = capsys.readouterr().out.splitlines()
    assert info["text"].splitlines()[1:] == cli_lines[1:]  # line 0 names the file
    assert info["metadata"]["recording_start"]["task"] == "pick up the red cube"
    r = client.get("/v1/recordings/success/broken.mcap/info", headers=AUTH)
    assert r.status_code == 422 and "cannot read the recording" in r.json()["detail"]


def test_plot_png(client: TestClient) -> None:
    r = client.get("/v1/recordings/success/ep_cam.mcap/plot.png", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.size[0] > 800 and im.size[1] > 800
    again = client.get("/v1/recordings/success/ep_cam.mcap/plot.png", headers=AUTH)
    assert again.content == r.content  # served from the cache


def _wait_video(client: TestClient, rid: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = client.get(f"/v1/recordings/{rid}/video", headers=AUTH).json()
        if st["state"] in ("done", "failed"):
            return st
        time.sleep(0.1)
    raise AssertionError(f"video of {rid} not made within {timeout_s} s")


def test_video_on_demand(client: TestClient) -> None:
    rid = "success/ep_cam.mcap"
    assert client.get(f"/v1/recordings/{rid}/video", headers=AUTH).json()["state"] == "missing"
    assert client.get(f"/v1/recordings/{rid}/video/front.mp4", headers=AUTH).status_code == 404
    r = client.post(f"/v1/recordings/{rid}/video", headers=AUTH)
    assert r.status_code in (200, 202)
    st = _wait_video(client, rid)
    assert st["state"] == "done" and st["cameras"] == ["front"], st
    mp4 = client.get(f"/v1/recordings/{rid}/video/front.mp4", headers=AUTH)
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(mp4.content), mode="r") as c:
        frames = len(list(c.decode(video=0)))
    info = client.get(f"/v1/recordings/{rid}/info", headers=AUTH).json()
    recorded = next(t["count"] for t in info["topics"] if t["topic"] == "/camera/front/image")
    assert frames == recorded > 10  # every recorded frame, once
    assert client.post(f"/v1/recordings/{rid}/video", headers=AUTH).status_code == 200  # already there
    assert client.get(f"/v1/recordings/{rid}/video/wrist.mp4", headers=AUTH).status_code == 404


def test_video_of_a_recording_without_cameras_fails_clearly(client: TestClient) -> None:
    rid = "failure/ep_nocam.mcap"
    client.post(f"/v1/recordings/{rid}/video", headers=AUTH)
    st = _wait_video(client, rid)
    assert st["state"] == "failed" and "no camera frames" in st["error"]


def test_download_the_file(client: TestClient, folder: Path) -> None:
    r = client.get("/v1/recordings/failure/ep_nocam.mcap/file", headers=AUTH)
    assert r.status_code == 200 and r.content == (folder / "failure" / "ep_nocam.mcap").read_bytes()
    assert 'filename="ep_nocam.mcap"' in r.headers["content-disposition"]


@pytest.mark.parametrize(
    "rid",
    [
        "../etc/passwd.mcap",
        "success/../../x.mcap",
        ".hidden/secret.mcap",
        "success/ep_cam.txt",
        "success//ep_cam.mcap",
        "success%2F..%2F..%2Fx.mcap",
    ],
)
def test_bad_ids_are_refused(client: TestClient, rid: str) -> None:
    r = client.get(f"/v1/recordings/{rid}/info", headers=AUTH)
    assert r.status_code in (400, 404), (rid, r.status_code)
    assert client.get("/v1/recordings/success/nope.mcap/info", headers=AUTH).status_code == 404


def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = write_synthetic(tmp_path / "outside.mcap", seconds=0.3)
    root = tmp_path / "rec"
    root.mkdir()
    (root / "link.mcap").symlink_to(outside)
    lib = RecordingLibrary(root, tmp_path / "cache")
    try:
        with pytest.raises(BadRecordingId, match="outside"):
            lib.resolve("link.mcap")
        with pytest.raises(RecordingNotFound):
            lib.resolve("missing.mcap")
    finally:
        lib.close()


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_check_id_never_admits_an_escape(rid: str) -> None:
    try:
        p = check_id(rid)
    except BadRecordingId:
        return
    assert not p.is_absolute() and ".." not in p.parts and p.name.endswith(".mcap")
    assert all(part and not part.startswith(".") for part in p.parts)
