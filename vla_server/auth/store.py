"""API keys in SQLite, stored hashed.

A key looks like ``vla_<key_id>_<secret>``: `key_id` (12 hex characters) is the row's public
identifier, `secret` 32 random bytes (base64url). Only ``HMAC-SHA256(salt, secret)`` with a
per-key random salt is stored; verification recomputes it and compares with
`hmac.compare_digest` (constant time). The plaintext key exists once, in the return value of
`create`. Each operation opens its own short-lived connection, so the CLI can manage keys while
the service runs (WAL journal, 5 s busy timeout).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vla_server.auth.tiers import Tier, get_tier

KEY_PREFIX = "vla_"
_ID_HEX = 12
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tier TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    salt BLOB NOT NULL,
    digest BLOB NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
)
"""


class KeyStoreError(ValueError):
    """A key management request that cannot be done (unknown name, duplicate name, ...)."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key without its secret: who is calling.

    Attributes:
        key_id: public identifier (also in the key text).
        name: human label, unique among active keys (``lab-a``).
        tier: session and rate limits.
        admin: may use write endpoints.
        created_at, revoked_at: unix s; revoked_at None while active.
    """

    key_id: str
    name: str
    tier: Tier
    admin: bool
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("utf-8"), hashlib.sha256).digest()


def split_key(key: str) -> tuple[str, str] | None:
    """``vla_<id>_<secret>`` → (key_id, secret), or None when the text is not shaped like a key."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != _ID_HEX or not secret or any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


class KeyStore:
    """API key storage at `path` (created with its folder on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
        self._dummy_salt = secrets.token_bytes(16)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=5.0)
        try:
            with db:  # commit on success, roll back on error
                yield db
        finally:
            db.close()

    def create(self, name: str, tier: str, admin: bool = False) -> tuple[ApiKey, str]:
        """Creates a key; returns its record and the plaintext key (shown once, never stored)."""
        name = name.strip()
        if not name or len(name) > 100:
            raise KeyStoreError(f"key name: expected 1..100 characters, got {name!r}")
        tier_obj = get_tier(tier)
        key_id = secrets.token_hex(_ID_HEX // 2)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = time.time()
        with self._connect() as db:
            if db.execute("SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone():
                raise KeyStoreError(f"an active key named {name!r} exists; revoke it or choose another name")
            db.execute(
                "INSERT INTO api_keys (key_id, name, tier, admin, salt, digest, created_at) VALUES (?,?,?,?,?,?,?)",
                (key_id, name, tier_obj.name, int(admin), salt, _digest(salt, secret), now),
            )
        return ApiKey(key_id, name, tier_obj, admin, now), f"{KEY_PREFIX}{key_id}_{secret}"

    def verify(self, key: str) -> ApiKey | None:
        """Returns the active key's record, or None (unknown, malformed, wrong secret or revoked)."""
        parts = split_key(key) if isinstance(key, str) else None
        with self._connect() as db:
            row = (
                db.execute(
                    "SELECT key_id, name, tier, admin, created_at, revoked_at, salt, digest FROM api_keys "
                    "WHERE key_id = ?",
                    (parts[0],),
                ).fetchone()
                if parts
                else None
            )
        if row is None:
            # Same work as a real check, so timing does not reveal whether an id exists.
            hmac.compare_digest(_digest(self._dummy_salt, parts[1] if parts else "x"), bytes(32))
            return None
        ok = hmac.compare_digest(_digest(row[6], parts[1]), row[7])  # type: ignore[index]
        if not ok or row[5] is not None:
            return None
        return self._record(row)

    def revoked_since(self, since: float) -> list[tuple[str, float]]:
        """``(key_id, revoked_at)`` of keys revoked at or after `since` (unix s), oldest first.

        One indexed-free scan of a small table; cheap enough to poll several times a second.
        """
        with self._connect() as db:
            rows = db.execute(
                "SELECT key_id, revoked_at FROM api_keys WHERE revoked_at IS NOT NULL AND revoked_at >= ? "
                "ORDER BY revoked_at", (since,),
            ).fetchall()
        return [(str(r[0]), float(r[1])) for r in rows]

    def list_keys(self, include_revoked: bool = True) -> list[ApiKey]:
        """All keys, oldest first."""
        sql = "SELECT key_id, name, tier, admin, created_at, revoked_at FROM api_keys"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY created_at").fetchall()
        return [self._record(r) for r in rows]

    def revoke(self, ident: str) -> ApiKey:
        """Revokes the active key whose id or name is `ident`; returns its record."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT key_id, name, tier, admin, created_at, revoked_at FROM api_keys "
                "WHERE (key_id = ? OR name = ?) AND revoked_at IS NULL",
                (ident, ident),
            ).fetchall()
            if not rows:
                raise KeyStoreError(f"no active key with id or name {ident!r}")
            if len(rows) > 1:
                raise KeyStoreError(f"{ident!r} matches several keys; revoke by key id: {[r[0] for r in rows]}")
            now = time.time()
            db.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (now, rows[0][0]))
        rec = self._record(rows[0])
        return ApiKey(rec.key_id, rec.name, rec.tier, rec.admin, rec.created_at, now)

    @staticmethod
    def _record(row: tuple) -> ApiKey:
        return ApiKey(row[0], row[1], get_tier(row[2]), bool(row[3]), float(row[4]), row[5])
