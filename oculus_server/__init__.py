"""The teleoperation daemon: VR input, control policy, threads, recording, dashboard, CLI."""

__version__ = "0.1.0"
