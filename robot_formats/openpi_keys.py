"""The keys of an openpi request map (`robot_formats.openpi_request` parses them and re-exports
these), importable without numpy (the policy service's openpi metadata lists the image keys)."""

IMAGE_KEYS = ("observation/image", "observation/exterior_image_1_left", "image")
WRIST_KEYS = ("observation/wrist_image", "observation/wrist_image_left", "wrist_image")
STATE_KEY = "observation/state"
JOINTS_KEY = "observation/joint_position"
DROID_GRIPPER_KEY = "observation/gripper_position"
PROMPT_KEY = "prompt"
