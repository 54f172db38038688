"""The teleop recording format: Foxglove-native MCAP episodes, written crash-safely, read back, recovered.

* `schemas` — the topic list and message schemas (its docstring documents them); `encode` — the
  message encodings; `records` — the values a recording is made from (`RecordTick`, `Event`, ...).
* `mapping.TickMapper` — records → topic messages (`assist_topics`: the `/assist/*` ones).
* `writer.EpisodeWriter` — streams `records.RecordTick`s into ``NAME.mcap.partial``, renamed to
  ``NAME.mcap`` on `close`; `abort` finalizes what it can after a write error.
* `recover.recover` / `recover.find_partials` — rebuild files left by a crash (`scan`: the raw
  record scanner both the recovery and the reader use).
* `reader.RecordingReader` — summary, metadata, decoded messages and a fast index;
  `episode.load_episode` — a recording as arrays; `info.recording_info` — what `teleop-replay info` shows.
"""
