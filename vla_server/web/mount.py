"""`mount_web`: adds the web UI (static single-page app) and its recordings API to the service's app.

    /ui/                    the single-page app (index.html, style.css, js/…), no build step
    /                       redirects to /ui/ (when the service has no route of its own there)
    /v1/recordings…         the recordings folder API (`recordings_api`)
    /v1/auth/whoami         the caller's key: name, tier, admin (`whoami_api`; unless the service has one)
    /v1/live/models|sessions  server-sent events of the registry and the stream sessions (`live_api`)

The static files are public (they hold no data); every API route they call checks the key.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from robot_formats.recording.paths import RECORDINGS_DIR
from vla_server.web.live_api import live_router
from vla_server.web.recordings import RecordingLibrary
from vla_server.web.recordings_api import recordings_router
from vla_server.web.whoami_api import whoami_router

log = logging.getLogger("vla_server.web")

STATIC_DIR = Path(__file__).with_name("static")
UI_PATH = "/ui"


def _default_reader() -> Callable[..., Any]:
    from vla_server.auth import (
        require_reader,  # the service's dependency: a key of any tier
    )

    return require_reader  # type: ignore[no-any-return]


def mount_web(
    app: FastAPI,
    recordings_dir: Path | str = RECORDINGS_DIR,
    cache_dir: Path | str | None = None,
    reader: Callable[..., Any] | None = None,
) -> RecordingLibrary:
    """Mounts the UI and the recordings API on `app`; returns the recordings library.

    Args:
        app: the service's FastAPI app.
        recordings_dir: the teleop recordings folder (the daemon's ``recordings_dir``).
        cache_dir: where plots and MP4s made from recordings are kept (default: a folder in the
            system temp dir; give the service's data folder to keep them across restarts).
        reader: FastAPI dependency that admits any valid key and returns its `ApiKey`
            (default: `vla_server.auth.require_reader`).

    The library's job thread stops when the app's lifespan ends.
    """
    if not (STATIC_DIR / "index.html").is_file():
        raise FileNotFoundError(f"the web UI's files are missing from {STATIC_DIR} (package data not installed?)")
    cache = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "vla_server_web_cache"
    library = RecordingLibrary(Path(recordings_dir), cache)
    reader = reader or _default_reader()
    app.include_router(recordings_router(library, reader))
    if not any(getattr(r, "path", None) == "/v1/auth/whoami" for r in app.router.routes):
        app.include_router(whoami_router(reader))
    if hasattr(app.state, "registry") and hasattr(app.state, "sessions"):
        app.include_router(live_router(reader))
    app.mount(UI_PATH, StaticFiles(directory=STATIC_DIR, html=True), name="ui")
    if not any(getattr(r, "path", None) == "/" for r in app.router.routes):
        @app.get("/", include_in_schema=False)
        def _root() -> RedirectResponse:
            return RedirectResponse(f"{UI_PATH}/")
    app.state.web_library = library
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:  # the service's own lifespan, then ours
        try:
            async with inner(a) as state:
                yield state
        finally:
            library.close()

    app.router.lifespan_context = lifespan
    log.info("web UI at %s/ (recordings from %s)", UI_PATH, recordings_dir)
    return library
