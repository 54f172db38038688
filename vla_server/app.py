"""`create_app(config)`: the service's FastAPI app — ``/health``, ``/v1/models…``,
``/v1/sessions``, the ``/v1/stream`` websocket, the arena API (``/v1/arena``) and the web UI.

Shared objects live in ``app.state`` for routes that others mount: ``keystore`` (`KeyStore`,
used by `require_reader` / `require_admin`), ``registry`` (`ModelRegistry`), ``sessions``
(`SessionManager`), ``config`` (`ServiceConfig`), ``stream_config``, ``catalog``, ``started_at``.
The lifespan starts the registry and the `RevocationWatcher` (a key revoked by the CLI closes
its sessions on both endpoints) and, at shutdown, closes every session with a reason (1001)
before stopping the workers.

Every HTTP request passes `RequestGuard` (body limits and, for writing requests, the key before
the body is read) and `SecurityHeaders`. The API docs (``/docs``, ``/openapi.json``) are off
unless ``server.api_docs`` is on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from vla_server.api.guard import BodyLimits, RequestGuard
from vla_server.api.headers import SecurityHeaders
from vla_server.api.health import health_router
from vla_server.api.models import models_router
from vla_server.api.sessions import sessions_router
from vla_server.auth.revocation import RevocationWatcher
from vla_server.auth.store import KeyStore
from vla_server.config import ServiceConfig
from vla_server.models import ModelSpec
from vla_server.registry.registry import ModelRegistry
from vla_server.stream.endpoint import stream_router
from vla_server.stream.manager import SessionManager

log = logging.getLogger("vla_server.app")


def create_app(
    config: ServiceConfig | None = None,
    *,
    catalog: Mapping[str, ModelSpec] | None = None,
    registry: ModelRegistry | None = None,
    keystore: KeyStore | None = None,
    web: bool | None = None,
    arena: bool | None = None,
) -> FastAPI:
    """Builds the app.

    Args:
        config: service configuration (defaults when None).
        catalog: models (default: ``config.server.catalog`` through `vla_server.catalog.load_catalog`).
        registry: a ready-made registry (tests); default: built from `catalog` and ``config.registry``.
        keystore: a ready-made key store; default ``<data_dir>/keys.sqlite3``.
        web: mount the web UI (default ``config.server.web``).
        arena: mount the arena API (default ``config.server.arena``).
    """
    config = config or ServiceConfig()
    if catalog is None:
        from vla_server.catalog import load_catalog

        catalog = registry_catalog(registry) if registry is not None else load_catalog(config.server.catalog)
    keystore = keystore or KeyStore(config.keys_db)
    registry = registry or ModelRegistry(catalog, config.registry, log_dir=config.data_path / "workers")
    sessions = SessionManager()
    registry.add_listener(sessions.on_model_event)
    revocations = RevocationWatcher(keystore)
    revocations.add_listener(sessions.on_key_revoked)
    arena_runtime = _arena_runtime(config) if (config.server.arena if arena is None else arena) else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await registry.start()
        revocations.start()
        log.info("service started", extra={"event": "service_started", "models": list(catalog),
                                           "eviction": config.registry.eviction,
                                           "memory_budget_mb": config.registry.memory_budget_mb})
        try:
            yield
        finally:
            await revocations.aclose()
            await sessions.close_all("server shutting down", timeout_s=config.server.shutdown_timeout_s)
            await registry.aclose()
            if arena_runtime is not None:
                arena_runtime.close()
            log.info("service stopped", extra={"event": "service_stopped"})

    docs = config.server.api_docs
    app = FastAPI(title="vla_server", description="VLA policy inference service", lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url=None, openapi_url="/openapi.json" if docs else None)
    app.add_middleware(RequestGuard, limits=BodyLimits(default=config.server.max_json_body_bytes),
                       verify=keystore.verify)
    app.add_middleware(SecurityHeaders)
    app.state.config = config
    app.state.stream_config = config.stream
    app.state.keystore = keystore
    app.state.registry = registry
    app.state.sessions = sessions
    app.state.revocations = revocations
    app.state.catalog = dict(catalog)
    app.state.started_at = time.time()
    app.include_router(health_router())
    app.include_router(models_router())
    app.include_router(sessions_router())
    app.include_router(stream_router())
    if arena_runtime is not None:
        from vla_server.arena.api import create_arena_router
        from vla_server.auth.deps import require_admin, require_reader

        app.state.arena = arena_runtime
        app.include_router(create_arena_router(arena_runtime, require_reader, require_admin))
    if config.server.web if web is None else web:
        _mount_web(app, config)
    return app


def registry_catalog(registry: ModelRegistry) -> dict[str, ModelSpec]:
    """The catalog a registry was built with."""
    return {mid: registry.spec(mid) for mid in registry.model_ids()}


def _arena_runtime(config: ServiceConfig) -> Any:
    """The arena's runtime on ``<data_dir>/arena``, running the service's catalog."""
    from vla_server.arena.models import ProviderRef
    from vla_server.arena.runtime import ArenaConfig, ArenaRuntime

    provider = ProviderRef(kwargs={"catalog": config.server.catalog}) if config.server.catalog else ProviderRef()
    return ArenaRuntime(ArenaConfig(
        data_dir=str(config.data_path / "arena"), executor=config.server.arena_executor,
        workers=config.server.arena_workers, provider=provider, recordings_dir=config.server.recordings_dir,
        live_port=config.server.arena_live_port,
    ))


def _mount_web(app: FastAPI, config: ServiceConfig) -> Any:
    try:
        from vla_server.web.mount import mount_web
    except ImportError as exc:  # the UI is optional
        log.warning("web UI not mounted", extra={"event": "web_unavailable", "error": str(exc)})
        return None
    return mount_web(app, recordings_dir=config.server.recordings_dir, cache_dir=config.data_path / "web_cache")
