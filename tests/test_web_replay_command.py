"""`teleop-replay` as the web UI runs it: a real child process on real synthetic recordings.

Progress arrives as JSON lines, a cancelling callback stops the child, errors quote the command's
message without the server's paths, a missing command and a timeout are clear errors, and
``--parent-pid`` ends the command when its parent is gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from frankateach.lifeline import EXIT_PARENT_GONE
from oculus_server.recording.synthetic import write_synthetic
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.info import recording_info
from vla_server.web.replay_command import replay_command, run_replay


class Stop(Exception):
    """Raised by a progress callback to cancel."""


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("rec") / "ep.mcap", seconds=2.0, cameras={"front": (64, 48)})


def _processes_naming(text: str) -> list[int]:
    """Pids of live processes whose command line contains `text`."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(d.name))
    return found


def test_export_reports_progress_and_writes_the_videos(recording: Path, tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    out = run_replay(["export", str(recording), "--to", "mp4", "-o", str(tmp_path)], 120, lambda *a: seen.append(a))
    assert (tmp_path / "ep.front.mp4").stat().st_size > 0
    assert f"wrote {tmp_path / 'ep.front.mp4'}" in out  # the command's own output, progress lines left out
    phases = [p for p, _, _ in seen]
    assert "reading" in phases and "encoding" in phases
    encoding = [(d, t) for p, d, t in seen if p == "encoding"]
    assert [d for d, _ in encoding] == sorted(d for d, _ in encoding)  # in order
    frames = {t["topic"]: t["count"] for t in recording_info(recording)["topics"]}["/camera/front/image"]
    assert {t for _, t in encoding} == {frames} and frames > 10  # out of every recorded frame


def test_plot_writes_a_png(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "plot.png"
    run_replay(["plot", str(recording), "-o", str(out)], 120)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_cancelling_callback_stops_the_child(recording: Path, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"

    def cancel(phase: str, done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        run_replay(["export", str(recording), "--to", "mp4", "-o", str(marker)], 120, cancel)
    assert _processes_naming(str(marker)) == []  # stopped and reaped before run_replay returned


def test_errors_quote_the_command_without_the_servers_path(tmp_path: Path) -> None:
    bad = tmp_path / "secret-folder" / "broken.mcap"
    bad.parent.mkdir()
    bad.write_bytes(b"not an mcap file at all")
    with pytest.raises(RecordingError) as err:
        run_replay(["plot", str(bad), "-o", str(tmp_path / "x.png")], 120, hide=[(str(bad), "failure/broken.mcap")])
    text = str(err.value)
    assert "failure/broken.mcap" in text and "secret-folder" not in text
    assert not (tmp_path / "x.png").exists()


def test_a_timeout_stops_the_child(recording: Path, tmp_path: Path) -> None:
    marker = tmp_path / "slow"
    with pytest.raises(RecordingError, match="did not finish within"):
        run_replay(["export", str(recording), "--to", "mp4", "-o", str(marker)], 0.05)
    assert _processes_naming(str(marker)) == []


def test_a_missing_command_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RecordingError, match="expected the 'teleop-replay' command"):
        replay_command()


def test_progress_json_lines_on_stdout(recording: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [*replay_command(), "--progress", "json", "plot", str(recording), "-o", str(tmp_path / "p.png")],
        capture_output=True, text=True, timeout=120,
    )
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines and all(set(ln) == {"phase", "what", "done", "total"} for ln in lines)
    assert lines[-1]["phase"] == "reading" and lines[-1]["done"] == lines[-1]["total"] > 0


def test_parent_pid_ends_the_command_when_the_parent_is_gone(recording: Path) -> None:
    # A pid that is not the command's parent reads as a parent that has died: the command must
    # leave with EXIT_PARENT_GONE instead of going on. `play` against a port with no robot server
    # would wait ≥ 1 s for its first reply, so only the lifeline can end it this early.
    not_parent = subprocess.Popen([sys.executable, "-c", "pass"])
    not_parent.wait(10)
    r = subprocess.run(
        [*replay_command(), "--parent-pid", str(not_parent.pid), "play", str(recording),
         "--host", "127.0.0.1", "--port", "9", "--no-approach"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == EXIT_PARENT_GONE, r.stderr
