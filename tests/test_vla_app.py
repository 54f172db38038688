"""`create_app` wires the parts others mount: the arena API and the web UI share the service's key
store (any key reads, admin keys write), and the lifespan starts and stops cleanly."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from vla_server.app import create_app
from vla_server.config import load_config


def test_arena_and_web_are_mounted_behind_the_service_keys(tmp_path: Path) -> None:
    config = load_config(overrides={"server.data_dir": str(tmp_path), "server.arena_executor": "inline",
                                    "server.recordings_dir": str(tmp_path / "rec")}, env={})
    app = create_app(config)
    reader = app.state.keystore.create("r", "free")[1]
    with TestClient(app) as client:
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/v1/arena/status").status_code == 401
        status = client.get("/v1/arena/status", headers={"X-API-Key": reader}).json()
        assert status["executor"].startswith("inline") and status["data_dir"] == str(tmp_path / "arena")
        assert client.post("/v1/arena/battles/x/vote", json={"winner": "a"},
                           headers={"X-API-Key": reader}).status_code == 403
        assert client.get("/v1/auth/whoami", headers={"X-API-Key": reader}).json()["tier"] == "free"
        assert client.get("/ui/").status_code == 200
        models = client.get("/v1/models", headers={"X-API-Key": reader}).json()["models"]
        assert {"color-reach", "onnx-tiny"} <= {m["id"] for m in models}
