"""Model routes: ``GET /v1/models``, ``GET /v1/models/{id}``, ``GET /v1/models/{id}/stats`` (any
key); ``POST /v1/models/{id}/load|unload|pin|unpin`` (admin key).

Errors: 404 unknown model, 409 no capacity (budget, max_models, device), 502 the model failed
to load, 503 the service is shutting down; the body's ``detail`` says why.
"""

# No `from __future__ import annotations`: FastAPI must see the Depends() annotations.
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request

from vla_server.auth.deps import require_admin, require_reader
from vla_server.auth.store import ApiKey
from vla_server.registry.errors import (
    CapacityError,
    ModelLoadError,
    RegistryClosed,
    RegistryError,
    UnknownModel,
)

Reader = Annotated[ApiKey, Depends(require_reader)]
Admin = Annotated[ApiKey, Depends(require_admin)]


def _http_error(exc: RegistryError) -> HTTPException:
    if isinstance(exc, UnknownModel):
        return HTTPException(404, str(exc))
    if isinstance(exc, CapacityError):
        return HTTPException(409, str(exc))
    if isinstance(exc, ModelLoadError):
        return HTTPException(502, str(exc))
    if isinstance(exc, RegistryClosed):
        return HTTPException(503, str(exc))
    return HTTPException(500, str(exc))


async def _call(fn: Callable[[str], Awaitable[dict[str, Any]]], model_id: str) -> dict[str, Any]:
    try:
        return await fn(model_id)
    except RegistryError as exc:
        raise _http_error(exc) from None


def models_router() -> APIRouter:
    router = APIRouter(prefix="/v1/models", tags=["models"])

    @router.get("")
    def list_models(request: Request, key: Reader) -> dict[str, Any]:
        reg = request.app.state.registry
        return {"registry": reg.summary(), "models": reg.statuses()}

    @router.get("/{model_id}")
    def get_model(model_id: str, request: Request, key: Reader) -> dict[str, Any]:
        try:
            return request.app.state.registry.status(model_id)
        except UnknownModel as exc:
            raise _http_error(exc) from None

    @router.get("/{model_id}/stats")
    def model_stats(model_id: str, request: Request, key: Reader) -> dict[str, Any]:
        try:
            return {"id": model_id, **request.app.state.registry.stats(model_id)}
        except UnknownModel as exc:
            raise _http_error(exc) from None

    @router.post("/{model_id}/load")
    async def load(model_id: str, request: Request, key: Admin) -> dict[str, Any]:
        return await _call(request.app.state.registry.load, model_id)

    @router.post("/{model_id}/unload")
    async def unload(model_id: str, request: Request, key: Admin) -> dict[str, Any]:
        return await _call(request.app.state.registry.unload, model_id)

    @router.post("/{model_id}/pin")
    async def pin(model_id: str, request: Request, key: Admin) -> dict[str, Any]:
        return await _call(request.app.state.registry.pin, model_id)

    @router.post("/{model_id}/unpin")
    async def unpin(model_id: str, request: Request, key: Admin) -> dict[str, Any]:
        return await _call(request.app.state.registry.unpin, model_id)

    return router
