"""The shared state's parts: each is drained once, bounded, counts what it pushes out, and the
composition wires the parts together as the daemon uses them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from frankateach.messages import FrankaAction, FrankaState
from oculus_server.robot_link import RobotLink
from oculus_server.state import Counters, MeasuredLog, RobotChannel, SendLog, SharedState
from oculus_server.state.drain import DrainLog
from robot_formats.recording.records import ControlMode, RobotCommand, RobotObservation


def _state(x: float = 0.4) -> FrankaState:
    return FrankaState(np.array([x, 0, 0.3]), np.array([1.0, 0, 0, 0]), -1.0, time.time(), True, np.zeros(7))


def _cmd(seq: int, created: float, vr_t_recv: float = float("nan")) -> RobotCommand:
    target = FrankaAction(np.array([0.4, 0.0, 0.3]), np.array([1.0, 0, 0, 0]), -1.0, False, 0.0)
    return RobotCommand(seq, created, np.zeros(7), target, ControlMode.REAL_TIME, True, vr_t_recv=vr_t_recv)


def test_a_drain_log_gives_each_item_once_and_counts_what_a_stalled_consumer_lost():
    counters = Counters()
    log: DrainLog[int] = DrainLog(3, counters, "sent_unrecorded")
    for i in range(5):
        log.append(i)
    assert log.take() == (2, 3, 4)
    assert log.take() == ()
    assert counters.snapshot()["sent_unrecorded"] == 2


def test_replies_are_recorded_until_the_feed_is_live_and_a_later_reply_stays_newest():
    counters = Counters()
    measured = MeasuredLog(counters)
    robot = RobotChannel(counters, measured)
    reply = RobotObservation(_state(), 10.0, 1.7e9, 0.01, 1)
    robot.set_reply(reply, RobotLink(up=True, epoch=1))
    assert measured.take() == (reply,) and robot.observation() is reply
    assert not reply.state.pos.flags.writeable  # published values are read-only
    robot.set_feed_live(True)
    robot.set_reply(RobotObservation(_state(), 11.0, 1.7e9, 0.01, 1), RobotLink(up=True, epoch=1))
    assert measured.take() == ()  # the feed, not the replies, is recorded while it is live
    older = robot.add_feed_state(_state(0.5), 10.5, 1.7e9)
    assert robot.observation() is not older and robot.observation().t_recv == 11.0
    assert older.link_epoch == 1 and measured.take() == (older,)
    robot.set_link(RobotLink(up=False, epoch=1))
    assert robot.add_feed_state(_state(), 12.0, 1.7e9).link_epoch == 0  # link down: never compared
    assert counters.snapshot()["state_feed_states"] == 2


def test_sent_commands_are_numbered_in_send_order_across_threads():
    counters = Counters()
    sent = SendLog(counters)
    now = time.monotonic()

    def send(base: int) -> None:
        for i in range(200):
            sent.mark_sent(_cmd(base + i, now), now)

    threads = [threading.Thread(target=send, args=(k * 1000,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = sent.take()
    assert [s.send_seq for s in log] == list(range(600))
    assert counters.snapshot()["commands_sent"] == 600
    assert set(sent.latency_figures()) == {"cmd_age_p50_ms", "cmd_age_p99_ms", "cmd_age_max_ms"}


def test_the_composition_shares_one_set_of_counters_and_merges_latencies():
    st = SharedState()
    cmd = _cmd(0, 5.0, vr_t_recv=4.99)
    st.commands.set_command(cmd)
    st.sent.mark_sent(cmd, 5.002)
    assert st.commands.mode() is ControlMode.REAL_TIME
    figures = st.latency_figures()
    assert figures["cmd_age_p50_ms"] == pytest.approx(2.0) and figures["vr_to_cmd_p50_ms"] == pytest.approx(10.0)
    st.robot.set_reply(RobotObservation(_state(), 1.0, 1.7e9), RobotLink(up=True))
    st.sim.take()
    counts = st.counters.snapshot()
    assert counts["commands_sent"] == 1 and st.measured.take() != ()
    ev = st.events.add("error", "boom", where="test")
    assert st.events.take() == (ev,) and st.events.take() == () and st.events.last_error() == "boom"
    assert st.events.recent() == (ev,)
