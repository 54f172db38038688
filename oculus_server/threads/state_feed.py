"""State-feed thread: the robot server's measured state at its own rate (100 Hz on our servers).

The robot server publishes every measured `FrankaState` on its state port (8900, Franka-Teach's
layout: control port − 1; in pickle mode with their ``robot_state `` topic prefix, which the
codec strips). This thread owns that SUB socket and reads every message (no conflation, a buffer
for `HWM` messages), so that:

* each state is recorded (`RobotChannel.add_feed_state` → the recorder's measured-state log →
  ``/robot/ee_pose``, ``/robot/joint_states`` at the feed's rate, stamped with the measurement
  time), and
* the newest one is the control reference: the control thread judges it with `StateCheck` like
  any other measured state, so control stays REAL-TIME instead of waiting for request replies
  (one per round trip, ~150 ms on a deoxys server).

The feed is *live* from its first readable message until none has come for `timeout_s`; while it
is not (a server without a feed, or one that stopped publishing), the request replies are
recorded instead and serve as the reference as before (PREDICTIVE between them). The socket
reconnects by itself, so a restarted server's feed is picked up again. Unreadable messages are
counted (``state_feed_errors``) and logged at most once per `ERROR_LOG_PERIOD_S`; never fatal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import zmq

from frankateach.codec import Codec
from frankateach.errors import FrankaTeachError
from frankateach.network import sub_socket
from frankateach.timing import RateStats
from oculus_server.state import Counters, EventLog, RateBoard, RobotChannel
from oculus_server.threads.base import DaemonThread, Supervisor

log = logging.getLogger(__name__)

HWM = 256  # feed messages buffered while this thread is not scheduled (2.5 s at 100 Hz)
DEFAULT_TIMEOUT_S = 0.25  # no feed message for this long: the feed is not live
ABSENT_AFTER_S = 2.0  # no feed message at all this long after start: say so once
ERROR_LOG_PERIOD_S = 10.0  # at most one warning about unreadable messages this often


class StateFeedThread(DaemonThread):
    """Subscribes to the measured-state feed on `host:port`; sole owner of that socket.

    Args:
        host, port: where the robot server publishes its state feed.
        codec: the wire codec (`decode_state_feed`).
        supervisor: the daemon's.
        robot: where states go; counters, events, rates: the daemon's.
        timeout_s: no message for this long → the feed is not live (replies take over), seconds.
        poll_s: longest wait for a message before checking the stop event and the timeout, s.
        absent_after_s: no message at all this long after start: say once that there is no feed.
        clock, wall: monotonic and wall clocks (injectable for tests), seconds.
        realtime_priority: SCHED_FIFO priority (0: normal scheduling).
    """

    def __init__(
        self,
        host: str,
        port: int,
        codec: Codec,
        supervisor: Supervisor,
        robot: RobotChannel,
        counters: Counters,
        events: EventLog,
        rates: RateBoard,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        poll_s: float = 0.05,
        absent_after_s: float = ABSENT_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        realtime_priority: int = 0,
    ) -> None:
        super().__init__("state-feed", supervisor, realtime_priority)
        self.robot, self.counters, self.events, self.rates = robot, counters, events, rates
        self.host, self.port, self.codec = host, int(port), codec
        self.timeout_s = timeout_s
        self.absent_after_s = absent_after_s
        self.poll_s = min(poll_s, timeout_s / 2)
        self.clock, self.wall = clock, wall
        self.stats = RateStats("state-feed", 0.0)  # shown (and recorded) once the feed has spoken
        self._sock: zmq.Socket | None = None
        self.live = False
        self.received = 0
        self.errors = 0
        self._last_msg = float("-inf")
        self._t_start = float("nan")
        self._absent_told = False
        self._last_error_log = float("-inf")

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def body(self) -> None:
        self._sock = sub_socket(self.host, self.port, conflate=False, hwm=HWM)
        self._t_start = self.clock()
        while not self.stop_event.is_set():
            if self._sock.poll(int(self.poll_s * 1000), zmq.POLLIN):
                self._drain(self._sock)
            self._check_timeout(self.clock())

    def _drain(self, sock: zmq.Socket) -> None:
        """Reads every message waiting on `sock` (at most `HWM`, so the stop event is seen)."""
        for _ in range(HWM):
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.handle(data)

    def handle(self, data: bytes) -> None:
        """One feed message: decoded, handed to the shared state (or counted as unreadable)."""
        now = self.clock()
        try:
            st = self.codec.decode_state_feed(data)
        except FrankaTeachError as exc:  # malformed, or not a state
            self.errors += 1
            self.counters.count("state_feed_errors")
            if now - self._last_error_log >= ERROR_LOG_PERIOD_S:
                self._last_error_log = now
                log.warning("unreadable message on the state feed %s (%d so far): %s", self.where, self.errors, exc)
            return
        self.received += 1
        self._last_msg = now
        self.stats.tick(now)
        self.robot.add_feed_state(st, now, self.wall())
        if not self.live:
            if self.received == 1:
                self.rates.register(self.stats)
            self.live = True
            self.robot.set_feed_live(True)
            msg = f"robot state feed live on {self.where}: measured state at the server's rate"
            log.info("%s", msg)
            self.events.add("state_feed", msg, live=True, port=self.port)

    def _check_timeout(self, now: float) -> None:
        if self.live and now - self._last_msg > self.timeout_s:
            self.live = False
            self.robot.set_feed_live(False)
            msg = (f"robot state feed {self.where} silent for {now - self._last_msg:.2f} s: "
                   "robot state from request replies until it returns")
            log.warning("%s", msg)
            self.events.add("state_feed", msg, live=False, port=self.port)
        elif not self._absent_told and self.received == 0 and now - self._t_start >= self.absent_after_s:
            self._absent_told = True
            msg = (f"no robot state feed on {self.where} after {self.absent_after_s:g} s: robot state from "
                   "request replies only (PREDICTIVE between them); still listening")
            log.info("%s", msg)
            self.events.add("state_feed", msg, live=False, port=self.port)

    def cleanup(self) -> None:
        if self.live:
            self.robot.set_feed_live(False)
        if self._sock is not None:
            self._sock.close(linger=0)
