"""VLA policy side: inference service, model registry and workers, policies, arena, web UI.

The service knows nothing of the teleoperation daemon; the daemon is one of its clients. It shares
the robot side (`frankateach`: the MuJoCo Panda scene, constants) with the daemon.

Importing it on a headless machine with ``MUJOCO_GL`` unset chooses EGL for MuJoCo's offscreen
rendering (`frankateach.offscreen_gl`), before any of its modules imports MuJoCo: ``vla-arena`` and
``vla-server`` render from a plain shell as they do under ``./run_server.sh``.
"""

from frankateach.offscreen_gl import default_offscreen_gl

default_offscreen_gl()

__all__: list[str] = []
