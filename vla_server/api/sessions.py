"""``GET /v1/sessions``: the live sessions of both endpoints — all of them for an admin key, only
the caller's own for any other key."""

# No `from __future__ import annotations`: FastAPI must see the Depends() annotation.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from vla_server.auth.deps import require_reader
from vla_server.auth.store import ApiKey


def sessions_router() -> APIRouter:
    router = APIRouter(tags=["sessions"])

    @router.get("/v1/sessions")
    def list_sessions(request: Request, key: Annotated[ApiKey, Depends(require_reader)]) -> dict[str, Any]:
        sessions = request.app.state.sessions.snapshot(key)
        return {"count": len(sessions), "sessions": sessions}

    return router
