"""The VLA arena: policies run server-side in the simulator's Panda scene.

Modules: `config` (constants, `EpisodeSpec`), `scene` (physics: the simulator's own backend,
stepped directly), `render` (camera images, MP4), `latency` (actions in flight in sim time),
`blob` (the episode runtime inside a state blob), `episode` (the executor of one episode),
`metrics`, `trajectory` (MCAP with the teleop topics), `models` (which policy a model id is),
`work` (the job payload/result that crosses process boundaries), `executors` (in-thread,
process pool, Ray), `store` (SQLite + files), `jobs` (queue, progress, logs, cancel, restart
safety), `battles`, `leaderboard` (Bradley–Terry), `recording_start` (a moment of a teleop
recording as a start), `api` (FastAPI router), `cli` (`vla-arena`).
"""
