"""The one error of the recording format."""

from frankateach.errors import FrankaTeachError


class RecordingError(FrankaTeachError):
    """A recording could not be written, read or recovered (what was expected and what came)."""
