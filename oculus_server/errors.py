"""The one error hierarchy of the daemon side (`oculus_server`).

Recording format errors are `robot_formats.recording.errors.RecordingError`.
"""

from frankateach.errors import FrankaTeachError


class OculusServerError(FrankaTeachError):
    """Base of every error the daemon raises on purpose."""


class ConfigError(OculusServerError):
    """A configuration file or flag had an unexpected value."""


class VRSourceError(OculusServerError):
    """A VR source could not be opened or failed while running."""


class SafetyError(OculusServerError):
    """A command reached the robot thread without passing the command gate (a programming error)."""
