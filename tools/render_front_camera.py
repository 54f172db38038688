"""Renders the simulator's cameras at the home pose to PNG files (the README's frame).

Usage::

    MUJOCO_GL=egl .venv/bin/python tools/render_front_camera.py [--out docs/images/front_camera.png]
        [--camera front] [--width 320] [--height 240]

Prints where each cube appears in the image (centre pixel and width in pixels), measured from the
rendered colours, so a change of framing can be checked at a glance.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # after MUJOCO_GL is set
from PIL import Image

from frankateach.constants import SIM_CAMERA_HEIGHT, SIM_CAMERA_WIDTH
from frankateach.sim.model import CUBES, build_model, reset_to_home


def render(camera: str, width: int, height: int) -> np.ndarray:
    """Returns the (height, width, 3) uint8 RGB image of `camera` at the home pose."""
    model = build_model(width=width, height=height)
    data = mujoco.MjData(model)
    reset_to_home(model, data)
    with mujoco.Renderer(model, height, width) as renderer:
        renderer.update_scene(data, camera=camera)
        return renderer.render().copy()


def colour_blobs(image: np.ndarray) -> dict[str, tuple[float, float, int]]:
    """Per cube: (centre column, centre row, width) in pixels of the pixels closest to its colour."""
    rgb = image.astype(float) / 255.0
    out: dict[str, tuple[float, float, int]] = {}
    for name, (_, rgba) in CUBES.items():
        target = np.asarray(rgba[:3])
        dominant = int(np.argmax(target))
        others = [i for i in range(3) if i != dominant]
        mask = (rgb[..., dominant] > 0.3) & (rgb[..., dominant] > 1.6 * rgb[..., others].max(axis=-1))
        rows, cols = np.nonzero(mask)
        if cols.size:
            out[name] = (float(cols.mean()), float(rows.mean()), int(cols.max() - cols.min() + 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/front_camera.png"))
    parser.add_argument("--camera", default="front")
    parser.add_argument("--width", type=int, default=SIM_CAMERA_WIDTH)
    parser.add_argument("--height", type=int, default=SIM_CAMERA_HEIGHT)
    args = parser.parse_args()
    image = render(args.camera, args.width, args.height)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.width}x{args.height}, camera {args.camera!r})")
    for name, (u, v, w) in colour_blobs(image).items():
        print(f"  {name:<11} centre ({u:5.1f}, {v:5.1f}) px, {w} px wide")


if __name__ == "__main__":
    main()
