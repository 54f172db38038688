"""``GET /v1/auth/whoami``: what the caller's key is (name, tier, limits, admin), for the UI's top bar.

The UI enables write buttons from ``admin``; the service still checks every write itself.
"""

# No `from __future__ import annotations`: FastAPI must see `Depends(reader)` of this closure.
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends


def whoami_router(reader: Callable[..., Any]) -> APIRouter:
    """The router; `reader` is the service's dependency that returns the caller's `ApiKey`."""
    r = APIRouter(tags=["auth"])

    @r.get("/v1/auth/whoami")
    def whoami(key: Annotated[Any, Depends(reader)]) -> dict[str, Any]:
        tier = key.tier
        return {
            "key_id": key.key_id, "name": key.name, "admin": bool(key.admin), "tier": tier.name,
            "max_sessions": tier.max_sessions, "max_fps": tier.max_fps, "created_at": key.created_at,
        }

    return r
