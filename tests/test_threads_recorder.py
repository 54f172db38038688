"""The recording thread: a full queue never kills it, errors reach the next episode, and an
episode without robot data is never a success."""

from __future__ import annotations

import queue
import time

import numpy as np

from frankateach.messages import FrankaState
from oculus_server.robot_link import RobotLink
from oculus_server.state import SharedState
from oculus_server.threads.base import Supervisor
from oculus_server.threads.recorder import EpisodeStart, EpisodeStop, RecorderThread
from oculus_server.vr.source import SourceState, SourceStatus
from robot_formats.recording.records import RecordTick, RobotObservation


def _drain(q: queue.Queue) -> list:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def _robot(st: SharedState) -> None:
    state = FrankaState(np.array([0.4, 0, 0.3]), np.array([1.0, 0, 0, 0]), -1.0, time.time(), True, np.zeros(7))
    st.robot.set_reply(RobotObservation(state, time.monotonic(), time.time()), RobotLink(up=True))


def test_a_stalled_writer_never_makes_the_recorder_raise_and_keeps_start_stop_in_order():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=3)  # smaller than the control margin: even control items wait
    rec = RecorderThread(q, sv, st, hz=100.0, debounce_s=0.0)
    _robot(st)
    for _ in range(4):  # start, stop, start, stop with nothing drained
        st.episode.request("toggle")
        rec.step()
        rec.step()
    assert rec.control_waiting > 0 and st.counters.snapshot()["records_dropped"] >= 4  # counted, not raised
    items = _drain(q)
    for _ in range(3):
        rec.step()
        items += _drain(q)
    rec.finish()
    items += _drain(q)
    kinds = [type(i).__name__ for i in items if not isinstance(i, RecordTick)]
    assert kinds == ["EpisodeStart", "EpisodeStop", "EpisodeStart", "EpisodeStop"] and rec.control_waiting == 0


def test_error_events_while_idle_reach_the_next_episode():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=100)
    rec = RecorderThread(q, sv, st, hz=100.0)
    _robot(st)
    st.events.add("error", "could not move a.mcap into success/")
    st.events.add("robot_link", "link up")  # not an error: not carried
    rec.step()  # idle
    st.episode.request("start")
    rec.step()
    ticks = [i for i in _drain(q) if isinstance(i, RecordTick)]
    kinds = [e.kind for e in ticks[0].events]
    assert kinds == ["error", "episode_start"] and "success/" in ticks[0].events[0].message


def test_vr_rejections_are_recorded_as_counters():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=100)
    rec = RecorderThread(q, sv, st, hz=100.0)
    st.vr.set_status(
        SourceStatus(SourceState.CONNECTED, samples=10, rejected=4, reject_reasons={"bad_pose": 3, "parse": 1})
    )
    st.episode.request("start")
    rec.step()
    tick = next(i for i in _drain(q) if isinstance(i, RecordTick))
    assert tick.counters["vr_rejected"] == 4
    assert tick.counters["vr_rejected_bad_pose"] == 3 and tick.counters["vr_rejected_parse"] == 1


def test_an_episode_in_which_the_robot_never_answered_is_not_a_success():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=100)
    rec = RecorderThread(q, sv, st, hz=100.0, debounce_s=0.0, robot_label="the robot at 10.0.0.9:8901")
    st.episode.request("start")
    rec.step()
    st.episode.request("success")  # B pressed, but nothing ever came from the robot
    rec.step()
    st.episode.request("stop")
    rec.step()
    items = _drain(q)
    assert isinstance(items[0], EpisodeStart)
    stop = items[-1]
    assert isinstance(stop, EpisodeStop) and not stop.success and stop.outcome == "failure"
    assert "the robot at 10.0.0.9:8901 never answered" in stop.reason
    assert any(e.kind == "error" and "never answered" in e.message for e in stop.events)


def test_a_robot_state_from_before_the_episode_with_the_link_down_is_not_robot_data():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=100)
    rec = RecorderThread(q, sv, st, hz=100.0, debounce_s=0.0)
    _robot(st)
    st.robot.set_link(RobotLink(up=False, failures=5))  # the robot went away before the episode
    st.episode.request("start")
    rec.step()
    rec.finish()
    stop = _drain(q)[-1]
    assert isinstance(stop, EpisodeStop) and stop.outcome == "shutdown" and "never answered" in stop.reason


def _sent_command(st: SharedState, seq: int) -> None:
    from frankateach.messages import FrankaAction
    from robot_formats.recording.records import ControlMode, RobotCommand

    target = FrankaAction(np.array([0.4, 0, 0.3]), np.array([1.0, 0, 0, 0]), -1.0, False, time.time())
    cmd = RobotCommand(seq, time.monotonic(), np.zeros(7), target, ControlMode.REAL_TIME, True)
    st.sent.mark_sent(cmd, time.monotonic())


def test_every_sent_command_reaches_a_tick_or_the_stop_even_when_ticks_are_dropped():
    sv, st = Supervisor(), SharedState()
    q: queue.Queue = queue.Queue(maxsize=20)
    rec = RecorderThread(q, sv, st, hz=100.0, debounce_s=0.0)
    _robot(st)
    _sent_command(st, 0)  # before the episode: not part of it
    st.episode.request("start")
    rec.step()
    for k in range(1, 4):
        _sent_command(st, k)
    for _ in range(12):  # fill the queue up to the control margin: this tick is dropped
        q.put_nowait(object())
    rec.step()
    assert st.counters.snapshot()["records_dropped"] == 1
    for _ in range(12):
        q.get_nowait()
    _sent_command(st, 4)
    rec.step()  # carries the dropped tick's commands
    _sent_command(st, 5)  # after the last tick: goes with the stop
    rec.finish()
    items = _drain(q)
    ticks = [i for i in items if isinstance(i, RecordTick)]
    (stop,) = [i for i in items if isinstance(i, EpisodeStop)]
    recorded = [s.send_seq for t in ticks for s in (t.sent_commands or ())] + [s.send_seq for s in stop.sent_commands]
    assert recorded == [1, 2, 3, 4, 5]
    assert all(t.robot_states is not None for t in ticks)
