"""API keys (hashed, SQLite), tiers and the FastAPI dependencies `require_reader` / `require_admin`.

The FastAPI dependencies are imported on first use (PEP 562), so a model worker that needs only
`vla_server.auth.pacing` does not load FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vla_server.auth.store import ApiKey, KeyStore, KeyStoreError
from vla_server.auth.tiers import TIERS, Tier, get_tier

if TYPE_CHECKING:
    from vla_server.auth.deps import extract_key, require_admin, require_reader

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

_FROM_DEPS = frozenset({"extract_key", "require_admin", "require_reader"})


def __getattr__(name: str) -> Any:
    if name in _FROM_DEPS:
        return getattr(importlib.import_module("vla_server.auth.deps"), name)
    raise AttributeError(f"module 'vla_server.auth' has no attribute {name!r}")
