"""Every test process renders offscreen (EGL) unless told otherwise, whatever subset runs: MuJoCo
reads ``MUJOCO_GL`` when it is first imported, and without a display its default (GLFW) fails and
later crashes the process. The daemon's and the arena's entry points make the same default."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
