"""Colour blobs in an RGB image: HSV thresholds and connected components (numpy + scipy.ndimage).

The colours are those of the simulator's cubes (saturated red, green, blue on a brown table, a
grey arm and floor); the thresholds leave the table (hue ≈ 0.08, saturation ≈ 0.45) and the
unsaturated arm out. Hue is in [0, 1) (0 = red), saturation and value in [0, 1].
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# colour -> hue intervals [lo, hi) (a red interval wraps around 0)
HUE_RANGES: dict[str, tuple[tuple[float, float], ...]] = {
    "red": ((0.0, 0.04), (0.94, 1.0)),
    "green": ((0.22, 0.45),),
    "blue": ((0.55, 0.72),),
}
MIN_SATURATION = 0.55
MIN_VALUE = 0.15
COLOURS = tuple(HUE_RANGES)
_COLOUR_RE = re.compile(r"\b(" + "|".join(COLOURS) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class Blob:
    """One connected region of a colour.

    Attributes:
        centroid: (u, v) mean pixel column and row (pixel centres at +0.5 are not added).
        area: pixels.
        bbox: (u_min, v_min, u_max, v_max), inclusive.
    """

    centroid: tuple[float, float]
    area: int
    bbox: tuple[int, int, int, int]


def parse_colour(instruction: str) -> str | None:
    """The first colour word of `COLOURS` in `instruction` ("pick up the red cube" → "red")."""
    m = _COLOUR_RE.search(instruction or "")
    return m.group(1).lower() if m else None


def rgb_to_hsv(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue, saturation, value planes (H, W) in [0, 1] of an (H, W, 3) uint8 RGB image."""
    rgb = np.asarray(image, dtype=np.float32) / 255.0
    mx = rgb.max(axis=2)
    mn = rgb.min(axis=2)
    delta = mx - mn
    sat = np.where(mx > 0, delta / np.maximum(mx, 1e-12), 0.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.maximum(delta, 1e-12)
    hue = np.where(
        mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    )
    hue = np.where(delta > 0, hue / 6.0, 0.0)
    return hue.astype(np.float32), sat.astype(np.float32), mx


def colour_mask(image: np.ndarray, colour: str) -> np.ndarray:
    """(H, W) bool mask of the pixels of `colour` (one of `COLOURS`).

    Raises:
        ValueError: unknown colour, or an image that is not (H, W, 3) uint8.
    """
    if colour not in HUE_RANGES:
        raise ValueError(f"colour: expected one of {COLOURS}, got {colour!r}")
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    # Saturation and value first, in integers (cheap), then hue only for the few saturated pixels.
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    mx = np.maximum(np.maximum(r, g), b).astype(np.int32)
    delta = mx - np.minimum(np.minimum(r, g), b)
    # s = delta / mx >= MIN_SATURATION and v = mx / 255 >= MIN_VALUE, exactly, in integers
    candidate = (delta * 1000 >= round(MIN_SATURATION * 1000) * mx) & (mx * 1000 >= round(MIN_VALUE * 1000) * 255)
    mask = np.zeros(mx.shape, dtype=bool)
    rows, cols = np.nonzero(candidate)
    if rows.size:
        hue, _, _ = rgb_to_hsv(img[rows, cols][None])
        in_hue = np.zeros(rows.size, dtype=bool)
        for lo, hi in HUE_RANGES[colour]:
            in_hue |= (hue[0] >= lo) & (hue[0] < hi)
        mask[rows[in_hue], cols[in_hue]] = True
    return mask


def find_blob(image: np.ndarray, colour: str, min_area: int = 6) -> Blob | None:
    """The largest connected region (8-connectivity) of `colour`, or None below `min_area` px."""
    mask = colour_mask(image, colour)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return None
    areas = np.bincount(labels.ravel())[1:]
    best = int(np.argmax(areas)) + 1  # lowest label wins ties: deterministic
    area = int(areas[best - 1])
    if area < min_area:
        return None
    vs, us = np.nonzero(labels == best)
    return Blob(
        centroid=(float(us.mean()), float(vs.mean())),
        area=area,
        bbox=(int(us.min()), int(vs.min()), int(us.max()), int(vs.max())),
    )
