"""Wires the registry to the openpi-compatible app (`vla_server.openpi.server`) served on the
second port: requests become `Observation`s through `robot_formats.openpi_request` (our native
keys or DROID's; joint states through the Panda's forward kinematics, `robot_formats.kinematics`,
numpy only), replies carry our (H, 7) action chunk. The metadata frame names the model and the
action space.

Connections are tenants like `/v1/stream` sessions: they need an active API key
(``Authorization: Api-Key <key>``), count against the key's tier in the service's
`SessionManager` (a full tier answers the handshake with 429), are paced to the tier's rate
(``max_request_hz`` across the key's connections: a faster client is slowed, not refused), are
listed in ``GET /v1/sessions``, and end within a poll period when their key is revoked (error
text, then close 4001) or at shutdown (1001).

Once admitted, a connection is handed to the model's worker process (`handoff`,
`vla_server.workers.handover`): the worker answers its requests itself — one process per request,
as openpi's own server — with the same checks (`vla_server.openpi.requests`), the pixel budget
and the key's request rate (its share on that worker, when the key's connections are spread over
several workers or served here: rate × sessions there / the key's sessions). The service keeps
the session in its registry (tier, listing, revocation, shutdown tell the worker to close it).
A connection stays here, through the registry's `infer`, when the model cannot load or its worker
cannot serve connections (an interpreter without ``websockets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from robot_formats.action_limits import MAX_LIN_STEP_M, MAX_ROT_STEP_RAD
from robot_formats.openpi_keys import IMAGE_KEYS
from vla_server.auth.pacing import RequestPacer
from vla_server.auth.store import ApiKey, KeyStore
from vla_server.constants import MAX_FRAME_PIXELS
from vla_server.openpi.errors import OpenPIRequestError
from vla_server.openpi.server import (
    OpenPIApp,
    OpenPIServerConfig,
    SessionCloser,
    create_openpi_app,
    current_session,
)
from vla_server.registry.errors import InvalidInput
from vla_server.registry.registry import ModelRegistry
from vla_server.stream.manager import SessionManager
from vla_server.workers.errors import WorkerCrashed
from vla_server.workers.process import Adopted, WorkerProcess

__all__ = ["ACTION_SPACE", "OpenPISession", "create_openpi_endpoint"]

ADOPT_TIMEOUT_S = 5.0  # a worker that does not take a handed-over connection in this long: it is closed

ACTION_SPACE = (
    f"vla_server 7-D: linear xyz and rotation xyz in [-1, 1] as fractions of {MAX_LIN_STEP_M} m / "
    f"{MAX_ROT_STEP_RAD} rad per step (robot base frame), then gripper -1 open .. +1 closed"
)


class OpenPISession:
    """One openpi connection as the `SessionManager` sees it (a `TenantSession`): served here, or
    by `worker` once handed over (`adopted`)."""

    def __init__(self, session_id: str, key: ApiKey, model: str, close: SessionCloser, client: str = "") -> None:
        self.session_id = session_id
        self._key = key
        self._model = model
        self._close = close
        self.client = client
        self._requests = 0
        self._steps = 0
        self.connected_wall = time.time()
        self._started = time.monotonic()
        self._closing: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self.worker: WorkerProcess | None = None  # set while being handed over, and after
        self.adopted: Adopted | None = None
        self._pending_fail: tuple[str, int] | None = None  # asked during the hand-over

    @property
    def requests(self) -> int:
        return self.adopted.requests if self.adopted is not None else self._requests

    @property
    def steps(self) -> int:
        return self.adopted.steps if self.adopted is not None else self._steps

    def count_request(self) -> int:
        """Books a request served here; returns its step (the observation's index in the session)."""
        self._requests += 1
        return self._steps

    def count_step(self) -> None:
        self._steps += 1

    @property
    def key(self) -> ApiKey:
        return self._key

    @property
    def model(self) -> str:
        return self._model

    def error(self, message: str) -> None:
        """openpi has no out-of-band messages: the next request's reply tells the client."""

    def fail(self, message: str, code: int) -> None:
        """Sends `message` as the error text, then closes with `code` (once; by the worker when it
        serves the connection)."""
        if self.adopted is not None and self.worker is not None:
            self.worker.close_adopted(self.session_id, message, code)
        elif self.worker is not None:  # being handed over: decided when the worker answers
            self._pending_fail = self._pending_fail or (message, code)
        elif self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(message, code),
                                                                   name=f"openpi-close-{self.session_id[:8]}")

    def handed_over(self, adopted: Adopted | None) -> None:
        """The hand-over ended: `adopted` by the worker, or None (served here from now on)."""
        self.adopted = adopted
        if adopted is None:
            self.worker = None
        pending, self._pending_fail = self._pending_fail, None
        if pending is not None:
            self.fail(*pending)

    @property
    def closing(self) -> bool:
        return self._closing is not None or self._pending_fail is not None

    def ended(self) -> None:
        self._done.set()

    async def wait_closed(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._done.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    def snapshot(self) -> dict[str, Any]:
        runtime = time.monotonic() - self._started
        return {
            "session_id": self.session_id, "endpoint": "openpi", "model": self._model, "key_name": self._key.name,
            "tier": self._key.tier.name, "client": self.client, "connected_at": self.connected_wall,
            "runtime_seconds": round(runtime, 3), "total_frames": self.requests, "actions": self.steps,
            "actual_fps": round(self.requests / runtime, 3) if runtime > 0 else 0.0,
        }


def create_openpi_endpoint(registry: ModelRegistry, keystore: KeyStore, model: str,
                           max_message_bytes: int, infer_timeout_s: float, *,
                           sessions: SessionManager | None = None,
                           max_frame_pixels: int = MAX_FRAME_PIXELS, handover: bool = True,
                           ws_max_size: int | None = None) -> OpenPIApp:
    """The openpi-protocol app serving `registry`'s models (`model` unless the client asks ``?model=``).

    Args:
        sessions: the service's session manager (tier limits, listing, revocation, shutdown);
            a private one when None.
        max_frame_pixels: decoded-pixel budget per image.
        handover: hand admitted connections to the model's worker (False: every request through here).
        ws_max_size: the transport's message limit, bytes (default `max_message_bytes`).
    """
    ws_max_size = ws_max_size or max_message_bytes
    if handover:
        registry.hand_over_openpi = True
    manager = sessions if sessions is not None else SessionManager()
    live: dict[str, OpenPISession] = {}
    pacer = RequestPacer()
    local_rate: dict[str, float] = {}  # key id -> its rate on connections served here

    def rebalance(key: ApiKey) -> None:
        """Splits the key's request rate over where its connections are served (here, workers)."""
        rate = key.tier.max_request_hz
        if rate is None:
            return
        mine = [s for s in live.values() if s.key.key_id == key.key_id]
        local_rate.pop(key.key_id, None)
        places: dict[int, tuple[WorkerProcess | None, int]] = {}
        for s in mine:
            w, k = places.get(id(s.worker), (s.worker, 0))
            places[id(s.worker)] = (w, k + 1)
        for w, k in places.values():
            share = rate * k / len(mine)
            if w is None:
                local_rate[key.key_id] = share
            else:
                w.set_rate(key.key_id, share)

    async def infer(model_id: str, request: dict[str, Any]) -> dict[str, Any]:
        # numpy, the codec and the kinematics only for requests served here (a hand-over needs none)
        from robot_formats.kinematics import forward as fk
        from robot_formats.openpi_request import reply_from_chunk
        from vla_server.openpi.requests import observation_from_request

        session = live[current_session.get()]
        rate = session.key.tier.max_request_hz
        if rate is not None:
            wait = pacer.delay(session.key.key_id, local_rate.get(session.key.key_id, rate))
            if wait > 0:
                await asyncio.sleep(wait)
        step = session.count_request()
        obs = observation_from_request(request, fk=fk, max_pixels=max_frame_pixels, session=session.session_id,
                                       step=step)
        session.count_step()
        try:
            result = await registry.infer(model_id, obs, tenant=session.key.key_id)
        except InvalidInput as exc:
            raise OpenPIRequestError(f"bad observation: {exc}") from None
        return reply_from_chunk(result.actions)

    def metadata(model_id: str) -> dict[str, Any]:
        spec = registry.spec(model_id)  # unknown: the endpoint sends the error text, closes 1011
        return {"model": spec.id, "backend": spec.backend, "action_space": ACTION_SPACE, "action_dim": 7,
                "image_keys": list(IMAGE_KEYS), "latency_ms": spec.latency_ms}

    def check_key(key: str | None) -> ApiKey | None:
        return keystore.verify(key) if key is not None else None

    def open_session(key: ApiKey, model_id: str, session_id: str, close: SessionCloser) -> str | None:
        session = OpenPISession(session_id, key, model_id, close)
        refusal = manager.try_register(session)
        if refusal is not None:
            return refusal
        live[session_id] = session
        if registry.has_model(model_id):
            registry.acquire_session(model_id)
        return None

    async def end_session(model_id: str, session_id: str) -> None:
        session = live.pop(session_id, None)
        if session is None:
            return
        manager.unregister(session)
        if manager.open_for(session.key.key_id) == 0:
            pacer.forget(session.key.key_id)
        rebalance(session.key)
        session.ended()
        if registry.has_model(model_id):
            registry.release_session(model_id)
            await registry.end_session(model_id, session_id)

    async def handoff(conn: ServerConnection, model_id: str, session_id: str) -> Awaitable[Any] | None:
        session = live.get(session_id)
        if session is None:
            return None
        ended = await try_handoff(conn, model_id, session)
        if ended is None:  # served here: its share of the key's rate is here
            rebalance(session.key)
        return ended

    async def try_handoff(conn: ServerConnection, model_id: str, session: OpenPISession) -> Awaitable[Any] | None:
        if session.closing:
            return None
        session_id = session.session_id
        try:
            worker = await registry.worker_for(model_id)
            meta = metadata(model_id)
        except Exception:  # noqa: BLE001 -- served here: the first request reports why
            return None
        sock = detachable_socket(conn)
        if not worker.hosts_openpi or sock is None or session.closing:
            return None
        session.worker = worker
        key = session.key
        rate = key.tier.max_request_hz
        if rate is not None:
            mine = [s for s in live.values() if s.key.key_id == key.key_id]
            rate = rate * sum(s.worker is worker for s in mine) / len(mine)
        params = {"session": session_id, "tenant": key.key_id, "model": model_id, "metadata": meta,
                  "rate_hz": rate, "max_message_bytes": cfg.max_message_bytes, "ws_max_size": ws_max_size,
                  "max_pixels": max_frame_pixels, "infer_timeout_s": cfg.infer_timeout_s}
        try:
            adopted = await worker.adopt(sock, params, ADOPT_TIMEOUT_S)
        except WorkerCrashed as exc:
            app.note_error(str(exc))
            conn.transport.abort()
            session.handed_over(None)
            return conn.wait_closed()
        if adopted is None:
            session.handed_over(None)
            return None
        conn.transport.abort()  # ours is closed; the worker's copy (and the kept one) serve on
        session.handed_over(adopted)
        rebalance(key)
        return ended(adopted)

    async def ended(adopted: Adopted) -> None:
        error = await adopted.done
        if error:
            app.note_error(error)

    cfg = OpenPIServerConfig(model=model, max_message_bytes=max_message_bytes, infer_timeout_s=infer_timeout_s)
    app = create_openpi_app(infer, metadata, check_key, cfg, end_session=end_session, open_session=open_session,
                            handoff=handoff if handover else None)
    return app


def detachable_socket(conn: ServerConnection) -> Any:
    """The connection's socket when nothing of it is buffered on our side (the handshake sent,
    no frame of the client's read), so another process can serve it from its first byte; else None."""
    transport = conn.transport
    frames = getattr(getattr(conn, "recv_messages", None), "frames", None)
    reader = getattr(conn.protocol, "reader", None)
    if (conn.protocol.state is not State.OPEN or transport.is_closing() or transport.get_write_buffer_size()
            or frames is None or len(frames) or reader is None or len(reader.buffer)):
        return None
    with contextlib.suppress(AttributeError):
        return transport.get_extra_info("socket")
    return None
