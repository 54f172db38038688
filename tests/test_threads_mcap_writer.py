"""The MCAP-writer thread under recording faults: it never dies, keeps the data, says where it is."""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path

import pytest
from mcap.reader import make_reader

from oculus_server.recording.synthetic import SyntheticEpisode
from oculus_server.state import SharedState
from oculus_server.threads.base import Supervisor
from oculus_server.threads.mcap_writer import McapWriterThread
from oculus_server.threads.recorder import EpisodeStart, EpisodeStop
from robot_formats.recording.writer import EpisodeWriter
from tests.fs_faults import fill, immutable, tiny_disk


class Harness:
    """A real writer thread on a real queue; items are fed as the recorder would."""

    def __init__(self, folder: Path, factory=None) -> None:
        self.q: queue.Queue = queue.Queue(maxsize=1000)
        self.sv, self.st = Supervisor(), SharedState()
        self.thread = McapWriterThread(self.q, self.sv, self.st.counters, self.st.episode, self.st.events, folder,
                                       factory or (lambda p, m: EpisodeWriter(p, m, chunk_size=32 * 1024)))
        self.ep = SyntheticEpisode(cameras={"front": (320, 240)})
        self.i = 0
        self.thread.start()

    def episode(self, name: str, ticks: int, success: bool = False, stop: bool = True) -> None:
        self.q.put(EpisodeStart(name, time.time()))
        for _ in range(ticks):
            self.q.put(self.ep.tick(self.i))
            self.i += 1
        if stop:
            self.q.put(EpisodeStop("success" if success else "failure", success))

    def settle(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while (self.q.unfinished_tasks and not self.q.empty()) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)

    def stop(self) -> None:
        self.sv.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def _events(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        return [json.loads(m.data) for _, _, m in make_reader(f).iter_messages(topics=["/events"])]


def _end(path: Path) -> dict[str, str]:
    with open(path, "rb") as f:
        return {m.name: dict(m.metadata) for m in make_reader(f).iter_metadata()}["recording_end"]


def test_immutable_success_folder_keeps_the_file_and_the_thread(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    with immutable(tmp_path / "success"):
        h.episode("a", 40, success=True)
        h.settle()
        assert h.thread.is_alive() and not h.sv.failures()
        kept = tmp_path / "a.mcap"
        assert kept.exists() and _end(kept)["outcome"] == "success"  # finished, beside its partial
        (fault,) = h.thread.faults
        assert fault.path == kept and fault.complete and "cannot move a.mcap into" in fault.problem
        assert "not permitted" in h.st.episode.status().error and str(kept) in h.st.episode.status().error
        assert str(kept) in h.st.events.last_error()  # the dashboard's last error says where the data is
        h.episode("b", 40)  # teleop and recording go on
        h.settle()
    h.stop()
    b = tmp_path / "failure" / "b.mcap"
    assert h.thread.saved[-1] == b
    errors = [e for e in _events(b) if e["kind"] == "error"]
    assert len(errors) == 1 and errors[0]["data"]["path"] == str(kept)  # the fault, in the next episode


def test_disk_full_files_the_aborted_episode_as_a_failure_with_the_cause(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk", 3 * 1024) as disk:
        h = Harness(disk)
        h.q.put(EpisodeStart("full", time.time()))
        deadline = time.monotonic() + 3.0
        while not (disk / "full.mcap.partial").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        fill(disk, leave_bytes=200 * 1024)
        for _ in range(600):  # ~15 s of ticks with a camera: far more than 200 KB
            h.q.put(h.ep.tick(h.i))
            h.i += 1
        h.settle()
        assert h.thread.is_alive() and not h.sv.failures()
        kept = disk / "failure" / "full.mcap"
        (fault,) = h.thread.faults
        assert fault.path == kept and fault.complete and "disk is full" in fault.problem
        end = _end(kept)
        assert end["outcome"] == "aborted" and "disk is full (ENOSPC" in end["reason"]
        assert int(end["errors"]) >= 1 and "disk is full" in end["last_error"]
        assert not list(disk.glob("*.partial"))  # not left for a "recovered after a crash" label
        h.q.put(EpisodeStop("failure", False))  # the recorder's stop for the aborted episode
        h.stop()


def test_an_unexpected_writer_error_ends_only_that_episode(tmp_path: Path) -> None:
    class Broken(EpisodeWriter):
        def write(self, tick):
            if tick.seq == 5:
                raise KeyError("bug")
            super().write(tick)

    h = Harness(tmp_path, factory=lambda p, m: Broken(p, m))
    h.episode("bug", 20)
    h.episode("next", 10)
    h.settle()
    h.stop()
    assert not h.sv.failures()
    assert "unexpected writer error: KeyError" in h.thread.faults[0].problem
    assert (tmp_path / "failure" / "bug.mcap").exists() and (tmp_path / "failure" / "next.mcap").exists()
    assert any("KeyError" in e["message"] for e in _events(tmp_path / "failure" / "next.mcap"))


@pytest.mark.parametrize("blocker", ["file", "immutable"])
def test_a_recordings_folder_that_cannot_be_used_is_a_fault_not_a_crash(tmp_path: Path, blocker: str) -> None:
    folder = tmp_path / "rec"
    if blocker == "file":
        folder.write_text("not a folder")
        h = Harness(folder)
        h.episode("x", 5)
        h.settle()
        h.stop()
    else:
        with immutable(folder):
            h = Harness(folder)
            h.episode("x", 5)
            h.settle()
            h.stop()
    assert not h.sv.failures() and h.thread.faults[0].path is None
    assert "cannot start the recording" in h.thread.faults[0].describe()
