"""MuJoCo simulator of a Franka Panda served over the Franka-Teach protocol.

Modules: `model` (scene, real-arm joint convention), `controller` (Cartesian DLS IK),
`backend` (`SimBackend`: real-time or headless physics), `cameras` / `render_worker`
(offscreen rendering in a child process), `server` (`frankateach-sim`, `start_sim_server`).
Nothing is imported here, so importing a submodule stays cheap.
"""
