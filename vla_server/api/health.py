"""``GET /health``: liveness and a few figures, no key needed."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    def health(request: Request) -> dict[str, Any]:
        state = request.app.state
        summary = state.registry.summary()
        return {
            "status": "ok",
            "uptime_s": round(time.time() - state.started_at, 3),
            "sessions": len(state.sessions),
            "models": len(state.registry.model_ids()),
            "models_loaded": summary["loaded"],
            "memory_used_mb": summary["memory_used_mb"],
            "memory_budget_mb": summary["memory_budget_mb"],
        }

    return router
