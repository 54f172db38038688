"""The scalar constants of the VLA action space (`robot_formats.action_space` re-exports them and
holds the arithmetic): sizes, gripper values and the per-step scale, importable without numpy
(the policy service's openpi metadata names the scale before any request is decoded)."""

ACTION_DIM = 7
MOTION_DIM = 6
GRIPPER_INDEX = 6
GRIPPER_OPEN = -1.0
GRIPPER_CLOSED = 1.0
MAX_LIN_STEP_M = 0.075  # a full-scale (norm 1) linear action moves the target this far per step
MAX_ROT_STEP_RAD = 0.15  # a full-scale (norm 1) rotation action turns the target this far per step
