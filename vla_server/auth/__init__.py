"""API keys (hashed, SQLite), tiers and the FastAPI dependencies `require_reader` / `require_admin`."""

from vla_server.auth.deps import extract_key, require_admin, require_reader
from vla_server.auth.store import ApiKey, KeyStore, KeyStoreError
from vla_server.auth.tiers import TIERS, Tier, get_tier

__all__ = [
    "TIERS",
    "ApiKey",
    "KeyStore",
    "KeyStoreError",
    "Tier",
    "extract_key",
    "get_tier",
    "require_admin",
    "require_reader",
]
