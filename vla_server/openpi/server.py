"""A `websockets` server that speaks openpi's policy-server protocol, so the unmodified ``openpi-client``
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
  ``RuntimeError("Error in inference server:\n" + text)``, so the text carries no prefix of its
  own). We send a one-line message, never a traceback;
* the service may end a connection at any time (`SessionCloser`: a revoked key, shutdown): the
  error text, then the close code it names;
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
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from vla_server.openpi.errors import CLOSE_INTERNAL_ERROR, OpenPIRequestError, send_error

__all__ = ["CLOSE_INTERNAL_ERROR", "OpenPIApp", "OpenPIRequestError", "OpenPIServerConfig", "create_openpi_app",
           "current_session", "parse_api_key", "serve_in_thread"]

log = logging.getLogger(__name__)

API_KEY_SCHEME = "api-key"  # "Authorization: Api-Key <key>", scheme compared case-insensitively

InferFn = Callable[[str, dict[str, Any]], Awaitable[Mapping[str, Any]]]
"""``await infer(model_id, obs) -> {"actions": (H, D) ndarray, ...}``; may raise to report an error."""
CheckKeyFn = Callable[[str | None], Any]
"""``check_key(key_or_None) -> principal`` (sync or async): a truthy value (e.g. the key's record)
lets the connection in and is handed to `OpenSessionFn`; a falsy one refuses it (401)."""
SessionCloser = Callable[[str, int], Coroutine[Any, Any, None]]
"""``await close(message, code)``: sends `message` as the error text frame, then closes with `code`."""
OpenSessionFn = Callable[[Any, str, str, SessionCloser], str | None | Awaitable[str | None]]
"""``open_session(principal, model_id, session_id, close) -> None | refusal``: admits a
connection (tier limits); a refusal text answers the handshake with HTTP 429."""
MetadataArg = Mapping[str, Any] | Callable[[str], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
EndSessionFn = Callable[[str, str], None | Awaitable[None]]
HandoffFn = Callable[[ServerConnection, str, str], Awaitable[Awaitable[Any] | None]]
"""``await handoff(conn, model_id, session_id)``: gives an admitted connection (handshake done,
reading paused, nothing buffered) to whoever serves it from now on; returns what to await until
that connection ends, or None to serve it here."""

current_session: contextvars.ContextVar[str] = contextvars.ContextVar("openpi_session", default="")


@dataclass(frozen=True)
class OpenPIServerConfig:
    """How the openpi endpoint behaves.

    Attributes:
        model: model id served when the client names none.
        allow_model_query: accept ``?model=ID`` in the connection URL.
        max_message_bytes: largest observation accepted (bytes); the transport limit (`OpenPIApp.serve`'s
            ``max_size``) should be at least this.
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


class OpenPIApp:
    """The openpi endpoint: a `websockets` asyncio server (as openpi's own server), no ASGI stack.

    Authentication (``process_request``: 401 before the handshake completes), admission
    (``process_response``: 429 when `open_session` refuses) and ``GET /healthz`` happen during the
    opening handshake; the connection handler then serves request/reply. `serve` runs it on a
    listening socket in the running event loop.
    """

    def __init__(self, infer: InferFn, metadata: MetadataArg, check_key: CheckKeyFn | None,
                 config: OpenPIServerConfig, end_session: EndSessionFn | None,
                 open_session: OpenSessionFn | None, handoff: HandoffFn | None = None) -> None:
        self.config = config
        self.stats = OpenPIEndpointStats()
        self._infer = infer
        self._metadata = metadata
        self._check_key = check_key
        self._end_session = end_session
        self._open_session = open_session
        self._handoff = handoff
        self._principals: dict[int, Any] = {}  # id(connection) -> principal, between the two hooks
        self._admitted: dict[int, tuple[str, str]] = {}  # id(connection) -> (model id, session id)

    # ---- opening handshake ------------------------------------------------------------------

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/healthz":
            return conn.respond(HTTPStatus.OK, "OK\n")
        if url.path != "/":
            return conn.respond(HTTPStatus.NOT_FOUND, f"no endpoint at {url.path!r}; the openpi endpoint is '/'\n")
        principal: Any = True
        if self._check_key is not None:
            key = parse_api_key(request.headers.get("Authorization"))
            principal = await _maybe_await(self._check_key(key))
            if not principal:
                self.stats.auth_failures += 1
                why = "missing API key (send 'Authorization: Api-Key <key>')" if key is None else "invalid API key"
                log.warning("openpi auth refused peer=%s reason=%r", conn.remote_address, why)
                return conn.respond(HTTPStatus.UNAUTHORIZED, why + "\n")
        self._principals[id(conn)] = principal
        return None

    async def _process_response(self, conn: ServerConnection, request: Request, response: Response) -> Response | None:
        principal = self._principals.pop(id(conn), None)
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        model_id = self.config.model
        requested = parse_qs(urlsplit(request.path).query).get("model")
        if requested and requested[0] and self.config.allow_model_query:
            model_id = requested[0]
        session_id = str(uuid.uuid4())
        if self._open_session is not None:

            async def close(message: str, code: int) -> None:
                await self._fail(conn, message, code)

            refusal = await _maybe_await(self._open_session(principal, model_id, session_id, close))
            if refusal is not None:
                log.warning("openpi session refused peer=%s reason=%r", conn.remote_address, refusal)
                await self._ended(model_id, session_id)
                return conn.respond(HTTPStatus.TOO_MANY_REQUESTS, refusal + "\n")
        self._admitted[id(conn)] = (model_id, session_id)
        if self._handoff is not None:  # nothing of the client's is read here before the hand-off
            conn.transport.pause_reading()
        return None

    async def _ended(self, model_id: str, session_id: str) -> None:
        if self._end_session is not None:
            with contextlib.suppress(Exception):
                await _maybe_await(self._end_session(model_id, session_id))

    # ---- one connection ---------------------------------------------------------------------

    async def _handler(self, conn: ServerConnection) -> None:
        admitted = self._admitted.pop(id(conn), None)
        if admitted is None:  # not admitted (cannot happen after a 101), nothing to serve
            return
        model_id, session_id = admitted
        current_session.set(session_id)
        stats = self.stats
        stats.connections_total += 1
        stats.connections_open += 1
        log.info("openpi session open session=%s model=%s peer=%s", session_id, model_id, conn.remote_address)
        try:
            ended = None
            if self._handoff is not None:
                ended = await self._handoff(conn, model_id, session_id)
            if ended is not None:
                await ended
            else:
                conn.transport.resume_reading()  # paused at admission for a hand-off
                await self._serve(conn, model_id)
        finally:
            stats.connections_open -= 1
            log.info("openpi session closed session=%s", session_id)
            await self._ended(model_id, session_id)

    async def _serve(self, conn: ServerConnection, model_id: str) -> None:
        # numpy and the codec only where requests are answered here (a hand-over needs neither)
        from robot_formats.openpi_codec import packb
        from vla_server.openpi.requests import reply_frame

        try:
            meta = self._metadata(model_id) if callable(self._metadata) else self._metadata
            meta = await _maybe_await(meta)
            await conn.send(packb(dict(meta)))
        except ConnectionClosed:
            return
        except Exception as exc:  # noqa: BLE001 - reported to the client
            await self._fail(conn, f"metadata for model {model_id!r}: {type(exc).__name__}: {exc}")
            return
        prev_total_ms: float | None = None
        while True:
            try:
                data = await conn.recv()
            except ConnectionClosed:
                return
            t0 = time.monotonic()
            try:
                reply, infer_ms = await self._answer(data, model_id)
                frame = reply_frame(reply, model_id, infer_ms, prev_total_ms)
            except OpenPIRequestError as exc:
                await self._fail(conn, str(exc))
                return
            try:
                await conn.send(frame)
            except ConnectionClosed:
                return
            prev_total_ms = (time.monotonic() - t0) * 1000.0

    async def _answer(self, data: str | bytes, model_id: str) -> tuple[dict[str, Any], float]:
        """Decodes one request, runs the model; returns (reply, inference time in ms)."""
        from vla_server.openpi.requests import check_reply, decode_message

        cfg = self.config
        obs = decode_message(data, cfg.max_message_bytes)
        stats = self.stats
        stats.requests += 1
        stats.by_model[model_id] = stats.by_model.get(model_id, 0) + 1
        t = time.monotonic()
        try:
            async with asyncio.timeout(cfg.infer_timeout_s):
                raw = await self._infer(model_id, obs)
        except TimeoutError as exc:
            raise OpenPIRequestError(f"model {model_id!r} did not answer within {cfg.infer_timeout_s:g} s") from exc
        except OpenPIRequestError:
            raise
        except Exception as exc:
            raise OpenPIRequestError(f"model {model_id!r} failed: {type(exc).__name__}: {exc}") from exc
        infer_ms = (time.monotonic() - t) * 1000.0
        return check_reply(raw, model_id), infer_ms

    async def _fail(self, conn: ServerConnection, message: str, code: int = CLOSE_INTERNAL_ERROR) -> None:
        self.note_error(message)
        await send_error(conn, message, code)

    def note_error(self, message: str) -> None:
        """Counts an error sent to a client (here or by whoever serves a handed-over connection)."""
        self.stats.errors += 1
        self.stats.last_error = message
        log.warning("openpi error: %s", message)

    # ---- serving ----------------------------------------------------------------------------

    async def serve(self, sock: socket.socket, max_size: int | None = None) -> Server:
        """Starts serving on the listening `sock` in the running loop; returns the `websockets`
        server (``close()`` then ``await wait_closed()`` ends it, open connections with 1001).

        Args:
            max_size: transport limit of one message, bytes (default: the config's limit).
        """
        return await ws_serve(
            self._handler, sock=sock, process_request=self._process_request,
            process_response=self._process_response, compression=None,
            max_size=max_size or self.config.max_message_bytes, server_header=None,
        )


def create_openpi_app(
    infer: InferFn,
    metadata: MetadataArg,
    check_key: CheckKeyFn | None,
    config: OpenPIServerConfig | None = None,
    *,
    model: str | None = None,
    end_session: EndSessionFn | None = None,
    open_session: OpenSessionFn | None = None,
    handoff: HandoffFn | None = None,
) -> OpenPIApp:
    """Builds the openpi-protocol endpoint.

    Args:
        infer: ``await infer(model_id, obs)``, obs the decoded request map.
        metadata: the map sent on connect, or a function of the model id returning it.
        check_key: decides on the ``Api-Key`` (None when the header is missing). ``None`` here
            means no authentication, as openpi's own server (local use only).
        config: endpoint settings; or give just `model`.
        model: shorthand for ``OpenPIServerConfig(model=model)``.
        end_session: ``end_session(model_id, session_id)`` when a connection ends.
        open_session: admits an authenticated connection (see `OpenSessionFn`); it also gets the
            function that ends the connection from outside (revocation, shutdown).
        handoff: gives admitted connections to another server (a model's worker process), see `HandoffFn`.

    Returns:
        An `OpenPIApp`; ``.stats`` holds its `OpenPIEndpointStats`.
    """
    if config is None:
        if model is None:
            raise ValueError("create_openpi_app: give a config or a model id")
        config = OpenPIServerConfig(model=model)
    return OpenPIApp(infer, metadata, check_key, config, end_session, open_session, handoff)


def bind_loopback_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound, listening TCP socket (port 0: the OS picks a free one; no choose-then-bind race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


@contextlib.contextmanager
def serve_in_thread(
    app: OpenPIApp, host: str = "127.0.0.1", port: int = 0, ws_max_size: int = 32 * 1024 * 1024,
    start_timeout_s: float = 10.0,
) -> Iterator[int]:
    """Runs `app` in a background thread with its own event loop; yields the port; stops it on exit.

    For tests and for embedding; the service runs the endpoint in its own loop (`vla_server.serve`).
    """
    sock = bind_loopback_socket(host, port)
    bound_port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    errors: list[BaseException] = []

    async def main() -> None:
        server = await app.serve(sock, ws_max_size)
        started.set()
        await stop.wait()
        server.close()
        await server.wait_closed()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"openpi-{bound_port}", daemon=True)
    thread.start()
    if not started.wait(start_timeout_s) or errors:
        sock.close()
        raise RuntimeError(f"openpi endpoint did not start on {host}:{bound_port}: {errors[:1]}")
    try:
        yield bound_port
    finally:
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10.0)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"openpi endpoint on port {bound_port} did not stop within 10 s")
