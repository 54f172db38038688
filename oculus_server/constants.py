"""The daemon's tunable defaults (`oculus_server`): loop rates, queues, the VR sources and the VR policy.

Units: metres, radians, seconds, Hz unless the name says otherwise. The robot side's (ports, the
workspace box, limits) are in `frankateach.constants`.
"""

from __future__ import annotations

# --- Rates (Hz) -------------------------------------------------------------------------------
VR_FREQ = 50
CONTROL_FREQ = 20
PERFORMANCE_CONTROL_FREQ = 40
RECORD_FREQ = 40

# --- Queues between the threads (sizes as in the operators' existing tool) --------------------
MCAP_QUEUE_SIZE = 1000
COMMAND_QUEUE_SIZE = 2

# --- Control ----------------------------------------------------------------------------------
# Measured state older than this many control periods switches control to PREDICTIVE.
PREDICTIVE_AFTER_PERIODS = 2.0

# --- VR / policy ------------------------------------------------------------------------------
VR_LINK_TIMEOUT_S = 0.5  # no new VR sample for this long -> movement disabled
VR_POSE_JUMP_M = 0.05  # a jump larger than this between samples re-anchors the origin
GRIPPER_TRIGGER_THRESHOLD = 0.1

# --- Quest app (adb logcat) -------------------------------------------------------------------
QUEST_APP_PACKAGE = "com.rail.oculus.teleop"
QUEST_APP_ACTIVITY = "com.rail.oculus.teleop/.MainActivity"
QUEST_LOG_TAG = "wE9ryARX"
QUEST_ADB_PORT = 5555

# --- VR input sources (oculus_server/vr) ------------------------------------------------------
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

# --- VR policy (oculus_server/policy) ---------------------------------------------------------
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
