"""Live feeds for the UI as server-sent events: the registry's models and the stream sessions.

    GET /v1/live/models     event "models":   the body of GET /v1/models, on every change of a
                            model's state, pin, device, memory or counters, and at least every 2 s
    GET /v1/live/sessions   event "sessions": the body of GET /v1/sessions (the caller's own
                            sessions unless it is an admin key), when a session opens or
                            closes, and every 0.5 s while any is open

The server looks every `TICK_S` (in the event loop, where the registry and session manager live),
so a change reaches the page within about a tick instead of a poll period. A stream ends after
`MAX_STREAM_S` (the page reconnects), when the client goes away, or when the service stops
accepting sessions (shutdown), so it never holds up a graceful shutdown for long.
"""

# No `from __future__ import annotations`: FastAPI must see `Depends(reader)` of the closure.
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

TICK_S = 0.1
MODELS_REFRESH_S = 2.0
SESSIONS_REFRESH_S = 0.5
HEARTBEAT_S = 10.0
MAX_STREAM_S = 300.0

_MODEL_KEYS = ("state", "pinned", "device", "memory_mb", "sessions", "last_error")
_STAT_KEYS = ("requests", "failures", "loads", "unloads", "evictions", "crashes", "restarts")


def models_snapshot(app_state: Any) -> dict[str, Any]:
    reg = app_state.registry
    return {"registry": reg.summary(), "models": reg.statuses()}


def models_signature(snap: dict[str, Any]) -> str:
    """What must change for the models feed to send before its refresh period."""
    reg = snap["registry"]
    sig = [reg.get("memory_used_mb"), reg.get("next_eviction"), reg.get("loaded")]
    for m in snap["models"]:
        stats = m.get("stats") or {}
        sig.append([m.get("id"), *(m.get(k) for k in _MODEL_KEYS), *(stats.get(k) for k in _STAT_KEYS)])
    return json.dumps(sig, default=str)


def sessions_snapshot(app_state: Any, viewer: Any = None) -> dict[str, Any]:
    """The body of GET /v1/sessions as `viewer` (an `ApiKey`) may see it."""
    sessions = app_state.sessions.snapshot(viewer)
    return {"count": len(sessions), "sessions": sessions}


def sessions_signature(snap: dict[str, Any]) -> str:
    return json.dumps(sorted(str(s.get("session_id")) for s in snap["sessions"]))


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


async def _feed(
    request: Request,
    name: str,
    snapshot: Callable[[Any], dict[str, Any]],
    signature: Callable[[dict[str, Any]], str],
    refresh_s: float,
    active_refresh: bool,
) -> AsyncIterator[bytes]:
    state = request.app.state
    start = last_sent = last_beat = time.monotonic()
    last_sig = None
    yield b"retry: 1000\n\n"
    while True:
        now = time.monotonic()
        if now - start > MAX_STREAM_S or not getattr(state.sessions, "accepting", True):
            return
        if await request.is_disconnected():
            return
        snap = snapshot(state)
        sig = signature(snap)
        due = now - last_sent >= refresh_s and (active_refresh or snap.get("count", 0) > 0)
        if sig != last_sig or due:
            last_sig, last_sent, last_beat = sig, now, now
            yield _event(name, snap)
        elif now - last_beat >= HEARTBEAT_S:
            last_beat = now
            yield b": keep-alive\n\n"
        await asyncio.sleep(TICK_S)


def live_router(reader: Callable[..., Any]) -> APIRouter:
    """The router; `reader` is the service's dependency that admits any valid key."""
    r = APIRouter(prefix="/v1/live", tags=["live"])
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

    @r.get("/models")
    async def live_models(request: Request, key: Annotated[Any, Depends(reader)]) -> StreamingResponse:
        gen = _feed(request, "models", models_snapshot, models_signature, MODELS_REFRESH_S, True)
        return StreamingResponse(gen, media_type="text/event-stream", headers=headers)

    @r.get("/sessions")
    async def live_sessions(request: Request, key: Annotated[Any, Depends(reader)]) -> StreamingResponse:
        gen = _feed(request, "sessions", lambda st: sessions_snapshot(st, key), sessions_signature,
                    SESSIONS_REFRESH_S, False)
        return StreamingResponse(gen, media_type="text/event-stream", headers=headers)

    return r
