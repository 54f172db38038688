"""The FastAPI websocket route ``/v1/stream``: adapts Starlette's `WebSocket` to `Transport` and
runs a `StreamSession` on it. Services come from ``app.state`` (see `vla_server.app`).

The session module (numpy, image decoding, the safety score) is imported by the first session:
a service that only serves openpi connections by hand-over never loads it."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from robot_formats.stream.limits import STREAM_PATH

_MAX_REASON_BYTES = 123  # RFC 6455: the close reason fits in a control frame


class StarletteTransport:
    """`Transport` over a Starlette websocket."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._gone = False

    async def receive(self) -> str | bytes | None:
        if self._gone:
            return None
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            self._gone = True
            return None
        text = message.get("text")
        if text is not None:
            return text
        data = message.get("bytes")
        return data if data is not None else b""

    async def send_text(self, text: str) -> None:
        await self.ws.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED or self._gone:
            return
        encoded = reason.encode("utf-8")[:_MAX_REASON_BYTES].decode("utf-8", errors="ignore")
        await self.ws.close(code=code, reason=encoded)


def stream_router() -> APIRouter:
    """The router with the ``/v1/stream`` websocket."""
    router = APIRouter()

    @router.websocket(STREAM_PATH)
    async def stream(ws: WebSocket) -> None:
        from vla_server.stream.session import StreamSession

        state = ws.app.state
        await ws.accept()
        client = f"{ws.client.host}:{ws.client.port}" if ws.client else ""
        session = StreamSession(
            StarletteTransport(ws),
            registry=state.registry,
            keystore=state.keystore,
            sessions=state.sessions,
            config=state.stream_config,
            client=client,
        )
        await session.run()

    return router
