"""Every tunable default of the stack, in one place.

Units: metres, radians, seconds, Hz unless the name says otherwise. Frames: positions and
orientations are of the Franka hand's TCP in the robot base frame; quaternions are xyzw.
"""

from __future__ import annotations

import numpy as np

# --- Network (wire-compatible in content with NYU Franka-Teach) -------------------------------
HOST = "127.0.0.1"  # default robot host; --robot-host overrides
STATE_PORT = 8900  # PUB: measured FrankaState at STATE_PUB_FREQ
CONTROL_PORT = 8901  # REP: FrankaAction or b"get_state" -> FrankaState
COMMANDED_STATE_PORT = 8902  # PUB: the (clamped) target the robot is following
CAM_PORT_OFFSET = 10005  # PUB: camera `i` publishes JPEG frames on CAM_PORT_OFFSET + i
SIM_STATE_PORT = 8903  # PUB (simulator only, --sim-state-port): its state blob, for the VLA arena
GET_STATE = b"get_state"
MAX_MESSAGE_BYTES = 64 * 1024  # control messages larger than this are rejected unread
REQUEST_TIMEOUT_S = 1.0  # every REQ call gives up after this long and rebuilds its socket

# --- Rates --------------------------------------------------------------------------------------
VR_FREQ = 50
CONTROL_FREQ = 20
PERFORMANCE_CONTROL_FREQ = 40
RECORD_FREQ = 40
STATE_PUB_FREQ = 100
DASHBOARD_FREQ = 4
STATUS_LOG_PERIOD_S = 5.0

# --- Queues (sizes as in the operators' existing tool) -----------------------------------------
MCAP_QUEUE_SIZE = 1000
COMMAND_QUEUE_SIZE = 2

# --- Robot --------------------------------------------------------------------------------------
# Franka-Teach's workspace box for the hand position (robot base frame, metres).
ROBOT_WORKSPACE_MIN = np.array([0.2, -0.4, 0.05])
ROBOT_WORKSPACE_MAX = np.array([0.75, 0.4, 0.7])
GRIPPER_OPEN = -1.0
GRIPPER_CLOSE = 1.0
# deoxys' reset joint configuration (real-arm joint convention), rad.
HOME_JOINTS = np.array(
    [0.09162008, -0.19826458, -0.01990020, -2.47322699, -0.01307074, 2.30396583, 0.84809397]
)
# Real Panda joint limits (rad), from Franka's control-parameter documentation.
JOINT_LIMITS_LOW = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
JOINT_LIMITS_HIGH = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
# Round-trip delay of a real deoxys server: three 20 Hz controller calls per command.
DEOXYS_LATENCY_MS = 150.0
# Measured state older than this many control periods switches control to PREDICTIVE.
PREDICTIVE_AFTER_PERIODS = 2.0

# --- Simulator ----------------------------------------------------------------------------------
SIM_TIMESTEP = 0.002  # 500 Hz physics
SIM_CAMERA_WIDTH = 320
SIM_CAMERA_HEIGHT = 240
SIM_CAMERA_FPS = 15.0
SIM_JPEG_QUALITY = 85
SIM_CAMERAS = ("front", "wrist")  # camera id i -> port CAM_PORT_OFFSET + i
SIM_STATE_PERIOD_S = 1.0  # the simulator publishes its state blob this often (recorded on /sim/state)

# --- VR / policy ----------------------------------------------------------------------------------
VR_LINK_TIMEOUT_S = 0.5  # no new VR sample for this long -> movement disabled
VR_POSE_JUMP_M = 0.05  # a jump larger than this between samples re-anchors the origin
GRIPPER_TRIGGER_THRESHOLD = 0.1
QUEST_APP_PACKAGE = "com.rail.oculus.teleop"
QUEST_APP_ACTIVITY = "com.rail.oculus.teleop/.MainActivity"
QUEST_LOG_TAG = "wE9ryARX"
QUEST_ADB_PORT = 5555

# --- Recording ------------------------------------------------------------------------------------
RECORDINGS_DIR = "recordings"
MCAP_FLUSH_PERIOD_S = 0.5  # flush + fsync at least this often (crash loses at most ~this)
MCAP_CHUNK_SIZE = 1024 * 1024

