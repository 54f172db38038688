"""Offscreen rendering by default on a headless machine (import before MuJoCo).

MuJoCo picks its GL backend from ``MUJOCO_GL`` when it is imported; unset, it tries GLFW, which
needs a display. `./run_server.sh` sets ``MUJOCO_GL=egl``, but a user who runs ``vla-arena`` or
``vla-server`` from the activated `.venv` on a server has no display and no ``MUJOCO_GL``: every
render would fail. `default_offscreen_gl` chooses EGL there; an explicit ``MUJOCO_GL`` or a
display is left alone.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping


def default_offscreen_gl(env: MutableMapping[str, str] = os.environ) -> str | None:
    """Sets ``MUJOCO_GL=egl`` (and ``PYOPENGL_PLATFORM``) when unset and there is no display.

    Returns:
        The backend set, or None when nothing was changed.
    """
    if env.get("MUJOCO_GL") or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    env["MUJOCO_GL"] = "egl"
    env.setdefault("PYOPENGL_PLATFORM", "egl")
    return "egl"
