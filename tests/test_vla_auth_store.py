"""API keys in SQLite: hashed storage, verification, revocation, tiers, and the HTTP dependencies."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from vla_server.auth import (
    TIERS,
    ApiKey,
    KeyStore,
    KeyStoreError,
    get_tier,
    require_admin,
    require_reader,
)
from vla_server.auth.store import split_key


def test_create_verify_and_only_hashes_are_stored(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.sqlite3")
    rec, key = store.create("lab-a", "pro")
    assert key.startswith("vla_") and rec.tier == TIERS["pro"] and not rec.admin
    got = store.verify(key)
    assert got is not None and got.key_id == rec.key_id and got.name == "lab-a"
    raw = (tmp_path / "keys.sqlite3").read_bytes()
    secret = split_key(key)[1]  # type: ignore[index]
    assert secret.encode() not in raw and key.encode() not in raw
    rows = sqlite3.connect(tmp_path / "keys.sqlite3").execute("SELECT salt, digest FROM api_keys").fetchall()
    assert len(rows) == 1 and len(rows[0][0]) == 16 and len(rows[0][1]) == 32


def test_wrong_malformed_and_revoked_keys_fail(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k.db")
    _, key = store.create("lab-a", "free")
    key_id, secret = split_key(key)  # type: ignore[misc]
    for bad in ("", "nope", key[:-1], key + "x", f"vla_{key_id}_{secret[::-1]}", f"vla_000000000000_{secret}",
                "vla_" + "z" * 12 + "_abc", f"vla_{key_id}"):
        assert store.verify(bad) is None, bad
    assert store.revoke("lab-a").revoked_at is not None
    assert store.verify(key) is None
    with pytest.raises(KeyStoreError, match="no active key"):
        store.revoke("lab-a")


def test_names_are_unique_among_active_keys_and_list_shows_status(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k.db")
    a, _ = store.create("lab", "free")
    with pytest.raises(KeyStoreError, match="an active key named 'lab' exists"):
        store.create("lab", "pro")
    store.revoke(a.key_id)
    b, key_b = store.create("lab", "enterprise", admin=True)
    listed = store.list_keys()
    assert [(k.key_id, k.active) for k in listed] == [(a.key_id, False), (b.key_id, True)]
    assert [k.key_id for k in store.list_keys(include_revoked=False)] == [b.key_id]
    assert store.verify(key_b).admin  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown tier 'gold'"):
        store.create("x", "gold")
    with pytest.raises(KeyStoreError, match="1..100 characters"):
        store.create("  ", "free")


def test_a_second_store_on_the_same_file_sees_changes(tmp_path: Path) -> None:
    """The CLI and the running service open the same database independently."""
    service, cli = KeyStore(tmp_path / "k.db"), KeyStore(tmp_path / "k.db")
    _, key = cli.create("lab", "pro")
    assert service.verify(key) is not None
    cli.revoke("lab")
    assert service.verify(key) is None


def test_tiers_are_as_documented() -> None:
    assert (TIERS["free"].max_sessions, TIERS["free"].max_fps) == (1, 10.0)
    assert (TIERS["pro"].max_sessions, TIERS["pro"].max_fps) == (3, 30.0)
    assert (TIERS["enterprise"].max_sessions, TIERS["enterprise"].max_fps) == (None, 50.0)
    assert get_tier("pro") is TIERS["pro"]


def _app(store: KeyStore) -> TestClient:
    app = FastAPI()
    app.state.keystore = store

    @app.get("/read")
    def read(key: ApiKey = Depends(require_reader)) -> dict:  # noqa: B008 -- FastAPI's idiom
        return {"name": key.name}

    @app.post("/write")
    def write(key: ApiKey = Depends(require_admin)) -> dict:  # noqa: B008
        return {"name": key.name}

    return TestClient(app)


def test_http_dependencies_accept_bearer_api_key_header_and_query(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k.db")
    _, reader = store.create("reader", "free")
    _, admin = store.create("ops", "enterprise", admin=True)
    c = _app(store)
    assert c.get("/read", headers={"Authorization": f"Bearer {reader}"}).json() == {"name": "reader"}
    assert c.get("/read", headers={"Authorization": f"Api-Key {reader}"}).status_code == 200
    assert c.get("/read", headers={"X-API-Key": reader}).status_code == 200
    assert c.get("/read", params={"api_key": reader}).status_code == 200
    r = c.get("/read")
    assert (
        r.status_code == 401 and "missing API key" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    )
    assert c.get("/read", headers={"Authorization": "Bearer vla_bad"}).status_code == 401
    r = c.post("/write", headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403 and "not an admin key" in r.json()["detail"]
    assert c.post("/write", headers={"Authorization": f"Bearer {admin}"}).json() == {"name": "ops"}
    store.revoke("ops")
    assert c.post("/write", headers={"Authorization": f"Bearer {admin}"}).status_code == 401
