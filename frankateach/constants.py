"""Every tunable default of the robot side (`frankateach`): ports, rates, the workspace box, limits.

The daemon's (VR, Quest, keyboard, VR policy, loop rates, queues) are in `oculus_server.constants`;
the recording format's (MCAP chunking, compression, flush period) beside their code in
`robot_formats.recording`.

Units: metres, radians, seconds, Hz unless the name says otherwise. Frames: positions and
orientations are of the Franka hand's TCP in the robot base frame; quaternions are xyzw.
"""

from __future__ import annotations

import numpy as np

from frankateach.workspace import ROBOT_WORKSPACE_MAX_M, ROBOT_WORKSPACE_MIN_M

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
STATE_PUB_FREQ = 100
STATUS_LOG_PERIOD_S = 5.0

# --- Robot --------------------------------------------------------------------------------------
# Franka-Teach's workspace box for the hand position (robot base frame, metres; `frankateach.workspace`).
ROBOT_WORKSPACE_MIN = np.array(ROBOT_WORKSPACE_MIN_M)
ROBOT_WORKSPACE_MAX = np.array(ROBOT_WORKSPACE_MAX_M)
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

# --- Simulator ----------------------------------------------------------------------------------
SIM_TIMESTEP = 0.002  # 500 Hz physics
SIM_CAMERA_WIDTH = 320
SIM_CAMERA_HEIGHT = 240
SIM_CAMERA_FPS = 15.0
SIM_JPEG_QUALITY = 85
SIM_CAMERAS = ("front", "wrist")  # camera id i -> port CAM_PORT_OFFSET + i
SIM_STATE_PERIOD_S = 1.0  # the simulator publishes its state blob this often (recorded on /sim/state)

# --- Real arm through deoxys (frankateach.franka_server) ----------------------------------------
DEOXYS_CONTROL_FREQ = 20.0  # Hz: FrankaInterface.control() paces its calls at this rate
DEOXYS_STEPS_PER_COMMAND = 3  # control() calls per received action (3 × 50 ms ≈ DEOXYS_LATENCY_MS)
DEOXYS_DEFAULT_CONFIG = "charmander.yml"  # interface yaml: a path, or a name in deoxys' config dir
DEOXYS_STATE_TIMEOUT_S = 10.0  # start-up gives up if no robot state arrives within this
DEOXYS_RESET_TIMEOUT_S = 7.0  # a joint reset gives up after this long
DEOXYS_RESET_TOLERANCE_RAD = 1e-3  # reset is done when every joint is this close to HOME_JOINTS
FRANKA_GRIPPER_MAX_WIDTH_M = 0.08  # Franka Hand finger opening when fully open
