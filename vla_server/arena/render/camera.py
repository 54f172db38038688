"""Camera images of a state, rendered from a separate model and `MjData` that physics never sees.

The render model is the simulator's scene built with cameras (``build_model(cameras=True)``) at
the wanted size; only ``qpos`` is copied into its own `MjData`, followed by the kinematics and
camera/light passes, so rendering cannot change the simulation. OpenGL contexts belong to the
thread that made them, so renderers are cached per thread and per image size.
"""

from __future__ import annotations

import threading

import mujoco
import numpy as np

from frankateach.sim.model import build_model

_local = threading.local()


class RenderError(RuntimeError):
    """Offscreen rendering failed (no GL backend, unknown camera)."""


class CameraRenderer:
    """Renders the scene's cameras at one image size.

    Args:
        width, height: image size, pixels.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = int(width), int(height)
        try:
            self.model = build_model(cameras=True, width=self.width, height=self.height)
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
        except Exception as exc:  # GL errors come as several types
            raise RenderError(
                f"cannot render {self.width}x{self.height} offscreen: {exc} "
                "(set MUJOCO_GL=egl or osmesa; install libegl1 or libosmesa6)"
            ) from exc
        self._data = mujoco.MjData(self.model)
        self._cams = {mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_CAMERA, i): i for i in range(self.model.ncam)}

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self._cams)

    def render(self, qpos: np.ndarray, camera: str) -> np.ndarray:
        """Returns an (H, W, 3) uint8 RGB image of configuration `qpos` seen from `camera`."""
        cam = self._cams.get(camera)
        if cam is None:
            raise RenderError(f"unknown camera {camera!r}; expected one of {self.cameras}")
        d = self._data
        if qpos.shape != d.qpos.shape:
            raise RenderError(f"qpos: expected shape {d.qpos.shape}, got {qpos.shape}")
        d.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_comPos(self.model, d)
        mujoco.mj_camlight(self.model, d)
        self._renderer.update_scene(d, camera=cam)
        return self._renderer.render().copy()

    def close(self) -> None:
        self._renderer.close()


def renderer_for(width: int, height: int) -> CameraRenderer:
    """The calling thread's renderer for this size (made on first use, then reused)."""
    cache: dict[tuple[int, int], CameraRenderer] | None = getattr(_local, "renderers", None)
    if cache is None:
        cache = _local.renderers = {}
    key = (int(width), int(height))
    if key not in cache:
        cache[key] = CameraRenderer(*key)
    return cache[key]
