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
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from robot_formats.action_space import MAX_LIN_STEP_M, MAX_ROT_STEP_RAD
from robot_formats.kinematics import forward as forward_kinematics
from robot_formats.openpi_request import (
    IMAGE_KEYS,
    OpenPIObservationError,
    parse_request,
    reply_from_chunk,
)
from vla_server.auth.pacing import RequestPacer
from vla_server.auth.store import ApiKey, KeyStore
from vla_server.constants import MAX_FRAME_PIXELS
from vla_server.openpi.server import (
    OpenPIApp,
    OpenPIRequestError,
    OpenPIServerConfig,
    SessionCloser,
    create_openpi_app,
    current_session,
)
from vla_server.policies.base import Observation
from vla_server.registry.errors import InvalidInput
from vla_server.registry.registry import ModelRegistry
from vla_server.stream.manager import SessionManager

ACTION_SPACE = (
    f"vla_server 7-D: linear xyz and rotation xyz in [-1, 1] as fractions of {MAX_LIN_STEP_M} m / "
    f"{MAX_ROT_STEP_RAD} rad per step (robot base frame), then gripper -1 open .. +1 closed"
)


def check_pixel_budget(obs: Observation, max_pixels: int) -> None:
    """Raises `OpenPIObservationError` when an image of `obs` holds more than `max_pixels` (w × h)."""
    for name, img in (("image", obs.image), ("wrist image", obs.wrist_image)):
        if img is not None and img.shape[0] * img.shape[1] > max_pixels:
            h, w = img.shape[:2]
            raise OpenPIObservationError(
                f"{name} is {w}x{h} = {w * h} px; this service takes at most {max_pixels} px per image "
                "(stream.max_frame_pixels)"
            )


class OpenPISession:
    """One openpi connection as the `SessionManager` sees it (a `TenantSession`)."""

    def __init__(self, session_id: str, key: ApiKey, model: str, close: SessionCloser, client: str = "") -> None:
        self.session_id = session_id
        self._key = key
        self._model = model
        self._close = close
        self.client = client
        self.requests = 0
        self.steps = 0
        self.connected_wall = time.time()
        self._started = time.monotonic()
        self._closing: asyncio.Task[None] | None = None
        self._done = asyncio.Event()

    @property
    def key(self) -> ApiKey:
        return self._key

    @property
    def model(self) -> str:
        return self._model

    def error(self, message: str) -> None:
        """openpi has no out-of-band messages: the next request's reply tells the client."""

    def fail(self, message: str, code: int) -> None:
        """Sends `message` as the error text, then closes with `code` (once)."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(message, code),
                                                                   name=f"openpi-close-{self.session_id[:8]}")

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
                           max_frame_pixels: int = MAX_FRAME_PIXELS) -> OpenPIApp:
    """The openpi-protocol app serving `registry`'s models (`model` unless the client asks ``?model=``).

    Args:
        sessions: the service's session manager (tier limits, listing, revocation, shutdown);
            a private one when None.
        max_frame_pixels: decoded-pixel budget per image.
    """
    manager = sessions if sessions is not None else SessionManager()
    live: dict[str, OpenPISession] = {}
    pacer = RequestPacer()
    fk = forward_kinematics

    async def infer(model_id: str, request: dict[str, Any]) -> dict[str, Any]:
        session = live[current_session.get()]
        rate = session.key.tier.max_request_hz
        if rate is not None:
            wait = pacer.delay(session.key.key_id, rate)
            if wait > 0:
                await asyncio.sleep(wait)
        session.requests += 1
        step = session.steps
        try:
            req = parse_request(request, fk=fk)
            obs = Observation(image=req.image, instruction=req.instruction, robot_state=req.robot_state,
                              wrist_image=req.wrist_image, session=session.session_id, step=step)
            check_pixel_budget(obs, max_frame_pixels)
        except OpenPIObservationError as exc:
            raise OpenPIRequestError(f"bad observation: {exc}") from None
        session.steps += 1
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
        session.ended()
        if registry.has_model(model_id):
            registry.release_session(model_id)
            await registry.end_session(model_id, session_id)

    cfg = OpenPIServerConfig(model=model, max_message_bytes=max_message_bytes, infer_timeout_s=infer_timeout_s)
    return create_openpi_app(infer, metadata, check_key, cfg, end_session=end_session, open_session=open_session)
