"""The recording process: a real child writes what the daemon's forwarder sends, reports back
(episode status, saved files, faults), never makes a producer wait when it stalls (SIGSTOP), is
killed and reported at shutdown when it does not finish, and finalizes its file when the daemon
dies (SIGKILL)."""

from __future__ import annotations

import os
import queue
import signal
import textwrap
import time
from pathlib import Path

from mcap.reader import make_reader

from frankateach.background import autogroup_enabled, group_nice, thread_nices
from oculus_server.recording.synthetic import SyntheticEpisode
from oculus_server.state import SharedState
from oculus_server.threads.base import Supervisor
from oculus_server.threads.writer_process import (
    FORWARD_PERIOD_S,
    MAX_BATCH,
    PROGRESS_KEYS,
    REPORT_PERIOD_S,
    WriterProcessThread,
)
from robot_formats.recording.records import EpisodeStart, EpisodeStop
from tests.daemon_fakes import child_of_a_killed_parent, wait_for

ROOT = Path(__file__).resolve().parents[1]


def _writer(folder: Path, q: queue.Queue, nice: int = 0) -> tuple[WriterProcessThread, SharedState, Supervisor]:
    sv, st = Supervisor(), SharedState()
    w = WriterProcessThread(q, sv, st.counters, st.episode, st.events, folder, lambda: {"policy_gains": {"g": 1.0}},
                            base_metadata={"operator": "test"}, nice=nice)
    return w, st, sv


def _end(path: Path) -> dict[str, str]:
    with open(path, "rb") as f:
        return {m.name: dict(m.metadata) for m in make_reader(f).iter_metadata()}["recording_end"]


def test_the_child_writes_the_episode_and_reports_back(tmp_path: Path) -> None:
    q: queue.Queue = queue.Queue(maxsize=1000)
    w, st, sv = _writer(tmp_path, q)
    ep = SyntheticEpisode(cameras={"front": (320, 240)})
    w.start()
    q.put(EpisodeStart("a", time.time()))
    for i in range(40):
        q.put(ep.tick(i))
    assert wait_for(lambda: st.episode.status().messages > 0, 60.0)  # status comes back while writing
    assert st.episode.status().active and st.episode.status().path.endswith("a.mcap.partial")
    q.put(EpisodeStop("success", True))
    assert wait_for(lambda: bool(w.saved), 30.0)
    sv.stop.set()
    w.join(10.0)
    assert not w.is_alive() and w.proc is not None and w.proc.exitcode == 0
    (saved,) = w.saved
    assert saved == tmp_path / "success" / "a.mcap" and _end(saved)["outcome"] == "success"
    assert st.episode.status().last_saved == str(saved) and not w.faults and not sv.failures()
    with open(saved, "rb") as f:
        meta = {m.name: dict(m.metadata) for m in make_reader(f).iter_metadata()}
    assert meta["recording_start"]["operator"] == "test"


class _Tallied(WriterProcessThread):
    """The real forwarder and receiver, tallying the messages that cross the pipes."""

    sent: list[tuple[str, int]]  # kind, items in it
    received: list[tuple[str, frozenset[str]]]

    def _send_msg(self, msg: tuple) -> None:
        self.sent.append((msg[0], len(msg[1]) if msg[0] == "batch" else 0))
        super()._send_msg(msg)

    def _apply(self, msg: tuple) -> None:
        self.received.append((msg[0], frozenset(msg[1]) if msg[0] == "episode" else frozenset()))
        super()._apply(msg)


def test_the_daemon_side_wakes_a_few_times_a_second_not_at_every_tick(tmp_path: Path) -> None:
    """Each wake-up of the forwarder or the receiver takes the daemon's GIL: the queue goes down in
    batches (10 Hz; a backlog in pieces of at most MAX_BATCH) and counters and progress come back
    held (4 Hz), nothing lost on the way."""
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=1000)
    w = _Tallied(q, sv, st.counters, st.episode, st.events, tmp_path, dict)
    w.sent, w.received = [], []
    ep = SyntheticEpisode()
    t0 = time.monotonic()
    q.put(EpisodeStart("t", time.time()))
    for i in range(120):  # a backlog, queued before the forwarder's first look: 50 + 50 + 21 (+ any new)
        q.put(ep.tick(i))
    w.start()
    assert w.wait_started(60.0)
    for i in range(120, 200):  # then 2 s at 40 Hz
        q.put(ep.tick(i))
        time.sleep(0.025)
    q.put(EpisodeStop("success", True))
    assert wait_for(lambda: bool(w.saved), 30.0)
    elapsed = time.monotonic() - t0
    sv.stop.set()
    w.join(10.0)
    sizes = [n for kind, n in w.sent if kind == "batch"]
    progress = sum(1 for kind, keys in w.received if kind == "episode" and keys <= PROGRESS_KEYS)
    assert sum(sizes) == 202 and sizes[:2] == [MAX_BATCH, MAX_BATCH] and sizes[2] >= 21, sizes  # in pieces
    assert len(sizes) <= elapsed / FORWARD_PERIOD_S + 3 + 120 // MAX_BATCH, (sizes, elapsed)
    assert 1 <= progress <= elapsed / REPORT_PERIOD_S + 3, (progress, elapsed)  # 200 updates in the child
    with open(w.saved[0], "rb") as f:
        seqs = [m.sequence for _s, _c, m in make_reader(f).iter_messages(topics=["/control/mode"])]
    assert len(seqs) == 200 and not w.faults and not sv.failures()
    assert not st.episode.status().active and st.episode.status().last_saved == str(w.saved[0])


