"""`RequestGuard`: an ASGI middleware that bounds every HTTP request before its body is read.

In order, before the app sees the request:

1. **Size.** Each route has a body limit (`BodyLimits`: small for the JSON APIs). A declared
   ``Content-Length`` above it is answered 413 at once, without reading a byte of the body; a
   body streamed without a length (chunked) is counted as it arrives and cut off with 413 the
   moment it passes the limit. So the service never holds more than the limit per request.
2. **Key before parsing.** A request that may change things (any method but GET / HEAD /
   OPTIONS) on an API path needs an active key *before* its body is read: 401 otherwise. The
   verified `ApiKey` is left in ``scope["state"]["api_key"]`` so the route's own dependency
   (`vla_server.auth.deps.require_reader`) does not verify it twice.

Websocket connections pass through (their messages are bounded by the websocket layer).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from vla_server.auth.deps import AUTH_HINT, extract_key_from
from vla_server.auth.store import ApiKey

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_JSON_BODY_BYTES = 256 * 1024  # the largest JSON body an API route accepts
STATE_KEY = "api_key"


@dataclass(frozen=True)
class BodyLimits:
    """Largest request body per route, bytes.

    Attributes:
        default: any path not named in `routes`.
        routes: path prefix → limit; the longest matching prefix wins.
        protected_prefixes: paths whose non-GET requests need a key before the body is read.
    """

    default: int = DEFAULT_JSON_BODY_BYTES
    routes: Mapping[str, int] = field(default_factory=dict)
    protected_prefixes: tuple[str, ...] = ("/v1/",)

    def __post_init__(self) -> None:
        for where, v in (("default", self.default), *self.routes.items()):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"body limit for {where!r}: expected an integer >= 0 bytes, got {v!r}")

    def limit_for(self, path: str) -> int:
        best, limit = -1, self.default
        for prefix, value in self.routes.items():
            if path.startswith(prefix) and len(prefix) > best:
                best, limit = len(prefix), value
        return limit


class _TooLarge(Exception):
    pass


class RequestGuard:
    """The middleware (see the module docstring).

    Args:
        app: the wrapped ASGI app.
        limits: per-route body limits.
        verify: key text → active `ApiKey` or None (the service's `KeyStore.verify`); None
            leaves authentication to the routes.
    """

    def __init__(self, app: ASGIApp, limits: BodyLimits | None = None,
                 verify: Callable[[str], ApiKey | None] | None = None) -> None:
        self.app = app
        self.limits = limits or BodyLimits()
        self.verify = verify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.limits.limit_for(path)
        headers = _headers(scope)
        declared = headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _respond(send, 400, f"Content-Length: expected a number of bytes, got {declared[:40]!r}")
                return
            if length > limit:
                await _respond(send, 413, f"request body of {length} bytes exceeds this route's limit of "
                                          f"{limit} bytes")
                return
        method = scope.get("method", "GET")
        if (self.verify is not None and method not in SAFE_METHODS
                and any(path.startswith(p) for p in self.limits.protected_prefixes)):
            key_text = extract_key_from(headers, scope.get("query_string", b"").decode("latin-1"))
            record = self.verify(key_text) if key_text is not None else None
            if record is None:
                why = f"missing API key: {AUTH_HINT}" if key_text is None else "invalid or revoked API key"
                await _respond(send, 401, why, {"www-authenticate": "Bearer"})
                return
            scope.setdefault("state", {})[STATE_KEY] = record
        if method in SAFE_METHODS and declared is None and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        received = 0
        started = False
        refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise _TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer; whatever the app says after is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await _respond(send, 413, f"request body exceeds this route's limit of {limit} bytes")
            return
        if refused and not started:
            await _respond(send, 413, f"request body exceeds this route's limit of {limit} bytes")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _respond(send: Send, status: int, detail: str, extra: Mapping[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
