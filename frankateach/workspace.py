"""Franka-Teach's workspace box for the hand position (robot base frame, metres), as plain
tuples: the one definition `frankateach.constants` makes its arrays of, importable without numpy
(the policy service's configuration reads it at start)."""

ROBOT_WORKSPACE_MIN_M: tuple[float, float, float] = (0.2, -0.4, 0.05)
ROBOT_WORKSPACE_MAX_M: tuple[float, float, float] = (0.75, 0.4, 0.7)
