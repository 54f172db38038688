"""VLA policy side: inference service, model registry and workers, policies, arena, web UI.

The service knows nothing of the teleoperation daemon; the daemon is one of its clients. It shares
the robot side (`frankateach`: the MuJoCo Panda scene, constants) with the daemon.
"""

__all__: list[str] = []
