"""The `/v1/stream` wire protocol: message types, strict parsing, JPEG data URLs, typed errors."""

from vla_server.protocol.errors import (
    BadImage,
    InvalidField,
    InvalidJSON,
    MessageTooLarge,
    OutOfOrder,
    ProtocolError,
    UnknownMessageType,
)
from vla_server.protocol.image import decode_jpeg, encode_jpeg_data_url
from vla_server.protocol.messages import (
    ActionMessage,
    AuthMessage,
    ClientMessage,
    CloseRequest,
    ConnectedMessage,
    ErrorMessage,
    FrameMessage,
    ServerMessage,
    StatsMessage,
    StatsRequest,
    encode_server_message,
)
from vla_server.protocol.parse import (
    ParseLimits,
    parse_client_message,
    parse_robot_state,
)

__all__ = [
    "ActionMessage",
    "AuthMessage",
    "BadImage",
    "ClientMessage",
    "CloseRequest",
    "ConnectedMessage",
    "ErrorMessage",
    "FrameMessage",
    "InvalidField",
    "InvalidJSON",
    "MessageTooLarge",
    "OutOfOrder",
    "ParseLimits",
    "ProtocolError",
    "ServerMessage",
    "StatsMessage",
    "StatsRequest",
    "UnknownMessageType",
    "decode_jpeg",
    "encode_jpeg_data_url",
    "encode_server_message",
    "parse_client_message",
    "parse_robot_state",
]
