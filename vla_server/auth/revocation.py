"""`RevocationWatcher`: notices keys revoked by another process (``vla-server keys revoke``
writes the SQLite store) and tells the service, so a revoked key's open sessions end within
about one poll period (`POLL_S`, default 0.25 s) on every endpoint.

The watcher polls `KeyStore.revoked_since` on the event loop's default executor (SQLite must not
block the loop) and calls each listener with the revoked key's id, once per revocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from vla_server.auth.store import KeyStore

log = logging.getLogger("vla_server.auth")

POLL_S = 0.25
_CLOCK_SLACK_S = 5.0  # look back this far at start, in case the CLI's clock runs a little behind ours


class RevocationWatcher:
    """Polls `store` every `poll_s` seconds; `listeners` hear ``on_revoked(key_id)``."""

    def __init__(self, store: KeyStore, poll_s: float = POLL_S) -> None:
        if not poll_s > 0:
            raise ValueError(f"revocation poll period: expected > 0 s, got {poll_s}")
        self.store = store
        self.poll_s = poll_s
        self._listeners: list[Callable[[str], object]] = []
        self._seen: set[tuple[str, float]] = set()
        self._since = time.time() - _CLOCK_SLACK_S
        self._task: asyncio.Task[None] | None = None

    def add_listener(self, on_revoked: Callable[[str], object]) -> None:
        self._listeners.append(on_revoked)

    def start(self) -> None:
        """Starts polling on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="key-revocations")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def poll_once(self) -> list[str]:
        """Reads the store once; returns (and announces) the key ids newly revoked."""
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(None, self.store.revoked_since, self._since)
        fresh = [r for r in rows if r not in self._seen]
        for key_id, revoked_at in fresh:
            self._seen.add((key_id, revoked_at))
            log.info("key revoked; closing its sessions", extra={"event": "key_revoked", "key_id": key_id})
            for cb in list(self._listeners):
                try:
                    cb(key_id)
                except Exception:  # a listener's bug must not stop the watcher
                    log.exception("revocation listener failed", extra={"event": "listener_failed"})
        return [k for k, _ in fresh]

    async def _run(self) -> None:
        deadline = time.monotonic()
        while True:
            deadline += self.poll_s
            try:
                await self.poll_once()
            except Exception as exc:  # noqa: BLE001 -- a locked or damaged store: log, keep polling
                log.warning("cannot read key revocations", extra={"event": "revocation_poll_failed",
                                                                  "error": str(exc)})
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            deadline = max(deadline, time.monotonic() - self.poll_s)
