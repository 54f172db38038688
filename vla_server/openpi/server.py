"""An ASGI app that speaks openpi's policy-server protocol, so the unmodified ``openpi-client``
(``WebsocketClientPolicy(host, port, api_key).infer(obs)``) can use our models.

Protocol (read from openpi's ``serving/websocket_policy_server.py`` and
``openpi_client/websocket_client_policy.py``):

* the client opens ``ws://HOST:PORT`` (root path; it cannot take a path), optionally with the
  header ``Authorization: Api-Key <key>``. openpi's own server ignores the header; we check it
  and refuse the handshake with HTTP 401 (the client raises ``InvalidStatus``);
* on connect the server sends one binary frame: the msgpack metadata map;
* then request/reply: the client sends a msgpack map (the observation, numpy arrays packed by
  `robot_formats.openpi_codec`), the server answers with a msgpack map holding the action chunk under
  ``"actions"`` (shape (H, D)) and ``"server_timing"`` ({"infer_ms", "prev_total_ms"}; the
  latter from the second reply on, the previous request's receive-to-sent time);
* an error is a *text* frame with the message, then close code 1011 (the client raises
  ``RuntimeError`` with the text). We send a one-line message, never a traceback;
* ``GET /healthz`` answers ``200 OK``.

Which model answers: `OpenPIServerConfig.model`, unless the client names another in the URL
query (``WebsocketClientPolicy("ws://host:8001/?model=onnx-tiny")``) and `allow_model_query` is
on. `current_session` holds the connection's session id while `infer` runs (a context variable,
so the ``infer(model_id, obs)`` signature stays small); `end_session` is called when the
connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, WebSocket
from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocketDisconnect, WebSocketState

from robot_formats.openpi_codec import OpenPICodecError, packb, unpackb

log = logging.getLogger(__name__)

CLOSE_INTERNAL_ERROR = 1011  # openpi's server closes with this after the error text frame
API_KEY_SCHEME = "api-key"  # "Authorization: Api-Key <key>", scheme compared case-insensitively

InferFn = Callable[[str, dict[str, Any]], Awaitable[Mapping[str, Any]]]
"""``await infer(model_id, obs) -> {"actions": (H, D) ndarray, ...}``; may raise to report an error."""
CheckKeyFn = Callable[[str | None], bool | Awaitable[bool]]
"""``check_key(key_or_None) -> bool`` (sync or async): True lets the connection in."""
MetadataArg = Mapping[str, Any] | Callable[[str], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
EndSessionFn = Callable[[str, str], None | Awaitable[None]]

current_session: contextvars.ContextVar[str] = contextvars.ContextVar("openpi_session", default="")


@dataclass(frozen=True)
class OpenPIServerConfig:
    """How the openpi endpoint behaves.

    Attributes:
        model: model id served when the client names none.
        allow_model_query: accept ``?model=ID`` in the connection URL.
        max_message_bytes: largest observation accepted (bytes); the transport limit (uvicorn's
            ``ws_max_size``) should be at least this.
        infer_timeout_s: an inference taking longer fails the request (error frame, close 1011).
    """

    model: str
    allow_model_query: bool = True
    max_message_bytes: int = 32 * 1024 * 1024
    infer_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"openpi endpoint model: expected a model id, got {self.model!r}")
        if self.max_message_bytes < 1024:
            raise ValueError(f"openpi max_message_bytes: expected >= 1024, got {self.max_message_bytes}")
        if not self.infer_timeout_s > 0:
            raise ValueError(f"openpi infer_timeout_s: expected > 0 s, got {self.infer_timeout_s}")


@dataclass
class OpenPIEndpointStats:
    """Counters of one app (read by the service's /v1 stats and by tests)."""

    connections_total: int = 0
    connections_open: int = 0
    auth_failures: int = 0
    requests: int = 0
    errors: int = 0
    last_error: str = ""
    by_model: dict[str, int] = field(default_factory=dict)


class OpenPIRequestError(Exception):
    """A request the endpoint answers with an error frame (bad observation, bad reply)."""


def parse_api_key(header: str | None) -> str | None:
    """The key from an ``Authorization: Api-Key <key>`` header, or None when absent or another scheme."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != API_KEY_SCHEME or not rest.strip():
        return None
    return rest.strip()


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _check_reply(reply: object, model_id: str) -> dict[str, Any]:
    """Validates what `infer` returned and copies it (we add ``server_timing``)."""
    if not isinstance(reply, Mapping):
        raise OpenPIRequestError(f"model {model_id!r} returned {type(reply).__name__}, expected a mapping")
    actions = reply.get("actions")
    if not isinstance(actions, np.ndarray) or actions.ndim != 2 or actions.dtype.kind not in "iuf":
        got = f"{type(actions).__name__} {getattr(actions, 'shape', '')}"
        raise OpenPIRequestError(f"model {model_id!r} returned actions {got}, expected an (H, D) numeric array")
    if not np.all(np.isfinite(actions)):
        raise OpenPIRequestError(f"model {model_id!r} returned non-finite actions")
    return dict(reply)


def create_openpi_app(
    infer: InferFn,
    metadata: MetadataArg,
    check_key: CheckKeyFn | None,
    config: OpenPIServerConfig | None = None,
    *,
    model: str | None = None,
    end_session: EndSessionFn | None = None,
) -> FastAPI:
    """Builds the openpi-protocol app.

    Args:
        infer: ``await infer(model_id, obs)``, obs the decoded request map.
        metadata: the map sent on connect, or a function of the model id returning it.
        check_key: decides on the ``Api-Key`` (None when the header is missing). ``None`` here
            means no authentication, as openpi's own server (local use only).
        config: endpoint settings; or give just `model`.
        model: shorthand for ``OpenPIServerConfig(model=model)``.
        end_session: ``end_session(model_id, session_id)`` when a connection ends.

    Returns:
        A FastAPI app; ``app.state.openpi_stats`` holds its `OpenPIEndpointStats`.
    """
    if config is None:
        if model is None:
            raise ValueError("create_openpi_app: give a config or a model id")
        config = OpenPIServerConfig(model=model)
    cfg = config
    app = FastAPI(title="openpi-compatible policy endpoint", docs_url=None, redoc_url=None, openapi_url=None)
    stats = OpenPIEndpointStats()
    app.state.openpi_stats = stats
    app.state.openpi_config = cfg

    @app.get("/healthz")
    async def healthz() -> Response:
        return PlainTextResponse("OK\n")

    @app.websocket("/")
    async def policy_socket(ws: WebSocket) -> None:
        key = parse_api_key(ws.headers.get("authorization"))
        if check_key is not None and not await _maybe_await(check_key(key)):
            stats.auth_failures += 1
            why = "missing API key (send 'Authorization: Api-Key <key>')" if key is None else "invalid API key"
            log.warning("openpi auth refused peer=%s reason=%r", ws.client, why)
            await ws.send_denial_response(PlainTextResponse(why + "\n", status_code=401))
            return
        model_id = cfg.model
        requested = ws.query_params.get("model")
        if requested and cfg.allow_model_query:
            model_id = requested
        session_id = str(uuid.uuid4())
        current_session.set(session_id)
        stats.connections_total += 1
        stats.connections_open += 1
        log.info("openpi session open session=%s model=%s peer=%s", session_id, model_id, ws.client)
        try:
            await _serve(ws, model_id, session_id)
        finally:
            stats.connections_open -= 1
            log.info("openpi session closed session=%s", session_id)
            if end_session is not None:
                with contextlib.suppress(Exception):
                    await _maybe_await(end_session(model_id, session_id))

    async def _serve(ws: WebSocket, model_id: str, session_id: str) -> None:
        try:
            meta = metadata(model_id) if callable(metadata) else metadata
            meta = await _maybe_await(meta)
            await ws.accept()
            await ws.send_bytes(packb(dict(meta)))
        except WebSocketDisconnect:
            return
        except Exception as exc:  # noqa: BLE001 - reported to the client, not raised into uvicorn
            await _fail(ws, f"metadata for model {model_id!r}: {type(exc).__name__}: {exc}")
            return
        prev_total_ms: float | None = None
        while True:
            try:
                msg = await ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if msg["type"] == "websocket.disconnect":
                return
            t0 = time.monotonic()
            try:
                reply, infer_ms = await _answer(msg, model_id)
            except OpenPIRequestError as exc:
                await _fail(ws, str(exc))
                return
            timing: dict[str, float] = {"infer_ms": infer_ms}
            if prev_total_ms is not None:
                timing["prev_total_ms"] = prev_total_ms
            reply["server_timing"] = timing
            try:
                await ws.send_bytes(packb(reply))
            except OpenPICodecError as exc:
                await _fail(ws, f"model {model_id!r} reply cannot be encoded: {exc}")
                return
            except (WebSocketDisconnect, RuntimeError):
                return
            prev_total_ms = (time.monotonic() - t0) * 1000.0

    async def _answer(msg: Mapping[str, Any], model_id: str) -> tuple[dict[str, Any], float]:
        """Decodes one request, runs the model; returns (reply, inference time in ms)."""
        data = msg.get("bytes")
        if data is None:
            raise OpenPIRequestError("expected a binary msgpack observation, got a text frame")
        if len(data) > cfg.max_message_bytes:
            raise OpenPIRequestError(f"observation of {len(data)} bytes exceeds the limit of {cfg.max_message_bytes}")
        try:
            obs = unpackb(data)
        except OpenPICodecError as exc:
            raise OpenPIRequestError(f"bad observation: {exc}") from exc
        if not isinstance(obs, dict):
            raise OpenPIRequestError(f"expected the observation as a msgpack map, got {type(obs).__name__}")
        stats.requests += 1
        stats.by_model[model_id] = stats.by_model.get(model_id, 0) + 1
        t = time.monotonic()
        try:
            raw = await asyncio.wait_for(infer(model_id, obs), timeout=cfg.infer_timeout_s)
        except TimeoutError as exc:
            raise OpenPIRequestError(f"model {model_id!r} did not answer within {cfg.infer_timeout_s:g} s") from exc
        except OpenPIRequestError:
            raise
        except Exception as exc:
            raise OpenPIRequestError(f"model {model_id!r} failed: {type(exc).__name__}: {exc}") from exc
        infer_ms = (time.monotonic() - t) * 1000.0
        return _check_reply(raw, model_id), infer_ms

    async def _fail(ws: WebSocket, message: str) -> None:
        stats.errors += 1
        stats.last_error = message
        log.warning("openpi error: %s", message)
        if ws.application_state != WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.accept()
        with contextlib.suppress(Exception):
            await ws.send_text(f"Error in inference server: {message}")
            await ws.close(code=CLOSE_INTERNAL_ERROR, reason="Internal server error; message in previous frame")

    return app


def bind_loopback_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound, listening TCP socket (port 0: the OS picks a free one; no choose-then-bind race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


@contextlib.contextmanager
def serve_in_thread(
    app: Any, host: str = "127.0.0.1", port: int = 0, ws_max_size: int = 32 * 1024 * 1024, start_timeout_s: float = 10.0
) -> Iterator[int]:
    """Runs `app` under uvicorn in a background thread; yields the port; stops it on exit.

    For tests and for embedding; the service's CLI runs uvicorn itself.
    """
    import uvicorn

    sock = bind_loopback_socket(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", ws_max_size=ws_max_size, lifespan="off")
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if errors or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"uvicorn did not start on {host}:{bound_port}: {errors[:1]}")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"uvicorn did not start on {host}:{bound_port} within {start_timeout_s} s")
        time.sleep(0.01)
    try:
        yield bound_port
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"uvicorn on port {bound_port} did not stop within 10 s")
