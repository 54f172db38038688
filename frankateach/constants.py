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
RESPONSE_QUEUE_SIZE = 2

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
