"""The daemon's own recording pieces; the format itself (writer, reader, recovery, schemas) is
`robot_formats.recording`.

* `leftovers.recover_leftovers` — start-up: finish and file the partials a crash left.
* `vr_frames.load_vr_frames` — a recording's VR samples for the replay VR source.
* `sim_scene.SimSceneFetch` — the simulator's scene for the recording's start metadata.
* `synthetic` — synthetic episodes (tests, benchmarks).
"""
