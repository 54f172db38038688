"""Wires the registry to the openpi-compatible app (`vla_server.openpi.server`) served on the
second port: requests become `Observation`s through `robot_formats.openpi_request` (our native keys
or DROID's; joint states through the Panda's forward kinematics, `robot_formats.kinematics`), replies
carry our (H, 7) action chunk. Connections need an active API key
(``Authorization: Api-Key <key>``); they do not count against a key's `/v1/stream` session
limit. The metadata frame names the model and the action space.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from robot_formats.action_space import MAX_LIN_STEP_M, MAX_ROT_STEP_RAD
from robot_formats.kinematics import forward as forward_kinematics
from robot_formats.openpi_request import (
    IMAGE_KEYS,
    parse_request,
    reply_from_chunk,
)
from vla_server.auth.store import KeyStore
from vla_server.openpi.server import (
    OpenPIServerConfig,
    create_openpi_app,
    current_session,
)
from vla_server.policies.base import Observation
from vla_server.registry.registry import ModelRegistry

ACTION_SPACE = (
    f"vla_server 7-D: linear xyz and rotation xyz in [-1, 1] as fractions of {MAX_LIN_STEP_M} m / "
    f"{MAX_ROT_STEP_RAD} rad per step (robot base frame), then gripper -1 open .. +1 closed"
)


def create_openpi_endpoint(registry: ModelRegistry, keystore: KeyStore, model: str,
                           max_message_bytes: int, infer_timeout_s: float) -> FastAPI:
    """The openpi-protocol app serving `registry`'s models (`model` unless the client asks ``?model=``)."""
    steps: dict[str, int] = {}
    fk = forward_kinematics

    async def infer(model_id: str, request: dict[str, Any]) -> dict[str, Any]:
        session = current_session.get()
        step = steps.get(session, 0)
        steps[session] = step + 1
        req = parse_request(request, fk=fk)
        obs = Observation(image=req.image, instruction=req.instruction, robot_state=req.robot_state,
                          wrist_image=req.wrist_image, session=session, step=step)
        result = await registry.infer(model_id, obs)
        return reply_from_chunk(result.actions)

    def metadata(model_id: str) -> dict[str, Any]:
        spec = registry.spec(model_id)  # unknown: the endpoint sends the error text, closes 1011
        return {"model": spec.id, "backend": spec.backend, "action_space": ACTION_SPACE, "action_dim": 7,
                "image_keys": list(IMAGE_KEYS), "latency_ms": spec.latency_ms}

    def check_key(key: str | None) -> bool:
        return key is not None and keystore.verify(key) is not None

    async def end_session(model_id: str, session: str) -> None:
        steps.pop(session, None)
        if registry.has_model(model_id):
            await registry.end_session(model_id, session)

    cfg = OpenPIServerConfig(model=model, max_message_bytes=max_message_bytes, infer_timeout_s=infer_timeout_s)
    return create_openpi_app(infer, metadata, check_key, cfg, end_session=end_session)
