"""Wire codecs of the robot protocol: the `Codec` role, the default msgpack codec, `make_codec`.

* `MsgpackCodec` (default): maps keyed by the field names, arrays as lists of floats, checked
  against an explicit schema. Decoding can never execute code.
* `PickleCodec` (`frankateach.codec_pickle`): Franka-Teach's pickles, read through a restricted
  unpickler and written so their unmodified code reads them.

A codec covers the three channels: the REQ/REP control port, and the measured-state and
commanded-state PUB feeds (in pickle mode these carry Franka-Teach's topic prefixes).
"""

from __future__ import annotations

from typing import Any, Protocol

import msgpack

from frankateach.codec_pickle import PickleCodec
from frankateach.constants import GET_STATE
from frankateach.errors import ProtocolError, RobotServerError
from frankateach.records import FrankaAction, FrankaState, Request
from frankateach.validation import (
    action_fields,
    check_size,
    preview,
    state_fields,
    validate_action,
    validate_state,
)


class Codec(Protocol):
    """Turns protocol messages into bytes and back, validating everything it decodes."""

    name: str

    def encode(self, msg: FrankaAction | FrankaState) -> bytes: ...

    def encode_error(self, message: str, state: FrankaState | None = None) -> bytes:
        """An error reply; `state` (the current one, if any) lets peers that can only read a
        state survive it."""
        ...

    def decode_request(self, data: bytes) -> Request: ...

    def decode_reply(self, data: bytes) -> FrankaState:
        """Raises `RobotServerError` for an error reply, `ProtocolError` for anything malformed."""
        ...

    def encode_state_feed(self, state: FrankaState) -> bytes: ...

    def decode_state_feed(self, data: bytes) -> FrankaState: ...

    def encode_commanded_feed(self, state: FrankaState) -> bytes: ...

    def decode_commanded_feed(self, data: bytes) -> FrankaState: ...


class MsgpackCodec:
    """The default codec: msgpack maps keyed by field name, schema-checked on decode."""

    name = "msgpack"

    def encode(self, msg: FrankaAction | FrankaState) -> bytes:
        fields = action_fields(msg) if isinstance(msg, FrankaAction) else state_fields(msg)
        return msgpack.packb(fields, use_bin_type=True)

    def encode_error(self, message: str, state: FrankaState | None = None) -> bytes:
        return msgpack.packb({"error": str(message)}, use_bin_type=True)

    def _load(self, data: bytes, expected: str) -> Any:
        check_size(data)
        try:
            return msgpack.unpackb(bytes(data), raw=False, strict_map_key=True)
        except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types on garbage
            raise ProtocolError(
                f"not a msgpack message: expected {expected}, got {preview(data)} "
                f"({exc.__class__.__name__}: {exc})"
            ) from None

    def decode_request(self, data: bytes) -> Request:
        if bytes(data) == GET_STATE:
            return GET_STATE
        obj = self._load(data, "a FrankaAction map or b'get_state'")
        if not isinstance(obj, dict):
            raise ProtocolError(
                f"request: expected a FrankaAction map or b'get_state', got {type(obj).__name__}"
            )
        return validate_action(obj)

    def decode_reply(self, data: bytes) -> FrankaState:
        obj = self._load(data, "a FrankaState map or an error map")
        if isinstance(obj, dict) and set(obj) == {"error"}:
            raise RobotServerError(f"robot server replied with an error: {obj['error']}")
        if not isinstance(obj, dict):
            raise ProtocolError(f"reply: expected a FrankaState map, got {type(obj).__name__}")
        return validate_state(obj)

    def encode_state_feed(self, state: FrankaState) -> bytes:
        return self.encode(state)

    def decode_state_feed(self, data: bytes) -> FrankaState:
        obj = self._load(data, "a FrankaState map")
        if not isinstance(obj, dict):
            raise ProtocolError(f"state feed: expected a FrankaState map, got {type(obj).__name__}")
        return validate_state(obj)

    def encode_commanded_feed(self, state: FrankaState) -> bytes:
        return self.encode(state)

    def decode_commanded_feed(self, data: bytes) -> FrankaState:
        return self.decode_state_feed(data)


CODECS: dict[str, type] = {"msgpack": MsgpackCodec, "pickle": PickleCodec}


def make_codec(name: str) -> Codec:
    """Returns the codec called `name` ("msgpack" or "pickle")."""
    try:
        return CODECS[name]()
    except KeyError:
        raise ProtocolError(f"unknown codec {name!r}: expected one of {sorted(CODECS)}") from None
