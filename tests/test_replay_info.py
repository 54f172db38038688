"""`teleop-replay info` and `plot`: rates, gaps from sequences and times, metadata, JSON output, PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from oculus_server.recording.synthetic import write_synthetic
from oculus_server.replay.cli import main
from robot_formats.recording.info import recording_info

T0 = 1_750_000_000.0


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(
        tmp_path_factory.mktemp("clean") / "clean.mcap", seconds=4.0, cameras={"front": (64, 48)}, t0_wall=T0
    )


@pytest.fixture(scope="module")
def gappy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 20 ticks (0.5 s) missing at 2.5 s, as if the MCAP queue had overflowed
    return write_synthetic(
        tmp_path_factory.mktemp("gap") / "gappy.mcap", seconds=4.0, cameras={"front": (64, 48)}, t0_wall=T0,
        drop_ticks=set(range(100, 120)),
    )


def _topic(info: dict, name: str) -> dict:
    return next(t for t in info["topics"] if t["topic"] == name)


def test_info_of_a_clean_recording(clean: Path) -> None:
    info = recording_info(clean)
    assert info["outcome"] == "success" and not info["recovered"]
    assert info["duration_s"] == pytest.approx(4.0, abs=0.1)
    assert info["dropped_ticks"] == 0 and not info["gaps_found"]
    mode = _topic(info, "/control/mode")
    assert mode["count"] == 160
    assert mode["rate_median_hz"] == pytest.approx(40.0, rel=1e-3)
    assert mode["rate_min_hz"] == pytest.approx(40.0, rel=1e-3) and mode["time_gap_count"] == 0
    assert _topic(info, "/robot/command")["rate_median_hz"] == pytest.approx(20.0, rel=1e-3)
    assert info["metadata"]["recording_start"]["task"] == "trace a circle"
    assert info["metadata"]["recording_end"]["topic_counts"]["/control/mode"] == 160
    vr = _topic(info, "/vr/right/pose")  # 50 Hz source sampled by 40 Hz ticks: 1 in 5 skipped, by design
    assert vr["seq_missing"] == 0 and vr["seq_gaps"] == [] and vr["sampled"]
    assert vr["seq_skipped"] == pytest.approx(40, abs=2) and vr["sample_every"] == pytest.approx(1.25, abs=0.01)


def test_info_finds_an_injected_gap(gappy: Path) -> None:
    info = recording_info(gappy)
    assert info["gaps_found"] and info["dropped_ticks"] == 20
    mode = _topic(info, "/control/mode")
    assert mode["seq_gaps"] == [{"after": 99, "missing": 20}]
    assert mode["time_gap_count"] == 1
    gap = mode["time_gaps"][0]
    assert gap["at_s"] == pytest.approx(99 / 40 - 0.004, abs=0.01)  # relative to the first message
    assert gap["length_s"] == pytest.approx(21 / 40, abs=1e-3)
    cam = _topic(info, "/camera/front/image")
    # camera frames are sampled by design (newest wins): the frames lost with the ticks show as a time gap
    assert cam["seq_missing"] == 0 and cam["seq_skipped"] > 0 and cam["time_gap_count"] == 1
    assert _topic(info, "/robot/command")["seq_missing"] > 0  # every command is recorded: lost ones are missing
    fast = recording_info(gappy, sequences=False)  # index only: time gaps still found
    assert _topic(fast, "/control/mode")["time_gap_count"] == 1 and _topic(fast, "/control/mode")["seq_missing"] == 0


def test_info_cli_text_and_json(gappy: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(gappy)]) == 0
    text = capsys.readouterr().out
    assert "/control/mode: 20 sequence number(s) missing after 99" in text
    assert "no message for 0.525 s" in text
    assert "/vr/right/pose: 1 sequence number(s) missing" not in text  # sampled by design, listed apart
    assert main(["info", str(gappy), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dropped_ticks"] == 20 and data["file"] == str(gappy)


def test_info_text_explains_sampled_topics(clean: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(clean)]) == 0
    text = capsys.readouterr().out
    assert "gaps (" not in text  # nothing was lost
    assert "sampled by design (not data loss):" in text
    assert "/vr/right/pose: 39 headset samples skipped, by design: each recording tick keeps the newest" in text
    (row,) = [ln for ln in text.splitlines() if ln.startswith("/vr/right/pose ")]
    assert row.split()[-3:] == ["0", "0", "sampled"]  # nothing missing, no time gap, sampled by design


def test_info_refuses_unfinished_files(tmp_path: Path, clean: Path, capsys: pytest.CaptureFixture) -> None:
    cut = tmp_path / "cut.mcap.partial"
    cut.write_bytes(clean.read_bytes()[:5000])
    assert main(["info", str(cut)]) == 1
    assert "teleop-replay recover" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.mcap")]) == 1


def test_plot_writes_a_png(gappy: Path, tmp_path: Path) -> None:
    out = tmp_path / "overview.png"
    assert main(["plot", str(gappy), "-o", str(out)]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 800 and im.size[1] > 800
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # something was drawn, not a blank canvas
