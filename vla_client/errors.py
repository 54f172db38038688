"""Typed errors of the VLA clients; one hierarchy for the `/v1/stream` and the openpi clients.

`SessionRejected` and its subclasses are final (the service said no; retrying will not help);
`ConnectionLost` is transient (the client reconnects in the background when allowed to);
`ServerError` is one ``{"type":"error"}`` reply (a bad frame, say) on a session that goes on.
"""

from __future__ import annotations

from robot_formats.stream import limits as L


class VLAClientError(Exception):
    """Base class of every error a VLA client raises."""


class SessionRejected(VLAClientError):
    """The service refused the session; `close_code` is the WebSocket close code (or HTTP status)."""

    def __init__(self, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


class AuthError(SessionRejected):
    """Missing, unknown or revoked API key (close 4001, HTTP 401/403), or auth timed out (4002)."""


class RateLimitError(SessionRejected):
    """The key's tier allows no further concurrent session (4003) or not this `target_fps` (4008)."""


class ModelNotFound(SessionRejected):
    """The service has no such model (4004)."""


class UnsupportedRobot(SessionRejected):
    """The service does not support this `robot_type` (4005)."""


class ConnectionLost(VLAClientError):
    """The link is down (or not yet up); the client may be reconnecting."""


class NotConnected(VLAClientError):
    """`connect` was not called, or `close` was."""


class ServerError(VLAClientError):
    """An ``error`` message from the service (the session stays usable) or an openpi error frame."""


class Timeout(VLAClientError, TimeoutError):
    """A wait ran past its timeout."""


class ProtocolViolation(VLAClientError):
    """The server sent something the protocol does not allow (bad JSON, unknown type, bad field)."""


_REJECTIONS: dict[int, type[SessionRejected]] = {
    L.CLOSE_BAD_KEY: AuthError,
    L.CLOSE_AUTH_TIMEOUT: AuthError,
    L.CLOSE_TOO_MANY_SESSIONS: RateLimitError,
    L.CLOSE_FPS_TOO_HIGH: RateLimitError,
    L.CLOSE_UNKNOWN_MODEL: ModelNotFound,
    L.CLOSE_UNSUPPORTED_ROBOT: UnsupportedRobot,
}


def rejection_for(close_code: int | None, message: str) -> SessionRejected | None:
    """The typed rejection a close code stands for, or None when the code is not a rejection."""
    cls = _REJECTIONS.get(close_code) if close_code is not None else None
    return cls(message, close_code) if cls is not None else None
