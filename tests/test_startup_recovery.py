"""The daemon's start-up recovery of recordings left by a crashed run."""

from __future__ import annotations

from mcap.reader import make_reader

from oculus_server.cli import recover_leftovers
from oculus_server.recording.synthetic import SyntheticEpisode
from robot_formats.recording.writer import EpisodeWriter


def test_leftover_partial_is_recovered_into_failure(tmp_path):
    w = EpisodeWriter(tmp_path / "crashed.mcap", {"task": "t"})
    for tick in SyntheticEpisode(cameras={}).ticks(80):
        w.write(tick)
    w.flush()  # what a crash leaves: flushed chunks, no summary, still named .partial
    partial = w.path
    assert partial.name == "crashed.mcap.partial" and partial.exists()

    recovered = recover_leftovers(tmp_path)

    assert recovered == [tmp_path / "failure" / "crashed.mcap"]
    assert not partial.exists()
    with open(recovered[0], "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None and sum(summary.statistics.channel_message_counts.values()) > 0
    assert recover_leftovers(tmp_path) == []  # nothing left the second time
