"""JPEG data URLs: round trip, strict base64, truncated JPEGs caught at full decode, fuzzing."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_formats.image import JPEG_PREFIX, decode_jpeg, encode_jpeg_data_url, parse_data_url, probe_jpeg
from robot_formats.stream.errors import BadImage


def test_round_trip_keeps_size_and_roughly_the_pixels() -> None:
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = (200, 30, 30)
    url = encode_jpeg_data_url(img, quality=95)
    data = parse_data_url(url, "image")
    assert probe_jpeg(data, "image") == (64, 48)
    out = decode_jpeg(data)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 4


def test_prefix_is_case_insensitive_and_grayscale_becomes_rgb() -> None:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.fromarray(np.full((10, 12), 128, np.uint8), "L").save(buf, format="JPEG")
    url = "DATA:IMAGE/JPEG;BASE64," + base64.b64encode(buf.getvalue()).decode()
    assert decode_jpeg(parse_data_url(url, "image")).shape == (10, 12, 3)


def test_truncated_jpeg_passes_the_header_probe_but_not_the_decode() -> None:
    url = encode_jpeg_data_url(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    data = parse_data_url(url, "image")
    cut = data[: len(data) // 2]
    assert probe_jpeg(cut, "image") == (160, 120)
    with pytest.raises(BadImage, match="does not decode"):
        decode_jpeg(cut, "frame.image")


def test_base64_with_whitespace_or_junk_is_refused() -> None:
    payload = base64.b64encode(b"\xff\xd8" + b"x" * 30).decode()
    with pytest.raises(BadImage, match="invalid base64"):
        parse_data_url(JPEG_PREFIX + payload[:8] + " \n" + payload[8:], "image")


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=400))
def test_arbitrary_bytes_never_escape_as_other_errors(blob: bytes) -> None:
    url = JPEG_PREFIX + base64.b64encode(b"\xff\xd8" + blob).decode()
    try:
        data = parse_data_url(url, "image")
        probe_jpeg(data, "image")
        decode_jpeg(data)
    except BadImage:
        pass


def test_resize_rgb_shrinks_bilinearly_and_keeps_a_same_size_image() -> None:
    from robot_formats.image import resize_rgb

    img = np.zeros((240, 320, 3), np.uint8)
    img[:, 160:] = 200  # right half bright
    small = resize_rgb(img, 80, 60)
    assert small.shape == (60, 80, 3) and small.dtype == np.uint8
    assert small[:, :39].max() == 0 and small[:, 41:].min() == 200  # the edge blends only where it lies
    assert resize_rgb(small, 80, 60) is small  # already that size: no copy, no resampling
