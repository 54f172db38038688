"""Robot side of the teleoperation stack: protocol, MuJoCo simulator and real-robot server."""

__version__ = "0.1.0"
