"""Colour blobs (HSV + connected components) and the instruction's colour word."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.policy_sim import front_image
from vla_server.policies.camera_model import scene_geometry_from_sim
from vla_server.policies.vision import (
    COLOURS,
    colour_mask,
    find_blob,
    parse_colour,
    rgb_to_hsv,
)


@pytest.mark.parametrize(("text", "colour"), [
    ("pick up the red cube", "red"),
    ("Pick up the BLUE cube.", "blue"),
    ("green", "green"),
    ("put the blue cube on the red one", "blue"),
    ("pick up the reddish cube", None),
    ("pick up the cube", None),
    ("", None),
])
def test_parse_colour(text: str, colour: str | None) -> None:
    assert parse_colour(text) == colour


@given(st.text(max_size=80))
def test_parse_colour_never_fails(text: str) -> None:
    assert parse_colour(text) in (*COLOURS, None)


@given(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
def test_hsv_matches_colorsys(rgb: tuple[int, int, int]) -> None:
    h, s, v = rgb_to_hsv(np.array([[rgb]], dtype=np.uint8))
    eh, es, ev = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    assert float(s[0, 0]) == pytest.approx(es, abs=1e-5)
    assert float(v[0, 0]) == pytest.approx(ev, abs=1e-5)
    if es > 0:
        dh = abs(float(h[0, 0]) - eh)
        assert min(dh, 1 - dh) < 1e-4


def _reference_mask(img: np.ndarray, colour: str) -> np.ndarray:
    from vla_server.policies.vision import HUE_RANGES, MIN_SATURATION, MIN_VALUE

    h, s, v = rgb_to_hsv(img)
    in_hue = np.zeros(h.shape, bool)
    for lo, hi in HUE_RANGES[colour]:
        in_hue |= (h >= lo) & (h < hi)
    return in_hue & (s >= np.float32(MIN_SATURATION) - 1e-6) & (v >= np.float32(MIN_VALUE) - 1e-6)


@pytest.mark.parametrize("colour", COLOURS)
def test_fast_mask_equals_the_hsv_definition(colour: str) -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    image, _ = front_image()
    for im in (img, image):
        got, want = colour_mask(im, colour), _reference_mask(im, colour)
        # Pixels exactly on a threshold may differ by float rounding; nothing else may.
        assert np.count_nonzero(got != want) <= 0.001 * got.size
        assert got.sum() > 0


def test_largest_component_wins_and_table_colour_is_not_red() -> None:
    img = np.zeros((60, 80, 3), np.uint8)
    img[:] = (175, 134, 96)  # the table's brown
    img[5:10, 5:10] = (220, 30, 30)  # small red patch (25 px)
    img[30:42, 50:62] = (220, 30, 30)  # big red patch (144 px)
    blob = find_blob(img, "red")
    assert blob is not None and blob.area == 144
    assert blob.centroid == pytest.approx((55.5, 35.5))
    assert blob.bbox == (50, 30, 61, 41)
    assert find_blob(img, "green") is None
    assert find_blob(img, "red", min_area=200) is None
    assert not colour_mask(np.full((4, 4, 3), (175, 134, 96), np.uint8), "red").any()


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="colour"):
        colour_mask(np.zeros((4, 4, 3), np.uint8), "purple")
    with pytest.raises(ValueError, match="uint8"):
        colour_mask(np.zeros((4, 4, 3), np.float32), "red")


@pytest.mark.parametrize("size", [(320, 240), (160, 120), (640, 480)])
def test_rendered_cubes_are_located_on_the_table_within_5_mm(size: tuple[int, int]) -> None:
    w, h = size
    geo = scene_geometry_from_sim()
    rng = np.random.default_rng(5)
    for trial in range(3):
        moves = {} if trial == 0 else {
            "red_cube": tuple(np.array([0.50, 0.0]) + rng.uniform(-0.06, 0.06, 2)),
            "green_cube": tuple(np.array([0.42, -0.17]) + rng.uniform(-0.04, 0.04, 2)),
            "blue_cube": tuple(np.array([0.42, 0.17]) + rng.uniform(-0.04, 0.04, 2)),
        }
        image, cubes = front_image(moves, w, h)  # type: ignore[arg-type]
        for colour in COLOURS:
            blob = find_blob(image, colour)
            assert blob is not None, colour
            hit = geo.camera.backproject_to_plane(*blob.centroid, w, h, geo.table_z + geo.cube_half_size)
            assert hit is not None
            err = np.linalg.norm(hit[:2] - cubes[f"{colour}_cube"][:2])
            assert err < 0.005, f"{colour} at {size}: {err * 1000:.1f} mm off"
