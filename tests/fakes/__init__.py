"""Reusable fakes for the robot-side tests (small working stand-ins, not mocks)."""

from tests.fakes.backend import HOME_POS, HOME_QUAT, TargetBackend
from tests.fakes.clock import FakeClock
from tests.fakes.net import EchoServer, SilentServer, free_port, free_ports, served

__all__ = [
    "HOME_POS",
    "HOME_QUAT",
    "EchoServer",
    "FakeClock",
    "SilentServer",
    "TargetBackend",
    "free_port",
    "free_ports",
    "served",
]
