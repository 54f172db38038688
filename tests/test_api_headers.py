"""Security headers on every HTTP response and the API docs off by default (``vla-server serve``
with the web UI, on loopback).

Seen case (issue 17, 6): ``/docs`` and ``/openapi.json`` needed no key; no CSP / X-Frame-Options.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.vla_serve_process import ServeProcess, scripted_service
from vla_server.api.headers import CONTENT_SECURITY_POLICY
from vla_server.app import create_app
from vla_server.config import ServiceConfig
from vla_server.models import ModelSpec

EXPECTED = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("headers")
    with scripted_service(tmp, "--no-arena", openpi=False) as s:
        yield s


@pytest.mark.parametrize("path", ["/health", "/ui/", "/ui/js/app.js", "/v1/models", "/nope"])
def test_every_response_carries_the_security_headers(svc: ServeProcess, path: str) -> None:
    r = httpx.get(svc.http + path, timeout=30)
    for name, value in EXPECTED.items():
        assert r.headers.get(name) == value, (path, r.status_code, name)
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY


def test_api_docs_are_off_by_default(svc: ServeProcess) -> None:
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert httpx.get(svc.http + path, timeout=30).status_code == 404, path


def test_api_docs_can_be_turned_on(tmp_path: Path) -> None:
    base = ServiceConfig()
    config = replace(base, server=replace(base.server, data_dir=str(tmp_path), api_docs=True, openpi_port=None))
    app = create_app(config, catalog={"arm": ModelSpec(id="arm", backend="scripted")}, web=False, arena=False)
    with TestClient(app) as client:
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200
