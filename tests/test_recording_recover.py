"""Crash safety: a real writer process killed with SIGKILL, truncated and damaged files, recover()."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcap.reader import make_reader

from oculus_server.recording.synthetic import write_synthetic
from oculus_server.replay.cli import main as replay_main
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.recover import find_partials, recover
from tests.recording_checks import damaged, read_whole

ROOT = Path(__file__).resolve().parents[1]


def _ticks(path: Path) -> list[tuple[int, int]]:
    """(sequence, log_time) of the /control/mode messages, read with the official reader."""
    with open(path, "rb") as f:
        r = make_reader(f)
        assert r.get_summary() is not None
        return [(m.sequence, m.log_time) for _, _, m in r.iter_messages(topics=["/control/mode"])]


@pytest.mark.slow
def test_sigkill_mid_recording_loses_at_most_a_second(tmp_path: Path) -> None:
    final = tmp_path / "killed.mcap"
    child = subprocess.Popen(
        [sys.executable, "-m", "oculus_server.recording.synthetic", str(final), "--seconds", "60", "--realtime",
         "--camera", "front:320x240", "--camera", "wrist:320x240"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 30.0
        while sum(line.startswith("FLUSH") for line in lines) < 4:  # ≥ 2 s of flushed data
            line = child.stdout.readline()
            assert line, f"writer exited early: {child.stderr.read() if child.stderr else ''}"
            lines.append(line.strip())
            assert time.monotonic() < deadline, "writer too slow to flush"
        for _ in range(7):  # stop between flushes, with unflushed ticks in memory
            lines.append(child.stdout.readline().strip())
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=10)
        lines.extend(rest.split("\n"))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    last_tick = [line.split() for line in lines if line.startswith("TICK")][-1]
    last_seq, last_ns = int(last_tick[1]), int(last_tick[2])
    last_flushed = int([line for line in lines if line.startswith("FLUSH")][-1].split()[1])
    partial = tmp_path / "killed.mcap.partial"
    assert partial.exists() and not final.exists()
    assert find_partials(tmp_path) == [partial]
    with open(partial, "rb") as f:  # the library's normal reader cannot use the unfinished file
        try:
            summary = make_reader(f).get_summary()
        except Exception:
            summary = None
    assert summary is None

    report = recover(partial)
    assert report.exit_code == 3 and report.data_lost and report.output == final
    assert final.exists() and not partial.exists() and find_partials(tmp_path) == []
    ticks = _ticks(final)
    seqs = [s for s, _ in ticks]
    assert seqs == list(range(len(seqs)))  # nothing missing up to the cut
    assert seqs[-1] >= last_flushed  # everything flushed was recovered
    assert seqs[-1] <= last_seq
    lost_s = (last_ns - ticks[-1][1]) / 1e9
    assert 0.0 <= lost_s <= 1.0, f"lost {lost_s:.3f} s"
    assert report.last_log_time_ns >= ticks[-1][1]
    assert 0 < report.estimated_lost_s <= 1.0 and report.estimated_lost_s >= 0.5  # flush period bound
    with open(final, "rb") as f:
        meta = {m.name: m.metadata for m in make_reader(f).iter_metadata()}
    assert meta["recording_end"]["outcome"] == "crashed" and meta["recovery"]["status"] == "recovered"
    assert meta["recording_start"]["operator"] == "synthetic"


MJCF = b"<mujoco model='panda'>" + b"<body name='link'/>" * 40 + b"</mujoco>"  # like a --debug recording's


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(
        tmp_path_factory.mktemp("fin") / "ep.mcap", seconds=2.0, cameras={"front": (64, 48)}, chunk_size=8_000,
        attachments=[("panda.xml", "application/xml", MJCF)],
    )


def _total(path: Path) -> int:
    with open(path, "rb") as f:
        return make_reader(f).get_summary().statistics.message_count


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.sampled_from(["start", "cut", "any"]), st.integers(0, 1 << 20)), max_size=3),
)
def test_any_truncation_or_damage_recovers_a_file_the_official_reader_reads_whole(
    finished: Path, cut: float, flips: list[tuple[str, int]]
) -> None:
    source = finished.read_bytes()
    data = damaged(source, int(cut * len(source)), [(where, offset, 0x5A) for where, offset in flips])
    total = _total(finished)
    with tempfile.TemporaryDirectory() as d:
        partial = Path(d) / "x.mcap.partial"
        partial.write_bytes(data)
        report = recover(partial)
        if report.status == "unrecoverable":
            assert report.exit_code == 1 and report.output is None and not (Path(d) / "x.mcap").exists()
            return
        assert report.output is not None
        got = read_whole(report.output)
        assert got == report.messages_recovered <= total
        if not flips:
            assert report.exit_code in (0, 3) and not report.dropped


def test_a_finished_file_whose_closing_magic_is_damaged_is_repaired_not_passed_as_intact(
        finished: Path, tmp_path: Path) -> None:
    """The case hypothesis found in a fresh-clone run: the last byte flipped. The seeking reader
    still finds the summary (it does not check the closing magic); a streaming reader refuses it."""
    source = finished.read_bytes()
    partial = tmp_path / "x.mcap.partial"
    partial.write_bytes(damaged(source, len(source), [("cut", 0, 0x5A)]))
    report = recover(partial)
    assert report.status == "repaired" and report.output is not None
    assert report.output.read_bytes()[-8:] == source[-8:]
    assert read_whole(report.output) == report.messages_recovered == _total(finished)


def test_damaged_metadata_is_dropped_and_reported_and_the_rest_kept(finished: Path, tmp_path: Path) -> None:
    """The case hypothesis found in a fresh-clone run: a string length inside the start metadata
    grew past its record, so the official reader read into the next record (UnicodeDecodeError)."""
    from robot_formats.recording.scan import scan

    s = scan(finished)
    offset, length, meta = s.metadata[0]
    assert meta.name == "recording_start"
    data = bytearray(finished.read_bytes())
    name_len = len(meta.name.encode())
    value_len_at = offset + 9 + 4 + name_len + 4 + 4 + len(next(iter(meta.metadata)).encode())  # 1st value's length
    data[value_len_at + 1] ^= 0x5A  # the value now claims ~23 kB more than its record holds
    partial = tmp_path / "meta.mcap.partial"
    partial.write_bytes(bytes(data[: len(data) * 3 // 4]))
    report = recover(partial)
    assert report.status == "recovered" and report.exit_code == 3
    assert len(report.dropped) == 1 and f"at byte {offset}" in report.dropped[0] and "dropped" in report.dropped[0]
    assert read_whole(tmp_path / "meta.mcap") == report.messages_recovered > 0  # the chunks after it are kept
    with open(tmp_path / "meta.mcap", "rb") as f:
        meta_out = {m.name: m.metadata for m in make_reader(f).iter_metadata()}
    assert "recording_start" not in meta_out and report.dropped[0] in meta_out["recovery"]["dropped"]


def test_damaged_header_and_attachment_are_repaired_or_dropped(finished: Path, tmp_path: Path) -> None:
    from robot_formats.recording.scan import scan

    s = scan(finished)
    attachment = s.attachments[0]
    data = bytearray(finished.read_bytes())
    data[8 + 9 + 4] ^= 0x80  # inside the header's first string: not UTF-8 any more
    data[attachment.offset + attachment.length - 10] ^= 0x01  # inside the MJCF: CRC mismatch
    src = tmp_path / "both.mcap"
    src.write_bytes(bytes(data))
    report = recover(src)
    assert report.status == "recovered" and len(report.dropped) == 2
    assert "repaired record (opcode 0x01)" in report.dropped[0] and "CRC" in report.dropped[1]
    assert read_whole(tmp_path / "both.recovered.mcap") == report.messages_recovered == _total(finished)
    with open(tmp_path / "both.recovered.mcap", "rb") as f:
        r = make_reader(f)
        assert list(r.iter_attachments()) == [] and r.get_header().library.startswith("header damaged")


def test_one_damaged_magic_byte_is_repaired_but_another_file_is_not_an_mcap(finished: Path, tmp_path: Path) -> None:
    data = bytearray(finished.read_bytes())
    data[3] ^= 0x10
    flipped = tmp_path / "magic.mcap.partial"
    flipped.write_bytes(bytes(data[: len(data) // 2]))
    report = recover(flipped)
    assert report.status == "recovered" and report.dropped == [f"repaired the magic bytes: magic bytes damaged: "
                                                               f"{bytes(data[:8]).hex()}"]
    assert read_whole(tmp_path / "magic.mcap") == report.messages_recovered > 0
    other = tmp_path / "notes.mcap.partial"
    other.write_bytes(b"\x89MCAQ0\r\n" + b"plain text that follows no header" * 3)
    assert recover(other).status == "unrecoverable"


def test_intact_file_and_cli_exit_codes(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report = recover(finished)
    assert report.status == "intact" and report.exit_code == 0 and report.messages_recovered == _total(finished)
    assert replay_main(["recover", str(finished)]) == 0
    cut = tmp_path / "cut.mcap"
    data = finished.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert replay_main(["recover", str(cut), "--json"]) == 3
    out = capsys.readouterr().out
    assert '"status": "recovered"' in out
    assert (tmp_path / "cut.recovered.mcap").exists() and cut.stat().st_size == len(data) * 2 // 3  # original kept
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not an mcap file at all")
    assert replay_main(["recover", str(junk)]) == 1
    assert not (tmp_path / "junk.recovered.mcap").exists()
    with pytest.raises(RecordingError, match="already exists"):
        recover(cut)  # cut.recovered.mcap is there now


def test_cut_inside_message_indexes_rebuilds_them(finished: Path, tmp_path: Path) -> None:
    """A crash between a chunk and its message indexes: indexes are regenerated, nothing lost."""
    from robot_formats.recording.scan import scan

    s = scan(finished)
    last = s.chunks[-1]
    assert last.index_end > last.offset + last.length  # the writer wrote indexes after it
    partial = tmp_path / "idx.mcap.partial"
    partial.write_bytes(finished.read_bytes()[: last.offset + last.length + 20])
    report = recover(partial)
    assert report.messages_recovered == _total(finished)
    out = tmp_path / "idx.mcap"
    from robot_formats.recording.reader import RecordingReader

    with RecordingReader(out) as r:  # the fast index reads the rebuilt message indexes
        ix = r.index()
        assert sum(i.count for i in ix.values()) == report.messages_recovered


def test_find_partials_ignores_finished_files(tmp_path: Path, finished: Path) -> None:
    shutil.copy(finished, tmp_path / "a.mcap")
    (tmp_path / "b.mcap.partial").write_bytes(b"")
    (tmp_path / "c.txt.partial").write_bytes(b"")
    os.utime(tmp_path / "b.mcap.partial")
    assert find_partials(tmp_path) == [tmp_path / "b.mcap.partial"]
    assert find_partials(tmp_path / "missing") == []
