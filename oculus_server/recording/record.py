"""Compatibility names: the recording's cross-thread types live in `robot_formats.recording.records`."""

from __future__ import annotations

from robot_formats.recording.records import Event, RecordTick, RobotObservation, SafetyRecord

__all__ = ["Event", "RecordTick", "RobotObservation", "SafetyRecord"]
