"""How an openpi connection is told about an error: the text goes to the client as one text
frame, then a close (`send_error`; `error_frames` for a connection no `websockets` object serves
any more). The client adds "Error in inference server:" itself, so texts carry no prefix.

No numpy here: the service imports this to close connections it handed over, and needs numpy
only for requests it decodes itself (`vla_server.openpi.requests`).
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from websockets.frames import Close, Frame, Opcode

CLOSE_INTERNAL_ERROR = 1011  # openpi's server closes with this after the error text frame
MAX_REASON_BYTES = 123  # RFC 6455: a close reason fits in a control frame


class OpenPIRequestError(Exception):
    """A request the endpoint answers with an error frame (bad observation, bad reply)."""


class ClosableConnection(Protocol):
    """What `send_error` needs of a `websockets` asyncio connection."""

    async def send(self, message: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


def close_reason(message: str, code: int) -> str:
    """The close frame's reason after the error text `message` (it fits a control frame)."""
    reason = "Internal server error; message in previous frame" if code == CLOSE_INTERNAL_ERROR else message
    return reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


async def send_error(conn: ClosableConnection, message: str, code: int = CLOSE_INTERNAL_ERROR) -> None:
    """`message` as a text frame, then close with `code` (errors of an already closed connection ignored)."""
    with contextlib.suppress(Exception):
        await conn.send(message)
        await conn.close(code=code, reason=close_reason(message, code))


def error_frames(message: str, code: int = CLOSE_INTERNAL_ERROR) -> bytes:
    """What `send_error` sends, as the raw server-side frames (for a connection no `websockets`
    object serves any more: its worker died)."""
    text = Frame(Opcode.TEXT, message.encode())
    close = Frame(Opcode.CLOSE, Close(code, close_reason(message, code)).serialize())
    return text.serialize(mask=False) + close.serialize(mask=False)
