"""Service-wide constants of `vla_server`: limits and defaults — one place.

What the client shares (ports, the stream path, message limits, close codes) is
`robot_formats.stream.limits`.
"""

from __future__ import annotations

# --- network -----------------------------------------------------------------------------------

# --- /v1/stream limits and defaults ----------------------------------------------------------
TRANSPORT_MAX_FACTOR = 4  # the websocket layer closes (1009) above this many times the limit
DEFAULT_QUEUE_MAX_SIZE = 2  # INFERENCE_QUEUE_MAX_SIZE: frames held per session while the model is busy
QUEUE_ENV_VAR = "INFERENCE_QUEUE_MAX_SIZE"
DEFAULT_SMOOTHING_ALPHA = 0.5  # EMA weight of the newest action (1 = no smoothing)
DEFAULT_AUTH_TIMEOUT_S = 30.0  # no valid `auth` within this long -> close 4002
OUTBOX_MAX_SIZE = 64  # server->client messages waiting to be sent; the oldest action goes first
FPS_WINDOW_S = 5.0  # actual_fps is measured over this trailing window
RATE_BURST_FRAMES = 2.0  # token bucket depth of the target_fps gate (absorbs client jitter)

# --- safety score defaults -------------------------------------------------------------------
SAFETY_MAX_LIN_SPEED_M_S = 1.0  # commanded TCP speed implied by one action at target_fps
SAFETY_MAX_ANG_SPEED_RAD_S = 2.0
SAFETY_MAX_MEASURED_LIN_SPEED_M_S = 1.0  # robot_state.velocity above this lowers the score
SAFETY_MAX_JUMP = 1.0  # |motion(a_t) - motion(a_t-1)|, action units (full reversal = 2)
SAFETY_WORKSPACE_MARGIN_M = 0.05  # a target this far outside the box scores 0 on that check

# --- registry / workers ----------------------------------------------------------------------
DEFAULT_MEMORY_BUDGET_MB = 4096.0
DEFAULT_MAX_MODELS = 4
DEFAULT_IDLE_TTL_S = 600.0
DEFAULT_HEALTH_INTERVAL_S = 2.0
DEFAULT_PING_TIMEOUT_S = 2.0
DEFAULT_LOAD_TIMEOUT_S = 120.0
DEFAULT_INFER_TIMEOUT_S = 30.0
DEFAULT_RESTART_BACKOFF_S = 0.5  # first restart delay after a crash; doubles per crash ...
DEFAULT_RESTART_BACKOFF_MAX_S = 10.0  # ... up to this; reset after a minute without a crash
RESTART_STABLE_S = 60.0
DEFAULT_NEW_MODEL_ESTIMATE_MB = 200.0  # memory assumed for a never-measured model before it loads
WIRE_MAX_FRAME_BYTES = 64 * 1024 * 1024  # worker socket frames above this are a protocol error
LATENCY_WINDOW = 1000  # per-model latency samples kept for p50/p95

# --- files -----------------------------------------------------------------------------------
DEFAULT_DATA_DIR = "vla_data"
KEYS_DB_NAME = "keys.sqlite3"
DEFAULT_CATALOG = "configs/models.yaml"
DEFAULT_CONFIG = "configs/vla_server.yaml"
