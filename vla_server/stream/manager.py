"""`SessionManager`: the live `/v1/stream` sessions — tier limits per key, the listing for
`GET /v1/sessions`, model events forwarded to the sessions of that model, and closing everything
at shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from robot_formats.stream.limits import CLOSE_GOING_AWAY
from vla_server.registry.types import ModelEvent
from vla_server.stream.session import StreamSession

log = logging.getLogger("vla_server.stream")

_ANNOUNCED = ("crashed", "failed", "restarted")  # model events sessions are told about


class SessionManager:
    """Live sessions, keyed by session id. Used from one event loop."""

    def __init__(self) -> None:
        self._sessions: dict[str, StreamSession] = {}
        self.accepting = True

    def try_register(self, session: StreamSession) -> str | None:
        """Registers an authenticated session; returns why not when its key's tier is full."""
        if not self.accepting:
            return "the server is shutting down"
        key = session.key
        assert key is not None
        limit = key.tier.max_sessions
        if limit is not None:
            open_ = sum(1 for s in self._sessions.values() if s.key is not None and s.key.key_id == key.key_id)
            if open_ >= limit:
                return (f"key {key.name!r} ({key.tier.name} tier) allows {limit} concurrent session"
                        f"{'s' if limit != 1 else ''}; {open_} open")
        self._sessions[session.session_id] = session
        return None

    def unregister(self, session: StreamSession) -> None:
        self._sessions.pop(session.session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[StreamSession]:
        return list(self._sessions.values())

    def snapshot(self) -> list[dict[str, Any]]:
        """Every live session as `GET /v1/sessions` lists it."""
        return [s.snapshot() for s in self._sessions.values()]

    def on_model_event(self, event: ModelEvent) -> None:
        """Registry listener: a crashed / restarted / failed model's sessions get an `error`."""
        if event.kind not in _ANNOUNCED:
            return
        for s in self._sessions.values():
            if s.model == event.model_id:
                s.error(event.message)

    async def close_all(self, reason: str = "server shutting down", code: int = CLOSE_GOING_AWAY,
                        timeout_s: float = 3.0) -> int:
        """Stops accepting sessions, tells each live one why, closes it and waits (bounded)."""
        self.accepting = False
        live = list(self._sessions.values())
        for s in live:
            s.fail(reason, code)
        if live:
            await asyncio.gather(*(s.wait_closed(timeout_s) for s in live))
            log.info("sessions closed", extra={"event": "sessions_closed", "count": len(live), "reason": reason})
        return len(live)
