"""The pinhole camera model read from the simulator's scene."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frankateach.sim.model import CUBE_HALF_SIZE, FRONT_CAMERA_FOVY
from vla_server.policies.camera_model import PinholeCamera, scene_geometry_from_sim


@pytest.fixture(scope="module")
def camera() -> PinholeCamera:
    return scene_geometry_from_sim().camera


def test_read_from_the_scene(camera: PinholeCamera) -> None:
    geo = scene_geometry_from_sim()
    assert geo.cube_half_size == CUBE_HALF_SIZE
    assert camera.fovy_deg == pytest.approx(FRONT_CAMERA_FOVY)
    np.testing.assert_allclose(camera.world_R_cam.T @ camera.world_R_cam, np.eye(3), atol=1e-9)
    # The camera looks at the table in front of the robot: its viewing axis (−z) points down and back.
    view = -camera.world_R_cam[:, 2]
    assert view[2] < 0 and view[0] < 0


def test_centre_pixel_is_the_optical_axis(camera: PinholeCamera) -> None:
    ray = camera.ray(159.5, 119.5, 320, 240)
    np.testing.assert_allclose(ray, -camera.world_R_cam[:, 2], atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(u=st.floats(0, 319), v=st.floats(0, 239), z=st.floats(0.0, 0.3),
       size=st.sampled_from([(320, 240), (640, 480), (160, 120)]))
def test_backproject_then_project_is_identity(camera: PinholeCamera, u: float, v: float, z: float,
                                              size: tuple[int, int]) -> None:
    w, h = size
    u, v = u * w / 320, v * h / 240
    p = camera.backproject_to_plane(u, v, w, h, z)
    assert p is not None and p[2] == pytest.approx(z)
    np.testing.assert_allclose(camera.project(p, w, h)[0], (u, v), atol=1e-6)


def test_points_behind_and_rays_away_from_the_plane(camera: PinholeCamera) -> None:
    behind = camera.position + camera.world_R_cam[:, 2]  # one metre behind the camera
    assert np.all(np.isnan(camera.project(behind, 320, 240)))
    # A plane above the camera is not hit by rays that go down.
    assert camera.backproject_to_plane(160, 200, 320, 240, z=camera.position[2] + 1.0) is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="fovy"):
        PinholeCamera(np.zeros(3), np.eye(3), 0.0)
    with pytest.raises(ValueError, match="position"):
        PinholeCamera(np.zeros(2), np.eye(3), 40.0)
    with pytest.raises(ValueError, match="fixed camera"):
        scene_geometry_from_sim("wrist")
    with pytest.raises(ValueError, match="no camera 'top'"):
        scene_geometry_from_sim("top")
