"""MP4 (H.264 through PyAV) of an episode: constant frame rate, frames at their sim times.

Files are written with ``movflags=+faststart`` (index first), so a browser plays them while they
download. H.264 is required (browsers do not play MPEG-4 Part 2); PyAV's wheels include libx264.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from vla_server.arena.config import THUMB_WIDTH, VIDEO_CRF, VIDEO_FPS

CODEC = "libx264"


class VideoError(RuntimeError):
    """The video cannot be encoded (no H.264 encoder, bad frame)."""


class VideoEncoder:
    """Encodes (H, W, 3) uint8 RGB frames into an MP4 file, frame i at i / fps seconds.

    Args:
        path: output file (overwritten).
        width, height: frame size, pixels (even).
        fps: playback rate.
    """

    def __init__(self, path: Path | str, width: int, height: int, fps: int = VIDEO_FPS) -> None:
        if CODEC not in av.codecs_available:
            raise VideoError("this PyAV build has no H.264 encoder (libx264); install the PyAV wheel from PyPI")
        if width % 2 or height % 2:
            raise VideoError(f"H.264 (yuv420p) needs even sizes, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self._c = av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"})
        self._s: av.VideoStream = self._c.add_stream(CODEC, rate=Fraction(int(fps), 1))  # type: ignore[assignment]
        self._s.width, self._s.height, self._s.pix_fmt = self.width, self.height, "yuv420p"
        self._s.options = {"crf": str(VIDEO_CRF), "preset": "veryfast", "threads": "1", "g": str(int(fps))}
        self.frames = 0
        self._closed = False

    def write(self, rgb: np.ndarray) -> None:
        """Appends one frame."""
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise VideoError(f"frame: expected ({self.height}, {self.width}, 3) uint8, got {rgb.shape} {rgb.dtype}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        for packet in self._s.encode(frame):
            self._c.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flushes the encoder and finishes the file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for packet in self._s.encode():
            self._c.mux(packet)
        self._c.close()


def thumbnail_jpeg(rgb: np.ndarray, width: int = THUMB_WIDTH, quality: int = 80) -> bytes:
    """A small JPEG of a frame (for episode lists)."""
    img = Image.fromarray(rgb)
    h = max(1, round(img.height * width / img.width))
    buf = io.BytesIO()
    img.resize((width, h), Image.Resampling.BILINEAR).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Encodes an RGB frame as JPEG."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()
