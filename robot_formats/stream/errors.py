"""Typed errors of the `/v1/stream` protocol. Each becomes one `{"type":"error","message":..}`
reply; none ends the session (the endpoint decides about closing, see `constants.CLOSE_*`)."""

from __future__ import annotations


class ProtocolError(ValueError):
    """A client message that cannot be accepted; `str(err)` is the message sent to the client."""


class MessageTooLarge(ProtocolError):
    """The message is longer than the configured limit (bytes)."""


class InvalidJSON(ProtocolError):
    """The text frame is not a JSON object (or was a binary frame)."""


class UnknownMessageType(ProtocolError):
    """`type` is missing or not one of the client message types."""


class InvalidField(ProtocolError):
    """A field is missing, unknown, of the wrong type or out of range; the message names it."""


class BadImage(ProtocolError):
    """An image field that is not a base64 JPEG data URL that decodes within the limits."""


class OutOfOrder(ProtocolError):
    """A message that is valid but not allowed now (a frame before `auth`, a second `auth`)."""