# --- VR input sources (oculus_server/vr) ------------------------------------------------------------
VR_RIGID_TOL = 1e-2  # max |RᵀR − I| entry (and |det R − 1|) for an app pose to count as rigid
VR_BOTTOM_ROW_TOL = 1e-6  # the pose's bottom row must be (0, 0, 0, 1) within this
VR_MAX_HAND_DISTANCE_M = 3.0  # a head-relative controller farther than this is rejected
VR_ANALOG_SLACK = 0.05  # analog values may leave their nominal range ([0, 1] / [-1, 1]) by this
VR_BUTTON_PRESS_S = 0.2  # how long scripted/keyboard momentary presses (A, B, RJ) are held
QUEST_RECONNECT_INITIAL_S = 0.5  # first reconnect delay; doubles per failed attempt ...
QUEST_RECONNECT_MAX_S = 8.0  # ... up to this
QUEST_SILENT_RESTART_S = 10.0  # logcat up but no app line for this long -> restart it
QUEST_ADB_STEP_TIMEOUT_S = 10.0  # `adb connect` / `adb shell am start` give up after this
QUEST_MAX_LINE_BYTES = 16384  # a logcat line longer than this is dropped (counted)
QUEST_MAX_READ_BYTES = 1 << 20  # at most this much logcat output is read per poll
KEYBOARD_STEP_M = 0.01  # keyboard source: translation per key press, metres
KEYBOARD_STEP_RAD = 0.08726646259971647  # keyboard source: rotation per key press (5°), rad

# --- Real arm through deoxys (frankateach.franka_server) ----------------------------------------
DEOXYS_CONTROL_FREQ = 20.0  # Hz: FrankaInterface.control() paces its calls at this rate
DEOXYS_STEPS_PER_COMMAND = 3  # control() calls per received action (3 × 50 ms ≈ DEOXYS_LATENCY_MS)
DEOXYS_DEFAULT_CONFIG = "charmander.yml"  # interface yaml: a path, or a name in deoxys' config dir
DEOXYS_STATE_TIMEOUT_S = 10.0  # start-up gives up if no robot state arrives within this
DEOXYS_RESET_TIMEOUT_S = 7.0  # a joint reset gives up after this long
DEOXYS_RESET_TOLERANCE_RAD = 1e-3  # reset is done when every joint is this close to HOME_JOINTS
FRANKA_GRIPPER_MAX_WIDTH_M = 0.08  # Franka Hand finger opening when fully open

# --- VR policy (oculus_server/policy.py) ------------------------------------------------------------
# Per-control-step limits of the velocity → pose-target conversion (DROID's RobotIKSolver values).
POLICY_MAX_LIN_DELTA_M = 0.075  # a full-scale (norm 1) linear action moves the target this far
POLICY_MAX_ROT_DELTA_RAD = 0.15  # a full-scale (norm 1) rotation action turns the target this far
# "performance" mode: stiffer gains, smaller steps at a faster rate (PERFORMANCE_CONTROL_FREQ).
PERFORMANCE_POS_ACTION_GAIN = 10.0
PERFORMANCE_ROT_ACTION_GAIN = 3.0
PERFORMANCE_MAX_LIN_DELTA_M = 0.05
PERFORMANCE_MAX_ROT_DELTA_RAD = 0.1
VR_CALIBRATION_MIN_MOTION_M = 0.003  # joystick-forward calibration needs this much horizontal motion
VR_UP_AXIS = (0.0, 1.0, 0.0)  # "up" in the headset frame (OpenXR-style, y-up)

# --- Recording: MCAP writer and replay tools (oculus_server/recording, oculus_server/replay) -------
MCAP_COMPRESSION = "lz4"  # chunk compression: "zstd", "lz4" or "none" (see benchmarks/bench_recording.py)
MCAP_CALIBRATION_PERIOD_S = 2.0  # /camera/<name>/calibration is repeated this often
MCAP_DEFAULT_CAMERA_FOVY_DEG = 45.0  # vertical field of view assumed for cameras not described (MuJoCo's default)
REPLAY_GAP_FACTOR = 2.5  # `teleop-replay info`: an interval longer than this × the median period is a gap
