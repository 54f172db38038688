"""The episode file's life on a real file system: creation, one move, a refusing folder, a full disk."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcap.reader import make_reader

from oculus_server.recording.leftovers import recover_leftovers
from oculus_server.recording.synthetic import SyntheticEpisode
from robot_formats.recording.paths import reserve_path
from robot_formats.recording.writer import EpisodeWriter
from tests.fs_faults import fill, immutable, tiny_disk

T0 = 1_750_000_000.0


def _summary_and_meta(path: Path):
    with open(path, "rb") as f:
        r = make_reader(f)
        summary = r.get_summary()
        meta = {m.name: dict(m.metadata) for m in r.iter_metadata()}
    return summary, meta


def test_close_moves_once_straight_into_the_destination_and_releases_the_reserve(tmp_path: Path) -> None:
    w = EpisodeWriter(tmp_path / "ep.mcap", {"task": "t"})
    reserve = reserve_path(w.path)
    assert reserve.exists() and reserve.stat().st_size >= 1 << 20  # room to finalize on a full disk
    for tick in SyntheticEpisode(cameras={}, t0_wall=T0).ticks(20):
        w.write(tick)
    result = w.finalize("success", dest_dir=tmp_path / "success")
    assert result.complete and result.filed and not result.problem
    assert result.path == tmp_path / "success" / "ep.mcap" and result.path.exists()
    assert not (tmp_path / "ep.mcap").exists() and not list(tmp_path.glob("*.partial")) and not reserve.exists()
    summary, meta = _summary_and_meta(result.path)
    assert summary is not None and meta["recording_end"]["outcome"] == "success"


def test_a_destination_that_refuses_the_file_keeps_it_beside_the_partial(tmp_path: Path) -> None:
    """An immutable success/ (root ignores chmod; chattr +i stops even root)."""
    w = EpisodeWriter(tmp_path / "ep.mcap", {})
    for tick in SyntheticEpisode(cameras={}, t0_wall=T0).ticks(20):
        w.write(tick)
    with immutable(tmp_path / "success"):
        result = w.finalize("success", dest_dir=tmp_path / "success")
    assert result.complete and not result.filed
    assert result.path == tmp_path / "ep.mcap" and result.path.exists()
    assert "cannot move ep.mcap into" in result.problem and "not permitted" in result.problem
    summary, meta = _summary_and_meta(result.path)
    assert summary is not None and summary.statistics.message_count == w.messages
    assert meta["recording_end"]["outcome"] == "success"


def test_a_folder_that_cannot_be_created_keeps_the_file(tmp_path: Path) -> None:
    (tmp_path / "success").write_text("a file where the folder should be")
    w = EpisodeWriter(tmp_path / "ep.mcap", {})
    w.write(SyntheticEpisode(cameras={}, t0_wall=T0).tick(0))
    with pytest.raises(Exception, match="cannot move ep.mcap into"):
        w.close("success", dest_dir=tmp_path / "success")
    assert w.result is not None and w.result.complete and w.result.path == tmp_path / "ep.mcap"


_KILL_AFTER_START = """
import sys, time
from pathlib import Path
from robot_formats.recording.writer import EpisodeWriter
w = EpisodeWriter(Path(sys.argv[1]), {"operator": "ada", "task": "first 0.1 s"})
print("READY", flush=True)
time.sleep(60)
"""


def test_sigkill_right_after_the_start_keeps_the_start_metadata(tmp_path: Path, caplog) -> None:
    """A SIGKILL in an episode's first ~0.1 s: no message yet, but the file is filed once."""
    final = tmp_path / "early.mcap"
    child = subprocess.Popen([sys.executable, "-c", _KILL_AFTER_START, str(final)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "READY"
        time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert (tmp_path / "early.mcap.partial").exists()

    recovered = recover_leftovers(tmp_path)

    assert recovered == [tmp_path / "failure" / "early.mcap"]
    summary, meta = _summary_and_meta(recovered[0])
    assert summary is not None and summary.statistics.message_count == 0
    assert meta["recording_start"]["task"] == "first 0.1 s"  # fsync'd right after the header
    assert meta["recording_end"]["outcome"] == "crashed"
    assert not list(tmp_path.glob(".*.reserve"))  # the killed writer's reserve is cleaned up
    caplog.clear()
    assert recover_leftovers(tmp_path) == []  # handled once: nothing to warn about next time
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_partial_without_a_header_is_retired_once_with_a_note(tmp_path: Path, caplog) -> None:
    (tmp_path / "empty.mcap.partial").write_bytes(b"")
    (tmp_path / "garbage.mcap.partial").write_bytes(b"\x89MCAP0\r")  # killed inside the magic
    assert recover_leftovers(tmp_path) == []
    for name in ("empty", "garbage"):
        retired = tmp_path / "failure" / f"{name}.mcap.partial"
        assert retired.exists() and "nothing could be recovered" in retired.with_name(retired.name + ".txt").read_text()
    assert not list(tmp_path.glob("*.partial"))
    caplog.clear()
    assert recover_leftovers(tmp_path) == []
    assert not caplog.records  # no warning on every later start


def test_disk_full_on_a_real_file_system_files_the_data_with_the_real_cause(tmp_path: Path) -> None:
    """A 3 MiB tmpfs fills while recording; the writer's reserve leaves room for the summary."""
    with tiny_disk(tmp_path / "disk", 3 * 1024) as disk:
        w = EpisodeWriter(disk / "full.mcap", {"task": "fill"}, chunk_size=32 * 1024)
        fill(disk, leave_bytes=300 * 1024)
        ep = SyntheticEpisode(cameras={"front": (320, 240)}, t0_wall=T0)
        written = 0
        with pytest.raises(Exception, match=r"disk is full \(ENOSPC"):
            for tick in ep.ticks(100_000):
                w.write(tick)
                written += 1
        kept = w.abort(dest_dir=disk / "failure")
        assert kept == disk / "failure" / "full.mcap" and w.result is not None and w.result.filed
        summary, meta = _summary_and_meta(kept)
        end = meta["recording_end"]
        assert summary is not None and summary.statistics.message_count > 0
        assert end["outcome"] == "aborted" and "disk is full" in end["reason"] and "ENOSPC" in end["reason"]
        assert int(end["errors"]) >= 1 and "disk is full" in end["last_error"]
        assert not list(disk.glob("*.partial")) and 0 < written
