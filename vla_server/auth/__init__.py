"""API keys (hashed, SQLite), tiers and the FastAPI dependencies `require_reader` / `require_admin`.

Every name is imported on first use (PEP 562), so a model worker that needs only
`vla_server.auth.pacing` loads neither FastAPI nor SQLite.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_SOURCES = {
    **dict.fromkeys(("extract_key", "require_admin", "require_reader"), "vla_server.auth.deps"),
    **dict.fromkeys(("ApiKey", "KeyStore", "KeyStoreError"), "vla_server.auth.store"),
    **dict.fromkeys(("TIERS", "Tier", "get_tier"), "vla_server.auth.tiers"),
}


def __getattr__(name: str) -> Any:
    if name in _SOURCES:
        return getattr(importlib.import_module(_SOURCES[name]), name)
    raise AttributeError(f"module 'vla_server.auth' has no attribute {name!r}")
