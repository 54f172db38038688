"""Compatibility names: `ControlMode` and `RobotCommand` live in `robot_formats.recording.records`."""

from __future__ import annotations

from robot_formats.recording.records import ControlMode, RobotCommand

__all__ = ["ControlMode", "RobotCommand"]
