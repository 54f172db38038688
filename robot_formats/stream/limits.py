"""`/v1/stream` constants both ends need: where it listens, message limits, close codes.

Close codes are sent after an `error` message; 4000–4999 is the range RFC 6455 leaves to
applications (documented in the README).
"""

from __future__ import annotations

# --- where ---------------------------------------------------------------------------------------
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000  # HTTP + ws://HOST:8000/v1/stream
DEFAULT_OPENPI_PORT = 8001  # openpi-compatible websocket at the root path
STREAM_PATH = "/v1/stream"

# --- message limits --------------------------------------------------------------------------
DEFAULT_MAX_MESSAGE_BYTES = 2 * 1024 * 1024  # a client message above this gets `error`, session lives
MAX_INSTRUCTION_CHARS = 1000
MAX_IMAGE_SIDE_PX = 4096  # decoded frames larger than this (either side) are refused
MIN_TARGET_FPS = 0.1
ROBOT_TYPES = ("franka_panda",)

# --- close codes -----------------------------------------------------------------------------
CLOSE_NORMAL = 1000  # the client sent {"type":"close"}
CLOSE_GOING_AWAY = 1001  # the service is shutting down
CLOSE_BAD_KEY = 4001  # missing, unknown or revoked API key
CLOSE_AUTH_TIMEOUT = 4002  # no valid `auth` message within the auth timeout
CLOSE_TOO_MANY_SESSIONS = 4003  # the key's tier allows no further concurrent session
CLOSE_UNKNOWN_MODEL = 4004  # `model` is not in the catalog
CLOSE_UNSUPPORTED_ROBOT = 4005  # `robot_type` is not supported
CLOSE_FPS_TOO_HIGH = 4008  # `target_fps` above the tier's maximum
