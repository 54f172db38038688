"""The one error hierarchy of the robot side (`frankateach`)."""


class FrankaTeachError(Exception):
    """Base of every error this package raises on purpose."""


class ProtocolError(FrankaTeachError):
    """A message could not be decoded or failed schema validation."""


class RobotTimeoutError(FrankaTeachError):
    """The robot server did not answer within the request timeout."""


class RobotServerError(FrankaTeachError):
    """The robot server answered with an error reply."""


class HardwareUnavailableError(FrankaTeachError):
    """The hardware library (deoxys) or renderer needed for this mode is missing."""
