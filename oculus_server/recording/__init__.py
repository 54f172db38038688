"""Episode recording: Foxglove-native MCAP files written crash-safely, and their recovery.

* `writer.EpisodeWriter` — streams `record.RecordTick`s into ``NAME.mcap.partial``, renamed to
  ``NAME.mcap`` on `close`; `abort` finalizes what it can after a write error.
* `recover.recover` / `recover.find_partials` — rebuild files left by a crash.
* `reader.RecordingReader` — summary, metadata, decoded messages and a fast index.
* `schemas` — the topic list and message schemas (its docstring documents them).
"""
