"""Compatibility names: `ControlMode` and `RobotCommand` live in `oculus_server.types`."""

from __future__ import annotations

from oculus_server.types import ControlMode, RobotCommand

__all__ = ["ControlMode", "RobotCommand"]
