"""The live-view process: a real child serves foxglove-sdk's WebSocket server to a real client on
loopback and publishes the ticks the daemon's forwarder sends (the file's bytes); whether anyone is
subscribed and the live view's counters cross the status pipe; a stalled child (SIGSTOP) never
makes a producer wait and is killed at shutdown; a taken port or a dead child is reported and
never fails the daemon; the child dies with the daemon (SIGKILL)."""

from __future__ import annotations

import dataclasses
import os
import signal
import textwrap
import threading
import time
from pathlib import Path

from mcap.reader import make_reader

from frankateach.background import autogroup_enabled, group_nice, thread_nices
from oculus_server.recording.synthetic import SyntheticEpisode
from oculus_server.state import SharedState
from oculus_server.threads.base import Supervisor
from oculus_server.threads.live_process import LiveProcessThread, LiveSettings
from robot_formats.recording import schemas as S
from robot_formats.recording.live import LiveServer
from robot_formats.recording.records import Event
from robot_formats.recording.scene import ScenePainter
from robot_formats.recording.writer import EpisodeWriter
from tests.daemon_fakes import child_of_a_killed_parent, wait_for
from tests.foxglove_ws_client import FoxgloveClient

ROOT = Path(__file__).resolve().parents[1]
START_S = 60.0  # the child imports the recording stack: slow on a loaded machine


def _live(port: int = 0, queue_size: int = 80, nice: int = 0) -> tuple[LiveProcessThread, SharedState, Supervisor]:
    sv, st = Supervisor(), SharedState()
    w = LiveProcessThread(LiveSettings("127.0.0.1", port, ("front",)), lambda: {"scene": ScenePainter()},
                          sv, st.counters, st.events, queue_size=queue_size, nice=nice)
    return w, st, sv


def _serving(w: LiveProcessThread) -> FoxgloveClient:
    w.start()
    assert wait_for(lambda: bool(w.url) or not w.is_alive(), START_S), "the live-view process never served"
    assert w.url.startswith("ws://127.0.0.1:"), w.error
    client = FoxgloveClient(w.url)
    client.wait_channels({S.TOPIC_TF, "/camera/front/image"})
    return client


def _stop(w: LiveProcessThread, sv: Supervisor) -> None:
    """What the daemon's shutdown does with the live view."""
    sv.stop.set()
    w.join(1.0)
    if w.is_alive():
        w.abandon()
        w.join(5.0)


def test_the_child_publishes_the_files_bytes_and_subscriptions_and_counters_cross_the_pipe(tmp_path: Path) -> None:
    w, st, sv = _live()
    ticks = list(SyntheticEpisode(cameras={"front": (64, 48)}).ticks(40))
    client = _serving(w)
    try:
        assert "queue_live" in st.counters.snapshot()  # the dashboard shows the live view
        w.offer_tick(ticks[0])
        assert not w.wanted and w.queue.qsize() == 0  # nobody subscribed: not even queued
        client.subscribe(sorted(client.by_topic()))
        assert wait_for(lambda: w.wanted, 10.0), "the subscription never reached the daemon's side"
        for t in ticks:
            w.offer_tick(t)
            time.sleep(0.005)
        got = client.collect(3.0)
        assert wait_for(lambda: st.counters.snapshot().get("live_messages", 0) == len(got), 5.0)
        assert st.counters.snapshot()["queue_live_subscriptions"] == len(client.by_topic())
    finally:
        client.close()
    assert wait_for(lambda: not w.wanted, 10.0), "the client left: the daemon's side must stop offering"
    _stop(w, sv)
    assert not w.is_alive() and w.proc is not None and w.proc.exitcode == 0
    assert not sv.failures() and not w.error
    writer = EpisodeWriter(tmp_path / "ep.mcap", {}, scene=ScenePainter())
    for t in ticks:
        writer.write(t)
    with open(writer.close("success"), "rb") as f:
        in_file = [(c.topic, m.data) for _s, c, m in make_reader(f).iter_messages(log_time_order=False)]
    assert sorted((r.topic, r.data) for r in got) == sorted(in_file)  # one mapping: the file's bytes


def test_the_child_runs_at_the_configured_nice() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    w, st, sv = _live(nice=8)
    client = _serving(w)  # the child's server threads run by now
    try:
        assert w.proc is not None and w.proc.pid is not None
        nices = thread_nices(w.proc.pid)
        assert len(nices) >= 2 and set(nices.values()) == {max(8, base)}, nices
        if autogroup_enabled():
            assert group_nice(w.proc.pid) == 8 and os.getsid(w.proc.pid) == w.proc.pid
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the daemon's side is unchanged
    finally:
        client.close()
        _stop(w, sv)
    assert not sv.failures() and not w.error


