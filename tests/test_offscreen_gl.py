"""`default_offscreen_gl`: EGL on a headless machine, an explicit choice or a display left alone."""

from __future__ import annotations

from frankateach.offscreen_gl import default_offscreen_gl


def test_headless_without_a_choice_gets_egl() -> None:
    env: dict[str, str] = {"PATH": "/usr/bin"}
    assert default_offscreen_gl(env) == "egl"
    assert env["MUJOCO_GL"] == "egl" and env["PYOPENGL_PLATFORM"] == "egl"


def test_an_explicit_backend_or_a_display_is_left_alone() -> None:
    for env in ({"MUJOCO_GL": "osmesa"}, {"DISPLAY": ":0"}, {"WAYLAND_DISPLAY": "wayland-0"}):
        before = dict(env)
        assert default_offscreen_gl(env) is None and env == before
