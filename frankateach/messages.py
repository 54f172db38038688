"""The robot protocol in one import (a facade over the modules that define it).

* `frankateach.records` — `FrankaAction`, `FrankaState`, `CameraFrame` (the records);
* `frankateach.validation` — field checks shared by every codec;
* `frankateach.codec` — the `Codec` role, `MsgpackCodec`, `make_codec`;
* `frankateach.codec_pickle` — Franka-Teach's pickles (`PickleCodec`, restricted unpickling);
* `frankateach.camera_format` — camera frames, msgpack and Franka-Teach's ``rgb_image``.

This module also names the records on the wire: Franka-Teach pickles them as
``frankateach.messages.FrankaAction`` / ``FrankaState``, and those names resolve here.
"""

from __future__ import annotations

from frankateach.camera_format import (
    MAX_CAMERA_FRAME_BYTES,
    CameraDecoder,
    decode_camera_frame,
    decode_franka_teach_frame,
    encode_camera_frame,
    encode_franka_teach_frame,
)
from frankateach.codec import CODECS, Codec, MsgpackCodec, make_codec
from frankateach.codec_pickle import (
    FRANKA_TEACH_STATE_ERROR,
    TOPIC_COMMANDED_STATE,
    TOPIC_ROBOT_STATE,
    PickleCodec,
    RestrictedUnpickler,
)
from frankateach.records import (
    CameraFrame,
    FrankaAction,
    FrankaState,
    Request,
    missing_joints,
)
from frankateach.validation import QUAT_NORM_TOLERANCE, validate_action, validate_state

__all__ = [
    "CODECS",
    "FRANKA_TEACH_STATE_ERROR",
    "MAX_CAMERA_FRAME_BYTES",
    "QUAT_NORM_TOLERANCE",
    "TOPIC_COMMANDED_STATE",
    "TOPIC_ROBOT_STATE",
    "CameraDecoder",
    "CameraFrame",
    "Codec",
    "FrankaAction",
    "FrankaState",
    "MsgpackCodec",
    "PickleCodec",
    "Request",
    "RestrictedUnpickler",
    "decode_camera_frame",
    "decode_franka_teach_frame",
    "encode_camera_frame",
    "encode_franka_teach_frame",
    "make_codec",
    "missing_joints",
    "validate_action",
    "validate_state",
]
