"""A pinhole model of a simulator camera, read from the MuJoCo scene (never hard-coded).

MuJoCo's camera convention: the camera looks along its −z axis, x points right in the image and
y up; ``fovy`` is the vertical field of view and pixels are square, so for an image of height H
the focal length is ``f = (H / 2) / tan(fovy / 2)`` pixels on both axes, with the principal point
at the image centre. Pixel (u, v) (column, row; row 0 at the top) has its centre at
(u + 0.5, v + 0.5). Frames: world = robot base frame, metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PinholeCamera:
    """A fixed camera.

    Attributes:
        position: (3,) camera centre, m, world frame.
        world_R_cam: (3, 3) rotation whose columns are the camera's x (right), y (up) and
            z (backward) axes in the world frame.
        fovy_deg: vertical field of view, degrees.
    """

    position: np.ndarray
    world_R_cam: np.ndarray
    fovy_deg: float

    def __post_init__(self) -> None:
        pos = np.asarray(self.position, dtype=np.float64)
        rot = np.asarray(self.world_R_cam, dtype=np.float64)
        if pos.shape != (3,) or rot.shape != (3, 3):
            raise ValueError(f"expected position (3,) and rotation (3, 3), got {pos.shape} and {rot.shape}")
        if not 0.0 < float(self.fovy_deg) < 180.0:
            raise ValueError(f"expected 0 < fovy < 180 degrees, got {self.fovy_deg}")
        object.__setattr__(self, "position", pos)
        object.__setattr__(self, "world_R_cam", rot)

    def focal_px(self, height: int) -> float:
        """Focal length in pixels for an image `height` pixels tall."""
        return 0.5 * float(height) / float(np.tan(np.radians(self.fovy_deg) / 2.0))

    def ray(self, u: float, v: float, width: int, height: int) -> np.ndarray:
        """Unit direction (3,), world frame, of the ray through the centre of pixel (u, v)."""
        f = self.focal_px(height)
        d_cam = np.array([(u + 0.5 - width / 2.0) / f, -(v + 0.5 - height / 2.0) / f, -1.0])
        d = self.world_R_cam @ d_cam
        return d / np.linalg.norm(d)

    def backproject_to_plane(self, u: float, v: float, width: int, height: int, z: float) -> np.ndarray | None:
        """Where the ray through pixel (u, v) meets the horizontal plane at height `z` (m).

        Returns:
            (3,) world point, or None when the ray does not hit the plane in front of the camera.
        """
        d = self.ray(u, v, width, height)
        if abs(d[2]) < 1e-9:
            return None
        t = (z - self.position[2]) / d[2]
        if t <= 0:
            return None
        return self.position + t * d

    def project(self, points: np.ndarray, width: int, height: int) -> np.ndarray:
        """Pixel coordinates (N, 2) as (u, v) of world points (N, 3); NaN for points behind."""
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        cam = (p - self.position) @ self.world_R_cam  # rows: points in the camera frame
        f = self.focal_px(height)
        out = np.full((len(p), 2), np.nan)
        ahead = cam[:, 2] < -1e-9
        out[ahead, 0] = f * cam[ahead, 0] / -cam[ahead, 2] + width / 2.0 - 0.5
        out[ahead, 1] = -f * cam[ahead, 1] / -cam[ahead, 2] + height / 2.0 - 0.5
        return out


@dataclass(frozen=True)
class SceneGeometry:
    """What a vision policy may know about the simulated scene: the camera and the objects' size.

    Attributes:
        camera: the front camera.
        table_z: table top height, m.
        cube_half_size: half the edge of the cubes, m.
    """

    camera: PinholeCamera
    table_z: float
    cube_half_size: float


def _camera_from_model(model: Any, data: Any, name: str) -> PinholeCamera:
    import mujoco

    cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if cam < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        raise ValueError(f"the sim model has no camera {name!r}; it has {names}")
    return PinholeCamera(
        position=data.cam_xpos[cam].copy(),
        world_R_cam=data.cam_xmat[cam].reshape(3, 3).copy(),
        fovy_deg=float(model.cam_fovy[cam]),
    )


def scene_geometry_from_sim(camera: str = "front") -> SceneGeometry:
    """Builds the simulator's scene (`frankateach.sim.model`) and reads the camera and cube size.

    The camera must be fixed to the world (the front camera is); it is read at the home pose.

    Raises:
        ValueError: the camera or a cube is missing from the model.
        frankateach.sim.model.SimModelError: the scene cannot be built.
    """
    import mujoco

    from frankateach.sim.model import CUBES, TABLE_TOP_Z, build_model, reset_to_home

    model = build_model(cameras=True)
    data = mujoco.MjData(model)
    reset_to_home(model, data)
    cam = _camera_from_model(model, data, camera)
    if int(model.cam_bodyid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)]) != 0:
        raise ValueError(f"camera {camera!r} moves with a body; a fixed camera is needed")
    geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f"{next(iter(CUBES))}_geom")
    if geom < 0:
        raise ValueError("the sim model has no cube geometry to read the cube size from")
    return SceneGeometry(camera=cam, table_z=float(TABLE_TOP_Z), cube_half_size=float(model.geom_size[geom][0]))
