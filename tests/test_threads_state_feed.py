"""The state-feed thread against real robot servers on loopback (both codecs), a silent port and garbage."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import zmq

from frankateach.codec import make_codec
from frankateach.network import Publisher
from frankateach.server_base import RobotServer
from oculus_server.robot_link import RobotLink
from oculus_server.state import SharedState
from oculus_server.threads.base import Supervisor
from oculus_server.threads.state_feed import StateFeedThread
from robot_formats.recording.records import RobotObservation
from tests.daemon_fakes import wait_for
from tests.robot_fakes import KinematicBackend, free_port_block


def _server(codec: str, backend: KinematicBackend) -> tuple[RobotServer, int]:
    port = free_port_block()
    server = RobotServer(backend, "127.0.0.1", codec=make_codec(codec), ports=(port, port + 1, port + 2))
    server.start()
    return server, port + 1


def _thread(state: SharedState, port: int, codec: str = "msgpack", **kw) -> tuple[StateFeedThread, Supervisor]:
    sv = Supervisor()
    t = StateFeedThread("127.0.0.1", port, make_codec(codec), sv, state.robot, state.counters, state.events,
                        state.rates, **kw)
    t.start()
    return t, sv


def _stop(t: StateFeedThread, sv: Supervisor) -> None:
    sv.stop.set()
    t.join(2.0)
    assert not t.is_alive()
    assert not sv.failures(), sv.failures()


@pytest.mark.parametrize("codec", ["msgpack", "pickle"])
def test_feed_states_arrive_at_the_servers_rate_and_are_recorded_in_order(codec: str):
    backend = KinematicBackend(pos=(0.4, 0.1, 0.3))
    server, feed_port = _server(codec, backend)
    state = SharedState()
    t, sv = _thread(state, feed_port, codec)
    try:
        assert wait_for(lambda: state.robot.feed_live(), 3.0), "the feed never became live"
        state.measured.take()
        time.sleep(1.0)
        states = state.measured.take()
    finally:
        _stop(t, sv)
        server.stop()
    assert not state.robot.feed_live()  # a stopped thread leaves the replies in charge
    print(f"{codec}: {len(states)} feed states in 1 s")
    assert 60 <= len(states) <= 130  # 100 Hz on a shared machine
    stamps = [o.state.timestamp for o in states]
    assert all(b > a for a, b in itertools.pairwise(stamps)), "feed states out of order"
    assert all(np.allclose(o.state.pos, (0.4, 0.1, 0.3)) for o in states)
    assert all(np.isnan(o.rtt_s) for o in states)  # no round trip: a PUB state
    assert state.robot.observation() is states[-1] or state.robot.observation().t_recv >= states[-1].t_recv
    assert "state-feed" in state.rates.snapshot() and state.counters.snapshot()["state_feed_states"] >= len(states)


def test_feed_states_carry_the_link_epoch_only_while_the_link_is_up():
    backend = KinematicBackend()
    server, feed_port = _server("msgpack", backend)
    state = SharedState()
    t, sv = _thread(state, feed_port)
    try:
        assert wait_for(lambda: state.robot.observation() is not None, 3.0)
        assert state.robot.observation().link_epoch == 0  # no reply yet: the epoch is unknown
        reply = RobotObservation(backend.read_state(), time.monotonic(), time.time(), 0.01, 3)
        state.robot.set_reply(reply, RobotLink(up=True, epoch=3))
        assert wait_for(lambda: (obs := state.robot.observation()) is not reply and obs.link_epoch == 3, 2.0)
        state.robot.set_link(RobotLink(up=False, epoch=3))  # an outage: the arm may be anywhere after it
        assert wait_for(lambda: state.robot.observation().link_epoch == 0, 2.0)
    finally:
        _stop(t, sv)
        server.stop()


def test_replies_are_recorded_only_while_the_feed_is_not_live():
    state = SharedState()
    backend = KinematicBackend()
    r1 = RobotObservation(backend.read_state(), 1.0, time.time(), 0.1, 1)
    state.robot.set_reply(r1, RobotLink(up=True, epoch=1))
    assert state.measured.take() == (r1,)
    state.robot.set_feed_live(True)
    f1 = state.robot.add_feed_state(backend.read_state(), 2.0, time.time())
    r2 = RobotObservation(backend.read_state(), 3.0, time.time(), 0.1, 1)
    state.robot.set_reply(r2, RobotLink(up=True, epoch=1))
    assert state.robot.observation() is r2  # the newest received is the reference
    state.robot.add_feed_state(backend.read_state(), 2.5, time.time())  # received before r2: not the reference
    assert state.robot.observation() is r2
    assert [o.t_recv for o in state.measured.take()] == [f1.t_recv, 2.5]  # the feed only


def test_no_feed_is_reported_once_then_a_server_that_starts_publishing_is_picked_up():
    port = free_port_block()
    state = SharedState()
    t, sv = _thread(state, port + 1, absent_after_s=0.3, timeout_s=0.2)
    try:
        assert wait_for(lambda: any(e.kind == "state_feed" for e in state.events.recent()), 3.0)
        (absent,) = [e for e in state.events.recent() if e.kind == "state_feed"]
        assert "no robot state feed" in absent.message and not state.robot.feed_live()
        assert "state-feed" not in state.rates.snapshot()  # an absent feed is no dead loop on the dashboard
        server = RobotServer(KinematicBackend(), "127.0.0.1", ports=(port, port + 1, port + 2))
        server.start()
        try:
            assert wait_for(state.robot.feed_live, 3.0), "a feed that starts later was not picked up"
        finally:
            server.stop()
        assert wait_for(lambda: not state.robot.feed_live(), 2.0), "a silent feed stayed live"
        kinds = [e.message for e in state.events.recent() if e.kind == "state_feed"]
        assert len(kinds) == 3 and "live" in kinds[1] and "silent" in kinds[2]
    finally:
        _stop(t, sv)


def test_unreadable_feed_messages_are_counted_and_never_fatal():
    port = free_port_block()
    pub = Publisher("127.0.0.1", port, hwm=100)
    state = SharedState()
    codec = make_codec("msgpack")
    t, sv = _thread(state, port)
    try:
        good = codec.encode_state_feed(KinematicBackend().read_state())

        def published() -> bool:
            for payload in (b"\x00garbage", b"robot_state \x80\x04junk", good):
                pub.publish(payload)
            return state.robot.feed_live()

        assert wait_for(published, 3.0)
        assert wait_for(lambda: state.counters.snapshot()["state_feed_errors"] >= 2, 2.0)
        assert t.is_alive()
    finally:
        _stop(t, sv)
        pub.close()


def test_the_thread_owns_and_closes_its_socket():
    port = free_port_block()
    state = SharedState()
    t, sv = _thread(state, port)
    time.sleep(0.1)
    _stop(t, sv)
    assert t._sock is not None and t._sock.closed
    with pytest.raises(zmq.ZMQError):
        t._sock.poll(0)
