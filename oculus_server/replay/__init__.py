"""`teleop-replay`: inspect (`info`), re-execute (`play`), convert (`export` to HDF5, MP4,
LeRobot v3), plot and recover episode recordings. Entry point: `oculus_server.replay.cli:main`.
"""