def test_a_tick_that_cannot_cross_the_pipe_is_dropped_and_counted_and_the_view_goes_on() -> None:
    w, st, sv = _live()
    ep = SyntheticEpisode()
    bad = dataclasses.replace(ep.tick(0), events=(Event("note", "x", 0.0, {"lock": threading.Lock()}),))
    client = _serving(w)
    try:
        client.subscribe([S.TOPIC_MODE])
        assert wait_for(lambda: w.wanted, 10.0)
        w.offer_tick(bad)  # a lock cannot be pickled
        for i in range(1, 6):
            w.offer_tick(ep.tick(i))
        got = [r for r in client.collect(2.0) if r.topic == S.TOPIC_MODE]
    finally:
        client.close()
        _stop(w, sv)
    assert len(got) == 5 and st.counters.snapshot()["live_ticks_dropped"] == 1
    assert not sv.failures() and w.proc is not None and w.proc.exitcode == 0


def test_a_stalled_child_never_blocks_a_producer_and_is_killed_at_shutdown() -> None:
    w, st, sv = _live(queue_size=20)
    ticks = list(SyntheticEpisode(cameras={"front": (320, 240)}).ticks(400))
    client = _serving(w)
    assert w.proc is not None and w.proc.pid is not None
    try:
        client.subscribe(sorted(client.by_topic()))
        assert wait_for(lambda: w.wanted, 10.0)
        os.kill(w.proc.pid, signal.SIGSTOP)  # the child hangs
        for t in ticks:  # the pipe and then the queue fill: offer_tick drops, never waits
            w.offer_tick(t)
        assert st.counters.snapshot()["live_ticks_dropped"] > 0 and w.is_alive()
        _stop(w, sv)
    finally:
        if w.proc.is_alive():
            os.kill(w.proc.pid, signal.SIGCONT)
        client.close()
    assert not w.is_alive() and not w.proc.is_alive() and not w.wanted
    assert not sv.failures()  # the live view is never the daemon's failure


def test_a_taken_port_is_reported_and_nothing_else_stops() -> None:
    taken = LiveServer(port=0)
    try:
        w, st, sv = _live(port=taken.port)
        w.start()
        w.join(START_S + 20.0)  # the child cannot bind: it says so and the forwarder ends
        assert not w.is_alive() and not sv.stop.is_set() and not sv.failures()
    finally:
        taken.stop()
    assert f"127.0.0.1:{taken.port}" in w.error and "--live-port or --no-live" in w.error
    warning = st.events.last("live_warning")
    assert warning is not None and warning.message == w.error
    w.offer_tick(next(SyntheticEpisode().ticks(1)))
    assert w.queue.qsize() == 0


def test_a_child_that_dies_stops_the_live_view_only_and_is_reported() -> None:
    w, st, sv = _live()
    client = _serving(w)
    try:
        client.subscribe(sorted(client.by_topic()))
        assert wait_for(lambda: w.wanted, 10.0)
        assert w.proc is not None and w.proc.pid is not None
        os.kill(w.proc.pid, signal.SIGKILL)
        assert wait_for(lambda: not w.is_alive(), 10.0), "the forwarder outlived its child"
    finally:
        client.close()
    assert not w.wanted and not sv.stop.is_set() and not sv.failures()
    warning = st.events.last("live_warning")
    assert warning is not None and "live view stopped" in warning.message and "exit code -9" in warning.message


def test_the_child_dies_with_the_daemon() -> None:
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from oculus_server.state import SharedState
        from oculus_server.threads.base import Supervisor
        from oculus_server.threads.live_process import LiveProcessThread, LiveSettings

        if __name__ == "__main__":
            st = SharedState()
            w = LiveProcessThread(LiveSettings("127.0.0.1", 0), dict, Supervisor(), st.counters, st.events)
            w.start()
            while not w.url:
                time.sleep(0.02)
            print(w.proc.pid, flush=True)
            time.sleep(60)
    """)
    child = child_of_a_killed_parent(script, ROOT)
    assert wait_for(lambda: not Path(f"/proc/{child}").exists(), 20.0), "the live-view process outlived the daemon"
