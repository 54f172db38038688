"""Camera frames on the wire: this project's msgpack frames and Franka-Teach's ``rgb_image`` format.

* msgpack (default): one self-describing map per ZMQ message (`encode_camera_frame`), so a SUB
  socket can conflate.
* Franka-Teach (``ZMQCameraPublisher.pub_rgb_image`` in NYU-robot-learning/Franka-Teach):
  ``b"rgb_image " + pickle(dict(timestamp=..., rgb_image=base64(JPEG bytes)))``. Their RealSense
  cameras stamp milliseconds, their fisheye cameras seconds (``time.time()``); stamps above
  `MS_TIMESTAMP_ABOVE` are taken as milliseconds. The same socket may carry ``intrinsics`` (and a
  depth socket ``depth_image``) messages, which are not images and are skipped.

`CameraDecoder` reads either format, per message, and numbers Franka-Teach frames itself (they
carry no sequence number, name or size; the size is read from the JPEG header, not decoded).
"""

from __future__ import annotations

import base64
import binascii
import io
import pickle
from typing import Any

import msgpack

from frankateach.codec_pickle import PICKLE_PROTOCOL, safe_loads
from frankateach.errors import ProtocolError
from frankateach.records import CameraFrame
from frankateach.validation import check_keys, number

MAX_CAMERA_FRAME_BYTES = 16 * 1024 * 1024
TOPIC_RGB_IMAGE = b"rgb_image "  # Franka-Teach's topic prefix of a colour frame
NON_IMAGE_TOPICS = (b"intrinsics ", b"depth_image ")  # Franka-Teach camera topics that carry no JPEG
MS_TIMESTAMP_ABOVE = 1e11  # a Franka-Teach stamp above this is in ms (1e11 s is the year 5138)
CAMERA_FORMATS = ("msgpack", "franka_teach")


def encode_camera_frame(frame: CameraFrame) -> bytes:
    """Encodes a camera frame as one msgpack map (JPEG kept as binary)."""
    return msgpack.packb(
        {
            "camera_id": int(frame.camera_id),
            "name": frame.name,
            "seq": int(frame.seq),
            "timestamp": float(frame.timestamp),
            "width": int(frame.width),
            "height": int(frame.height),
            "jpeg": bytes(frame.jpeg),
        },
        use_bin_type=True,
    )


def decode_camera_frame(data: bytes) -> CameraFrame:
    """Decodes and checks a msgpack camera frame; raises `ProtocolError` on anything unexpected."""
    if len(data) > MAX_CAMERA_FRAME_BYTES:
        raise ProtocolError(f"camera frame of {len(data)} bytes exceeds {MAX_CAMERA_FRAME_BYTES}")
    try:
        obj = msgpack.unpackb(bytes(data), raw=False)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types on garbage
        raise ProtocolError(f"camera frame: not msgpack: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"camera frame: expected a map, got {type(obj).__name__}")
    check_keys("CameraFrame", obj, {"camera_id", "name", "seq", "timestamp", "width", "height", "jpeg"})
    ints = {k: obj[k] for k in ("camera_id", "seq", "width", "height")}
    for k, v in ints.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ProtocolError(f"camera frame field '{k}': expected a non-negative int, got {v!r}")
    if not isinstance(obj["name"], str) or not isinstance(obj["jpeg"], bytes):
        raise ProtocolError("camera frame: 'name' must be str and 'jpeg' bytes")
    return CameraFrame(
        camera_id=obj["camera_id"],
        name=obj["name"],
        seq=obj["seq"],
        timestamp=number("timestamp", obj["timestamp"]),
        width=obj["width"],
        height=obj["height"],
        jpeg=obj["jpeg"],
    )


def encode_franka_teach_frame(jpeg: bytes, timestamp_s: float) -> bytes:
    """Encodes a JPEG as Franka-Teach's camera publisher does (stamp in seconds)."""
    payload = {"timestamp": float(timestamp_s), "rgb_image": base64.b64encode(bytes(jpeg))}
    return TOPIC_RGB_IMAGE + pickle.dumps(payload, protocol=PICKLE_PROTOCOL)


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's header (the image is not decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            if image.format != "JPEG":
                raise ProtocolError(f"camera frame: expected a JPEG image, got {image.format}")
            return int(image.width), int(image.height)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ProtocolError(f"camera frame: the image is not a readable JPEG ({exc})") from None


def decode_franka_teach_frame(data: bytes, camera_id: int, name: str, seq: int) -> CameraFrame:
    """Decodes one ``rgb_image`` message (see the module docstring) into a `CameraFrame`."""
    if len(data) > MAX_CAMERA_FRAME_BYTES:
        raise ProtocolError(f"camera frame of {len(data)} bytes exceeds {MAX_CAMERA_FRAME_BYTES}")
    if not data.startswith(TOPIC_RGB_IMAGE):
        raise ProtocolError(f"Franka-Teach camera frame: expected the topic {TOPIC_RGB_IMAGE!r}")
    obj: Any = safe_loads(data[len(TOPIC_RGB_IMAGE):])
    if not isinstance(obj, dict):
        raise ProtocolError(f"Franka-Teach camera frame: expected a dict, got {type(obj).__name__}")
    check_keys("Franka-Teach camera frame", obj, {"timestamp", "rgb_image"})
    stamp = number("timestamp", obj["timestamp"])
    if stamp > MS_TIMESTAMP_ABOVE:
        stamp /= 1e3
    if stamp < 0:
        raise ProtocolError(f"Franka-Teach camera frame: expected a timestamp >= 0, got {stamp}")
    encoded = obj["rgb_image"]
    if not isinstance(encoded, (bytes, str)):
        raise ProtocolError(f"Franka-Teach camera frame: 'rgb_image' must be base64, got {type(encoded).__name__}")
    try:
        jpeg = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"Franka-Teach camera frame: 'rgb_image' is not base64 ({exc})") from None
    width, height = jpeg_size(jpeg)
    return CameraFrame(camera_id, name, seq, stamp, width, height, jpeg)


class CameraDecoder:
    """Decodes the messages of one camera port, in either format (detected per message).

    Args:
        camera_id: the camera's index (its port is ``CAM_PORT_OFFSET + camera_id``).
        name: name given to Franka-Teach frames (msgpack frames carry their own).

    Attributes:
        franka_teach_frames: Franka-Teach frames decoded so far (they are numbered from 0).
        skipped: non-image messages (intrinsics, depth) seen and skipped.
    """

    def __init__(self, camera_id: int, name: str | None = None) -> None:
        self.camera_id = int(camera_id)
        self.name = name or f"cam_{camera_id}"
        self.franka_teach_frames = 0
        self.skipped = 0

    def decode(self, data: bytes) -> CameraFrame | None:
        """Returns the frame, or None for a message that is not an image; raises `ProtocolError`."""
        data = bytes(data)
        if data.startswith(TOPIC_RGB_IMAGE):
            frame = decode_franka_teach_frame(data, self.camera_id, self.name, self.franka_teach_frames)
            self.franka_teach_frames += 1
            return frame
        if data.startswith(NON_IMAGE_TOPICS):
            self.skipped += 1
            return None
        return decode_camera_frame(data)