def test_the_child_runs_at_the_configured_nice_and_still_writes_every_tick(tmp_path: Path) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    want = max(6, base)
    q: queue.Queue = queue.Queue(maxsize=1000)
    w, st, sv = _writer(tmp_path, q, nice=6)
    ep = SyntheticEpisode()
    w.start()
    q.put(EpisodeStart("n", time.time()))
    for i in range(20):
        q.put(ep.tick(i))
    assert wait_for(lambda: st.episode.status().messages > 0, 60.0)  # its writer thread runs by now
    assert w.proc is not None and w.proc.pid is not None
    nices = thread_nices(w.proc.pid)
    assert len(nices) >= 2 and set(nices.values()) == {want}, nices  # every thread, the writer's too
    if autogroup_enabled():
        assert group_nice(w.proc.pid) == 6 and os.getsid(w.proc.pid) == w.proc.pid
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the daemon's side is unchanged
    q.put(EpisodeStop("success", True))
    assert wait_for(lambda: bool(w.saved), 30.0)
    sv.stop.set()
    w.join(10.0)
    with open(w.saved[0], "rb") as f:
        seqs = [m.sequence for _s, c, m in make_reader(f).iter_messages(topics=["/control/mode"])]
    assert len(seqs) == 20 and not w.faults


def test_a_stalled_child_never_blocks_a_producer_and_is_killed_and_reported_at_shutdown(tmp_path: Path) -> None:
    q: queue.Queue = queue.Queue(maxsize=20)
    w, st, sv = _writer(tmp_path, q)
    ep = SyntheticEpisode(cameras={"front": (320, 240)})
    w.start()
    q.put(EpisodeStart("b", time.time()))
    assert wait_for(lambda: st.episode.status().active, 60.0)
    assert w.proc is not None and w.proc.pid is not None
    os.kill(w.proc.pid, signal.SIGSTOP)  # the disk hangs
    try:
        full = 0
        for i in range(400):  # the pipe and then the queue fill: put_nowait says so, never waits
            try:
                q.put_nowait(ep.tick(i))
            except queue.Full:
                full += 1
        assert full > 0 and w.is_alive()
        sv.stop.set()
        w.join(w.drain_s + 5.0)
        if w.is_alive():  # what the daemon's shutdown does with a child that does not finish
            w.abandon()
            w.join(5.0)
    finally:
        if w.proc.is_alive():
            os.kill(w.proc.pid, signal.SIGCONT)
    assert not w.is_alive() and not w.proc.is_alive()
    (fault,) = w.faults
    assert fault.episode == "b" and not fault.complete and fault.path == tmp_path / "b.mcap.partial"
    assert "recording process" in fault.problem
    assert st.episode.status().error and "teleop-replay recover" in st.events.last_error()


def test_the_child_finalizes_its_episode_when_the_daemon_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import queue, sys, time
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from oculus_server.recording.synthetic import SyntheticEpisode
        from oculus_server.state import SharedState
        from oculus_server.threads.base import Supervisor
        from oculus_server.threads.writer_process import WriterProcessThread
        from robot_formats.recording.records import EpisodeStart

        if __name__ == "__main__":
            q = queue.Queue()
            st = SharedState()
            w = WriterProcessThread(q, Supervisor(), st.counters, st.episode, st.events, Path({str(tmp_path)!r}),
                                    lambda: {{}})
            w.start()
            q.put(EpisodeStart("c", time.time()))
            ep = SyntheticEpisode()
            for i in range(40):
                q.put(ep.tick(i))
            while st.episode.status().messages < 10:
                time.sleep(0.02)
            print(w.proc.pid, flush=True)
            time.sleep(60)
    """)
    child = child_of_a_killed_parent(script, ROOT)
    assert wait_for(lambda: not Path(f"/proc/{child}").exists(), 20.0), "the recording process outlived the daemon"
    kept = tmp_path / "failure" / "c.mcap"
    assert kept.exists() and _end(kept)["outcome"] == "crashed" and "killed or crashed" in _end(kept)["ended_by"]
    with open(kept, "rb") as f:
        assert sum(1 for _ in make_reader(f).iter_messages()) > 0
