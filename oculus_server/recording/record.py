"""Compatibility names: the recording's cross-thread types live in `oculus_server.types`."""

from __future__ import annotations

from oculus_server.types import Event, RecordTick, RobotObservation, SafetyRecord

__all__ = ["Event", "RecordTick", "RobotObservation", "SafetyRecord"]
