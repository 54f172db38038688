"""Robot-communication thread: sends the freshest command, as fast as the robot answers.

It waits (with a timeout of one control period) for a command; stale commands queued behind a
fresher one are dropped and counted. A command that is already 90 % of a control period old is
swapped for the next one (due within milliseconds), so what leaves for the robot is never older
than one control period. With no command to send it asks for the state instead, so
the measured pose stays fresh while the operator is not moving the arm. Failures (timeouts, error
replies, garbage) mark the link down, are counted and shown, and the thread keeps retrying:
the link comes back by itself when the robot server returns.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Callable

from frankateach.client import RobotClient
from frankateach.errors import FrankaTeachError
from frankateach.timing import RateStats
from oculus_server.command import RobotCommand
from oculus_server.recording.record import RobotObservation
from oculus_server.state import RobotLink, SharedState
from oculus_server.threads.base import DaemonThread, Supervisor
from oculus_server.threads.queues import put_freshest, take_newest

log = logging.getLogger(__name__)


class RobotCommThread(DaemonThread):
    """Owns the robot client: only this thread talks to the robot server."""

    def __init__(
        self,
        client_factory: Callable[[], RobotClient],
        commands: queue.Queue,
        responses: queue.Queue,
        supervisor: Supervisor,
        state: SharedState,
        idle_poll_s: float = 0.05,
        retry_s: float = 0.2,
        max_age_s: float | None = None,
        realtime_priority: int = 0,
    ) -> None:
        super().__init__("robot", supervisor, state, realtime_priority)
        self.client_factory = client_factory
        self.commands = commands
        self.responses = responses
        self.idle_poll_s = idle_poll_s
        self.retry_s = retry_s
        # A command about to be one control period old is replaced by the next one, which the
        # control thread is due to make within the next few milliseconds.
        self.max_age_s = idle_poll_s if max_age_s is None else max_age_s
        self.stats = RateStats("robot", 0.0)
        state.register_rate(self.stats)
        self.client: RobotClient | None = None
        self._failures = 0
        self._errors = 0

    def body(self) -> None:
        self.client = self.client_factory()
        while not self.stop_event.is_set():
            cmd, skipped = take_newest(self.commands, self.idle_poll_s)
            if cmd is not None and time.monotonic() - cmd.created > 0.9 * self.max_age_s:
                fresher, more = take_newest(self.commands, 0.25 * self.max_age_s)
                if fresher is not None:
                    cmd, skipped = fresher, skipped + more + 1
            if skipped:
                self.state.count("commands_dropped", skipped)
            self.state.set_queue_depth("command", self.commands.qsize())
            self._exchange(cmd)

    def _exchange(self, cmd: RobotCommand | None) -> None:
        assert self.client is not None
        t0 = time.monotonic()
        self.stats.tick(t0)
        try:
            if cmd is not None:
                self.state.mark_sent(cmd, t0)
                reply = self.client.send(cmd.target)
            else:
                reply = self.client.get_state()
        except FrankaTeachError as exc:
            self._on_failure(exc)
            return
        now = time.monotonic()
        obs = RobotObservation(state=reply, t_recv=now, t_recv_wall=time.time(), rtt_s=now - t0)
        last, mean, p95 = self.client.latency_stats()
        if self._failures:
            self.state.add_event("robot_link", "robot link restored", up=True)
            log.info("robot link restored after %d failed requests", self._failures)
        self._failures = 0
        link = RobotLink(True, last, mean, p95, 0, self.client.timeouts, self._errors, "")
        self.state.set_robot(obs, link)
        put_freshest(self.responses, obs)
        self.stats.work(now - t0)

    def _on_failure(self, exc: FrankaTeachError) -> None:
        assert self.client is not None
        self._failures += 1
        self._errors += 1
        old = self.state.link()
        msg = f"{exc.__class__.__name__}: {exc}"
        if self._failures == 1:
            self.state.add_event("robot_link", f"robot link down: {msg}", up=False)
            log.warning("robot link down: %s", msg)
        self.state.set_link(
            RobotLink(False, old.rtt_last_s, old.rtt_mean_s, old.rtt_p95_s, self._failures,
                      self.client.timeouts, self._errors, msg)
        )
        self.stop_event.wait(min(self.retry_s * self._failures, 1.0))

    def cleanup(self) -> None:
        # The robot keeps holding its last target: nothing more is sent.
        if self.client is not None:
            self.client.close()
