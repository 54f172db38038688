"""Encoding camera frames into MP4 with PyAV (H.264 when the build has it, MPEG-4 Part 2 otherwise)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from PIL import Image

from robot_formats.recording.errors import RecordingError

Progress = Callable[[int, int], None]


def pick_codec() -> str:
    """Returns "libx264" if this PyAV build can encode H.264, else "mpeg4"."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def codec_label(codec: str) -> str:
    """The codec's common name, as LeRobot's info.json writes it ("h264", "mpeg4")."""
    return "h264" if codec == "libx264" else codec


def decode_jpeg(data: bytes) -> np.ndarray:
    """Returns an (H, W, 3) uint8 RGB image.

    Raises:
        RecordingError: the bytes are not a decodable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:  # Pillow raises several types on damaged data
        raise RecordingError(f"cannot decode a camera frame as JPEG: {exc}") from None


class Mp4Writer:
    """Writes RGB frames to an MP4 file.

    Args:
        path: output file.
        width, height: frame size (odd sizes are cropped by one pixel: yuv420p needs even sizes).
        fps: nominal rate; with `time_base_s` frames may carry their own times (VFR).
        codec: "libx264" or "mpeg4" (default: `pick_codec()`).
        time_base_s: if given, `write(frame, t)` uses `t` (s from the first frame) as the frame's
            time, rounded to this resolution; else frame i is at i / fps.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: float,
        codec: str | None = None,
        time_base_s: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.codec = codec or pick_codec()
        self.width, self.height = int(width) - int(width) % 2, int(height) - int(height) % 2
        if self.width <= 0 or self.height <= 0:
            raise RecordingError(f"cannot encode {width}×{height} video")
        self._c = av.open(str(self.path), "w")
        rate = Fraction(fps).limit_denominator(1000)
        self._s = cast(av.VideoStream, self._c.add_stream(self.codec, rate=rate))
        self._s.width, self._s.height, self._s.pix_fmt = self.width, self.height, "yuv420p"
        self._tb = Fraction(1, 1000) if time_base_s is None else Fraction(time_base_s).limit_denominator(1_000_000)
        if time_base_s is None:
            self._tb = 1 / rate
        self._s.codec_context.time_base = self._tb
        self._s.time_base = self._tb
        if self.codec == "libx264":
            self._s.options = {"preset": "veryfast", "crf": "23", "g": str(max(2, int(round(fps))))}
        else:
            self._s.bit_rate = 4_000_000
        self._vfr = time_base_s is not None
        self._last_pts = -1
        self.frames = 0

    def write(self, rgb: np.ndarray, t_s: float | None = None) -> None:
        """Encodes one (H, W, 3) uint8 frame, at time `t_s` (VFR) or the next slot (CFR)."""
        img = rgb[: self.height, : self.width]
        if img.shape[:2] != (self.height, self.width):
            img = np.asarray(Image.fromarray(rgb).resize((self.width, self.height)))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        pts = self.frames if not self._vfr or t_s is None else int(round(t_s / float(self._tb)))
        pts = max(pts, self._last_pts + 1)  # strictly increasing, as muxers require
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = self._tb
        for packet in self._s.encode(frame):
            self._c.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self._s.encode():
            self._c.mux(packet)
        self._c.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jpegs(
    path: Path,
    jpegs: Iterable[bytes],
    times_s: Iterable[float],
    width: int,
    height: int,
    fps: float,
    progress: Progress | None = None,
    total: int = 0,
) -> tuple[str, int]:
    """Encodes JPEG frames at their own times (s from the first frame) into a VFR MP4.

    Returns:
        (codec used, frames written).
    """
    with Mp4Writer(path, width, height, fps, time_base_s=1e-3) as w:
        for i, (jpeg, t) in enumerate(zip(jpegs, times_s)):
            w.write(decode_jpeg(jpeg), t)
            if progress is not None and i % 10 == 0:
                progress(i, total)
    return w.codec, w.frames
