"""JPEG data URLs: ``data:image/jpeg;base64,<payload>`` → bytes → (H, W, 3) uint8 RGB.

Parsing is split so the cheap part runs on every frame and the expensive part only on frames that
reach the model: `parse_data_url` (strict base64) and `probe_jpeg` (header only: format and size)
on receipt; `decode_jpeg` (full decode) when the frame is taken for inference.

`resize_rgb` is the one resize that datasets are exported with and that policies resize their
observations with (bilinear, Pillow), so a model sees at inference what it was trained on.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings

import numpy as np
from PIL import Image

from robot_formats.stream.errors import BadImage
from robot_formats.stream.limits import MAX_IMAGE_SIDE_PX

JPEG_PREFIX = "data:image/jpeg;base64,"
_JPEG_SOI = b"\xff\xd8"


def parse_data_url(value: object, path: str) -> bytes:
    """Returns the JPEG bytes of a data URL, or raises `BadImage` naming `path`."""
    if not isinstance(value, str):
        raise BadImage(f"{path}: expected a string '{JPEG_PREFIX}...', got {type(value).__name__}")
    if value[: len(JPEG_PREFIX)].lower() != JPEG_PREFIX:
        head = value[:32] + ("..." if len(value) > 32 else "")
        raise BadImage(f"{path}: expected a data URL starting with '{JPEG_PREFIX}', got {head!r}")
    payload = value[len(JPEG_PREFIX) :]
    if not payload:
        raise BadImage(f"{path}: the data URL has an empty base64 payload")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadImage(f"{path}: invalid base64 payload ({exc})") from None
    if not data.startswith(_JPEG_SOI):
        raise BadImage(f"{path}: the payload is not a JPEG (no SOI marker ff d8; starts {data[:4].hex()})")
    return data


def probe_jpeg(data: bytes, path: str, max_side: int = MAX_IMAGE_SIDE_PX) -> tuple[int, int]:
    """Reads the JPEG header only; returns (width, height) px or raises `BadImage`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt, size = img.format, img.size
    except Exception as exc:  # noqa: BLE001 -- untrusted bytes: Pillow raises many types
        raise BadImage(f"{path}: not a readable JPEG ({type(exc).__name__}: {exc})") from None
    if fmt != "JPEG":
        raise BadImage(f"{path}: expected JPEG data, Pillow reads it as {fmt}")
    w, h = size
    if not (1 <= w <= max_side and 1 <= h <= max_side):
        raise BadImage(f"{path}: image is {w}x{h} px; each side must be 1..{max_side}")
    return w, h


def decode_jpeg(data: bytes, path: str = "image", max_side: int = MAX_IMAGE_SIDE_PX) -> np.ndarray:
    """Fully decodes a JPEG to (H, W, 3) uint8 RGB, or raises `BadImage` (truncated, corrupt)."""
    probe_jpeg(data, path, max_side)
    try:
        with Image.open(io.BytesIO(data)) as img:
            rgb = img.convert("RGB")
            arr = np.asarray(rgb, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 -- untrusted bytes: Pillow raises many types
        raise BadImage(f"{path}: JPEG does not decode ({type(exc).__name__}: {exc})") from None
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise BadImage(f"{path}: decoded to shape {arr.shape}, expected (H, W, 3)")
    return arr


def encode_jpeg_data_url(image: np.ndarray, quality: int = 85) -> str:
    """(H, W, 3) uint8 RGB → JPEG data URL (clients, tests, benchmarks)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB").save(buf, format="JPEG", quality=quality)
    return JPEG_PREFIX + base64.b64encode(buf.getvalue()).decode("ascii")


def resize_rgb(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (height, width, 3), bilinear (Pillow; antialiased when shrinking).
    The image itself when it already has that size."""
    img = np.asarray(image, dtype=np.uint8)
    if img.shape[:2] == (height, width):
        return img
    return np.asarray(Image.fromarray(img, "RGB").resize((width, height), Image.Resampling.BILINEAR))
