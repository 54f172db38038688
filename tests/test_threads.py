"""Daemon threads on real sockets: failure propagation, freshest command, link loss, episodes."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

from frankateach.client import RobotClient
from oculus_server.safety.config import SafetyConfig
from oculus_server.state import SharedState
from oculus_server.threads.base import RateThread, Supervisor
from oculus_server.threads.queues import put_freshest
from oculus_server.threads.recorder import RecorderThread
from oculus_server.threads.robot_comm import RobotCommThread
from robot_formats.recording.records import EpisodeStart, EpisodeStop, RecordTick
from tests.control_fakes import CommandFactory
from tests.robot_fakes import KinematicBackend, free_port_block, start_robot_server
from tests.shared_parts import robot_parts


class Exploding(RateThread):
    def __init__(self, sv: Supervisor, st: SharedState) -> None:
        super().__init__("exploding", 200.0, sv, st.rates)
        self.n = 0

    def step(self) -> None:
        self.n += 1
        if self.n == 3:
            raise ValueError("boom on tick 3")


def test_a_failing_thread_stops_everyone_and_is_named():
    sv, st = Supervisor(), SharedState()
    t = Exploding(sv, st)
    other_stopped = threading.Event()

    def other() -> None:
        sv.stop.wait(5.0)
        other_stopped.set()

    threading.Thread(target=other, daemon=True).start()
    t.start()
    t.join(5.0)
    assert not t.is_alive()
    assert sv.stop.is_set() and other_stopped.wait(1.0)
    (failure,) = sv.failures()
    assert failure.thread == "exploding" and "ValueError: boom on tick 3" in failure.error
    assert "rate" not in failure.error and "Traceback" in failure.traceback


def test_robot_thread_always_sends_the_freshest_command():
    port = free_port_block()
    backend = KinematicBackend(delay_s=0.05)  # a slow robot: ~20 Hz
    server = start_robot_server(backend, port)
    sv, st = Supervisor(), SharedState()
    commands: queue.Queue = queue.Queue(maxsize=2)
    # generous age limit: this test is about freshness, not expiry (a loaded machine is slow)
    thread = RobotCommThread(lambda: RobotClient("127.0.0.1", port, timeout_s=1.0), commands, sv, **robot_parts(st),
                             safety=SafetyConfig(max_command_age_periods=40.0))
    factory = CommandFactory(hz=200.0)
    thread.start()
    try:
        assert wait_until(lambda: st.robot.link().up, 5.0)  # commands are made for the live link
        produced = 0
        for seq in range(100):  # 200 Hz producer for 0.5 s
            st.counters.count("commands_dropped", put_freshest(commands, factory.make([0.4, 0.0, 0.3 + 0.0001 * seq])))
            produced += 1
            time.sleep(0.005)
        time.sleep(0.3)
    finally:
        sv.stop.set()
        thread.join(3.0)
        server.stop()
    assert not sv.failures()
    sent = [int(a.timestamp) for a in backend.actions]
    assert len(sent) >= 3
    assert sent == sorted(sent) and len(set(sent)) == len(sent)  # never an older one after a newer
    assert sent[-1] == 99  # the last command produced is the last sent
    counters = st.counters.snapshot()
    dropped = counters["commands_dropped"]
    assert counters["safety_expired"] == 0 and counters["safety_stale_link"] == 0
    assert dropped > 0 and dropped + len(sent) == produced
    assert st.robot.link().up and np.isfinite(st.robot.link().rtt_mean_s)
    obs = st.robot.observation()
    assert obs is not None and obs.state.pos[2] == pytest.approx(0.3 + 0.0099)


def test_robot_link_down_is_shown_and_recovers_when_the_server_returns():
    port = free_port_block()
    server = start_robot_server(KinematicBackend(), port)
    sv, st = Supervisor(), SharedState()
    thread = RobotCommThread(
        lambda: RobotClient("127.0.0.1", port, timeout_s=0.2),
        queue.Queue(maxsize=2), sv, **robot_parts(st), idle_poll_s=0.02, retry_s=0.05,
    )
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not st.robot.link().up and time.monotonic() < deadline:
            time.sleep(0.02)
        assert st.robot.link().up
        server.stop()
        deadline = time.monotonic() + 5
        while st.robot.link().up and time.monotonic() < deadline:
            time.sleep(0.02)
        link = st.robot.link()
        assert not link.up and link.failures >= 1 and "RobotTimeoutError" in link.last_error
        server = start_robot_server(KinematicBackend(pos=(0.5, 0.1, 0.2)), port)
        deadline = time.monotonic() + 10
        while not st.robot.link().up and time.monotonic() < deadline:
            time.sleep(0.02)
        assert st.robot.link().up
        assert st.robot.observation().state.pos[1] == pytest.approx(0.1)
        kinds = [e.message for e in st.events.recent() if e.kind == "robot_link"]
        assert any("down" in k for k in kinds) and any("restored" in k for k in kinds)
    finally:
        sv.stop.set()
        thread.join(3.0)
        server.stop()
    assert not sv.failures()


def test_robot_thread_refuses_a_command_that_did_not_pass_the_gate():
    from frankateach.messages import FrankaAction
    from robot_formats.recording.records import ControlMode, RobotCommand

    port = free_port_block()
    backend = KinematicBackend()
    server = start_robot_server(backend, port)
    sv, st = Supervisor(), SharedState()
    commands: queue.Queue = queue.Queue(maxsize=2)
    thread = RobotCommThread(lambda: RobotClient("127.0.0.1", port, timeout_s=1.0), commands, sv, **robot_parts(st))
    thread.start()
    try:
        assert wait_until(lambda: st.robot.link().up, 5.0)
        target = FrankaAction(np.array([0.4, 0.0, 0.3]), np.array([1.0, 0, 0, 0]), -1.0, False, 0.0)
        commands.put(RobotCommand(0, time.monotonic(), np.zeros(7), target, ControlMode.REAL_TIME, True))
        thread.join(3.0)
    finally:
        sv.stop.set()
        thread.join(3.0)
        server.stop()
    (failure,) = sv.failures()
    assert (
        failure.thread == "robot"
        and "SafetyError" in failure.error
        and "did not pass the command gate" in failure.error
    )
    assert backend.actions == []  # nothing reached the robot


def test_robot_thread_never_sends_expired_or_pre_outage_commands():
    port = free_port_block()
    backend = KinematicBackend()
    server = start_robot_server(backend, port)
    sv, st = Supervisor(), SharedState()
    commands: queue.Queue = queue.Queue(maxsize=2)
    thread = RobotCommThread(lambda: RobotClient("127.0.0.1", port, timeout_s=0.2), commands, sv, **robot_parts(st),
                             idle_poll_s=0.02, retry_s=0.05)
    factory = CommandFactory(hz=50.0)
    thread.start()
    try:
        assert wait_until(lambda: st.robot.link().up and st.robot.link().epoch == 1, 5.0)
        old = factory.make([0.4, 0.0, 0.31])
        time.sleep(0.1)  # older than 2 control periods (40 ms) when taken
        commands.put(old)
        assert wait_until(lambda: st.counters.snapshot()["safety_expired"] == 1, 2.0)
        commands.put(factory.make([0.4, 0.0, 0.305], epoch=0))  # made for an older link
        assert wait_until(lambda: st.counters.snapshot()["safety_stale_link"] == 1, 2.0)
        assert backend.actions == []
        commands.put(factory.make([0.4, 0.0, 0.302]))  # a fresh one for this link goes out
        assert wait_until(lambda: len(backend.actions) == 1, 2.0)
        # outage: the server goes away and comes back; epoch 2 starts with the first reply
        server.stop()
        assert wait_until(lambda: not st.robot.link().up, 3.0)
        pre_outage = factory.make([0.4, 0.0, 0.303])  # made for epoch 1
        server = start_robot_server(KinematicBackend(), port)
        commands.put(pre_outage)
        assert wait_until(lambda: st.robot.link().up and st.robot.link().epoch == 2, 5.0)
        assert wait_until(lambda: st.counters.snapshot()["safety_stale_link"] == 2, 2.0)
        records = st.safety.take()
        assert [r.kind for r in records] == ["expired", "stale_link", "stale_link"]
        assert "not sent" in records[0].message and records[0].command_seq == old.command.seq
        obs = st.robot.observation()
        assert obs is not None and obs.link_epoch == 2
    finally:
        sv.stop.set()
        thread.join(3.0)
        server.stop()
    assert not sv.failures()
    assert len(backend.actions) == 1
    # Only what went on the wire is in the send log (numbered from 0); refused ones are not.
    sent = st.sent.take()
    assert [s.send_seq for s in sent] == [0]
    assert list(sent[0].command.target.pos) == list(backend.actions[0].pos)


def wait_until(pred, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return bool(pred())


def _drain(q: queue.Queue) -> list:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def test_recorder_episode_toggle_success_and_ticks():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=1000)
    rec = RecorderThread(q, sv, st, hz=100.0, task="pick cube", debounce_s=0.0)
    st.episode.request("toggle")
    rec.step()
    from frankateach.messages import FrankaState
    from oculus_server.robot_link import RobotLink
    from robot_formats.recording.records import RobotObservation

    # The robot answers during the episode (an episode without robot data is never a success).
    state = FrankaState(np.array([0.4, 0, 0.3]), np.array([1.0, 0, 0, 0]), -1.0, time.time(), True, np.zeros(7))
    st.robot.set_reply(RobotObservation(state, time.monotonic(), time.time()), RobotLink(up=True))
    rec.step()
    st.episode.request("success")
    rec.step()
    st.episode.request("toggle")
    rec.step()
    rec.step()  # closed: nothing queued
    items = _drain(q)
    assert isinstance(items[0], EpisodeStart) and items[0].name.endswith("pick-cube")
    ticks = [i for i in items if isinstance(i, RecordTick)]
    assert [t.seq for t in ticks] == [0, 1, 2]
    stop = items[-1]
    assert isinstance(stop, EpisodeStop) and stop.success and stop.outcome == "success"
    kinds = [e.kind for t in ticks for e in t.events]
    assert kinds[:1] == ["episode_start"] and "success" in kinds
    assert [e.kind for e in stop.events] == ["episode_stop"]  # written before the file closes


def test_recorder_drops_ticks_on_a_full_queue_but_never_control_items():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=12)
    rec = RecorderThread(q, sv, st, hz=100.0)
    st.episode.request("start")
    for _ in range(10):
        rec.step()
    items = _drain(q)  # the writer catches up
    for _ in range(2):
        rec.step()
    rec.finish()
    items += _drain(q)
    assert isinstance(items[0], EpisodeStart) and isinstance(items[-1], EpisodeStop)
    assert items[-1].outcome == "shutdown"
    seqs = [i.seq for i in items if isinstance(i, RecordTick)]
    assert seqs == [0, 1, 2, 10, 11]  # 12 slots - 8 reserved; the gap stays visible
    assert st.counters.snapshot()["records_dropped"] == 7


def test_recorder_ignores_a_toggle_right_after_the_episode_opened():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=100)
    rec = RecorderThread(q, sv, st, hz=100.0, debounce_s=0.5)
    st.episode.request("start")
    rec.step()
    st.episode.request("toggle")  # e.g. the scripted demo's own A press
    rec.step()
    assert rec.open
    time.sleep(0.55)
    st.episode.request("toggle")
    rec.step()
    assert not rec.open
    assert isinstance(_drain(q)[-1], EpisodeStop)


def test_record_on_start_waits_for_the_robot_then_opens():
    from frankateach.messages import FrankaState
    from oculus_server.robot_link import RobotLink
    from robot_formats.recording.records import RobotObservation

    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=100)
    rec = RecorderThread(q, sv, st, hz=100.0, record_on_start=True)
    rec.step()
    assert not rec.open and q.empty()  # no robot state yet
    state = FrankaState(np.array([0.4, 0, 0.3]), np.array([1.0, 0, 0, 0]), -1.0, time.time(), True, np.zeros(7))
    st.robot.set_reply(RobotObservation(state, time.monotonic(), time.time()), RobotLink(up=True))
    rec.step()
    assert rec.open and isinstance(q.get_nowait(), EpisodeStart)
