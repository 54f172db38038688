"""LeRobot dataset names that both ends of this project use: `teleop-replay export --to lerobot`
writes them (`oculus_server.replay.lerobot`) and the ``lerobot`` policy backend fills them from a
session (`vla_server.policies.lerobot_policy`)."""

ENV_STATE_KEY = "observation.environment_state"  # with --task-feature: the one-hot of the episode's task
