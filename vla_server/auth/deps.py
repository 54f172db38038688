"""FastAPI dependencies for HTTP (and websocket) routes: who is calling.

The key is read from ``Authorization: Bearer <key>`` (or ``Api-Key <key>``, openpi's form),
else ``X-API-Key: <key>``, else the ``api_key`` query parameter (for what a browser cannot send
headers with: ``<video src>``, ``EventSource``). `require_reader` accepts any active key,
`require_admin` only admin keys. The app keeps its `KeyStore` in ``app.state.keystore``.
A key already verified for this request by `vla_server.api.guard.RequestGuard` (which checks
keys of writing requests before their body is read) is reused from ``request.state.api_key``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs

from fastapi import HTTPException, status
from starlette.requests import HTTPConnection

from vla_server.auth.store import ApiKey, KeyStore

_SCHEMES = ("bearer", "api-key")
AUTH_HINT = "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


def extract_key_from(headers: Mapping[str, str], query_string: str = "") -> str | None:
    """The API key in lower-cased `headers` or the raw `query_string` (``api_key=``), or None."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() in _SCHEMES and value.strip():
            return value.strip()
    header = headers.get("x-api-key")
    if header and header.strip():
        return header.strip()
    if "api_key" in query_string:
        values = parse_qs(query_string).get("api_key")
        if values and values[0]:
            return values[0]
    return None


def extract_key(conn: HTTPConnection) -> str | None:
    """The API key a request carries, or None."""
    return extract_key_from(conn.headers, conn.scope.get("query_string", b"").decode("latin-1"))


def keystore_of(conn: HTTPConnection) -> KeyStore:
    """The app's key store."""
    store = getattr(conn.app.state, "keystore", None)
    if store is None:
        raise RuntimeError("app.state.keystore is not set; create the app with vla_server.app.create_app")
    return store


def require_reader(conn: HTTPConnection) -> ApiKey:
    """Dependency: any active key; 401 otherwise."""
    checked = conn.scope.get("state", {}).get("api_key")
    if isinstance(checked, ApiKey):
        return checked
    key = extract_key(conn)
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"missing API key: {AUTH_HINT}", headers={"WWW-Authenticate": "Bearer"},
        )
    record = keystore_of(conn).verify(key)
    if record is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return record


def require_admin(conn: HTTPConnection) -> ApiKey:
    """Dependency: an active admin key; 401 without a valid key, 403 for a non-admin key."""
    record = require_reader(conn)
    if not record.admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"key {record.name!r} ({record.tier.name}) is not an admin key; this endpoint changes the service",
        )
    return record
