"""`SessionManager`: the live sessions of both endpoints (`/v1/stream` and openpi) — tier limits
per key counted across both, the listing for `GET /v1/sessions` (a non-admin key sees only its
own), model events forwarded to the sessions of that model, closing a revoked key's sessions
(error, then 4001) and closing everything at shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from robot_formats.stream.limits import CLOSE_BAD_KEY, CLOSE_GOING_AWAY
from vla_server.auth.store import ApiKey
from vla_server.registry.types import ModelEvent

log = logging.getLogger("vla_server.stream")

_ANNOUNCED = ("crashed", "failed", "restarted")  # model events sessions are told about


class TenantSession(Protocol):
    """What the manager needs of a session, whichever endpoint it came through."""

    session_id: str

    @property
    def key(self) -> ApiKey | None: ...

    @property
    def model(self) -> str | None: ...

    def error(self, message: str) -> None:
        """Tells the client something went wrong; the session goes on."""

    def fail(self, message: str, code: int) -> None:
        """Tells the client why, then closes with `code`."""

    async def wait_closed(self, timeout_s: float) -> bool: ...

    def snapshot(self) -> dict[str, Any]: ...


class SessionManager:
    """Live sessions, keyed by session id. Used from one event loop."""

    def __init__(self) -> None:
        self._sessions: dict[str, TenantSession] = {}
        self.accepting = True

    def try_register(self, session: TenantSession) -> str | None:
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

    def unregister(self, session: TenantSession) -> None:
        self._sessions.pop(session.session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[TenantSession]:
        return list(self._sessions.values())

    def open_for(self, key_id: str) -> int:
        """How many sessions `key_id` holds now."""
        return sum(1 for s in self._sessions.values() if s.key is not None and s.key.key_id == key_id)

    def snapshot(self, viewer: ApiKey | None = None) -> list[dict[str, Any]]:
        """The live sessions as `GET /v1/sessions` lists them: all of them for an admin key (or
        `viewer` None, inside the service), only its own for any other key."""
        return [s.snapshot() for s in self._sessions.values()
                if viewer is None or viewer.admin or (s.key is not None and s.key.key_id == viewer.key_id)]

    def on_key_revoked(self, key_id: str) -> int:
        """Revocation listener: every session of `key_id` gets an error, then close 4001."""
        hit = [s for s in self._sessions.values() if s.key is not None and s.key.key_id == key_id]
        for s in hit:
            s.fail("API key revoked", CLOSE_BAD_KEY)
        if hit:
            log.info("revoked key's sessions closed", extra={"event": "revoked_sessions_closed", "count": len(hit),
                                                             "key_id": key_id})
        return len(hit)

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
