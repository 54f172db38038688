"""Robot-communication thread: sends the freshest gated command, as fast as the robot answers.

It waits (with a timeout of one control period) for a command; stale commands queued behind a
fresher one are dropped and counted. A command that is already 90 % of a control period old is
swapped for the next one (due within milliseconds). With no command to send it asks for the
state instead, so the measured pose stays fresh while the operator is not moving the arm.

What it sends is checked once more (`safety.gate.check_gated`): only a `GatedCommand` — which
only the command gate can make — with a finite target inside the box goes on the wire; anything
else is a programming error that stops the daemon. It never sends a command older than
``max_command_age_periods`` control periods (``expired``), nor one made before the link was
re-established (``stale_link``: each outage ends a *link epoch*; the first reply after it starts
the next, and the control path then holds the freshly measured pose). Both are counted and
recorded on ``/safety``.

Failures (timeouts, error replies, garbage) mark the link down, are counted and shown, and the
thread keeps retrying: the link comes back by itself when the robot server returns.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable

from frankateach.client import RobotClient
from frankateach.errors import FrankaTeachError
from frankateach.timing import RateStats
from oculus_server.robot_link import RobotLink
from oculus_server.safety import kinds
from oculus_server.safety.config import SafetyConfig
from oculus_server.safety.gate import GatedCommand, check_gated
from oculus_server.state import Counters, EventLog, RateBoard, RobotChannel, SafetyChannel, SendLog
from oculus_server.threads.base import DaemonThread, Supervisor
from oculus_server.threads.queues import take_newest
from robot_formats.recording.records import RobotObservation, SafetyRecord

log = logging.getLogger(__name__)


class RobotCommThread(DaemonThread):
    """Owns the robot client: only this thread talks to the robot server.

    Args:
        client_factory: builds the robot client (called in the thread).
        commands: queue of `GatedCommand`s from the control thread.
        supervisor: the daemon's.
        robot: where each reply and the link's health go.
        sent: logs every command sent (for the recorder).
        counters, interventions, events, rates: the daemon's counters, safety log, events, rates.
        safety: the limits (box for the last check, command age limit).
        idle_poll_s: one control period: how long to wait for a command, seconds.
        retry_s: first back-off after a failure (grows per failure up to 1 s), seconds.
        max_age_s: a command older than 0.9 × this is swapped for a fresher one if one comes
            within a quarter of it (default: one control period).
        realtime_priority: SCHED_FIFO priority (0: normal scheduling).
    """

    def __init__(
        self,
        client_factory: Callable[[], RobotClient],
        commands: queue.Queue,
        supervisor: Supervisor,
        *,
        robot: RobotChannel,
        sent: SendLog,
        counters: Counters,
        interventions: SafetyChannel,
        events: EventLog,
        rates: RateBoard,
        safety: SafetyConfig | None = None,
        idle_poll_s: float = 0.05,
        retry_s: float = 0.2,
        max_age_s: float | None = None,
        realtime_priority: int = 0,
    ) -> None:
        super().__init__("robot", supervisor, realtime_priority)
        self.client_factory = client_factory
        self.commands = commands
        self.robot, self.sent, self.counters = robot, sent, counters
        self.interventions, self.events = interventions, events
        self.safety = safety if safety is not None else SafetyConfig()
        self.idle_poll_s = idle_poll_s
        self.retry_s = retry_s
        # A command about to be one control period old is replaced by the next one, which the
        # control thread is due to make within the next few milliseconds.
        self.max_age_s = idle_poll_s if max_age_s is None else max_age_s
        self.expire_s = self.safety.max_command_age_periods * idle_poll_s
        self.stats = RateStats("robot", 0.0)
        rates.register(self.stats)
        self.client: RobotClient | None = None
        self._failures = 0
        self._errors = 0
        self.epoch = 0  # +1 with the first reply after start and after every outage
        self._new_epoch = True

    def body(self) -> None:
        self.client = self.client_factory()
        while not self.stop_event.is_set():
            item, skipped = take_newest(self.commands, self.idle_poll_s)
            cmd = self._check(item)
            if cmd is not None and time.monotonic() - cmd.command.created > 0.9 * self.max_age_s:
                fresher, more = take_newest(self.commands, 0.25 * self.max_age_s)
                if fresher is not None:
                    cmd, skipped = self._check(fresher), skipped + more + 1
            if skipped:
                self.counters.count("commands_dropped", skipped)
            self.counters.set_queue_depth("command", self.commands.qsize())
            self._exchange(self._usable(cmd))

    def _check(self, item: object) -> GatedCommand | None:
        """The queue item as a gated command (raises SafetyError for anything else)."""
        if item is None:
            return None
        return check_gated(item, self.safety.workspace_min, self.safety.workspace_max)

    def _usable(self, cmd: GatedCommand | None) -> GatedCommand | None:
        """`cmd`, or None if it must not be sent (made for an older link epoch, or too old)."""
        if cmd is None:
            return None
        age = time.monotonic() - cmd.command.created
        if cmd.link_epoch != self.epoch or self._new_epoch:
            self._refuse(kinds.STALE_LINK, f"command {cmd.command.seq} was made before the robot link was "
                         f"re-established (epoch {cmd.link_epoch}, now {self.epoch}); not sent", cmd)
            return None
        if age > self.expire_s:
            self._refuse(kinds.EXPIRED, f"command {cmd.command.seq} is {age * 1e3:.0f} ms old "
                         f"(limit {self.expire_s * 1e3:.0f} ms); not sent", cmd)
            return None
        return cmd

    def _refuse(self, kind: str, message: str, cmd: GatedCommand) -> None:
        pos = tuple(float(v) for v in cmd.command.target.pos)
        self.interventions.add([SafetyRecord(kind, message, time.time(), cmd.command.seq, cmd.command.source, pos)])
        log.debug(message)

    def _exchange(self, cmd: GatedCommand | None) -> None:
        assert self.client is not None
        t0 = time.monotonic()
        self.stats.tick(t0)
        try:
            if cmd is not None:
                self.sent.mark_sent(cmd.command, t0)
                reply = self.client.send(cmd.command.target)
            else:
                reply = self.client.get_state()
        except FrankaTeachError as exc:
            self._on_failure(exc)
            return
        now = time.monotonic()
        if self._new_epoch:
            self._new_epoch = False
            self.epoch += 1
        obs = RobotObservation(state=reply, t_recv=now, t_recv_wall=time.time(), rtt_s=now - t0, link_epoch=self.epoch)
        last, mean, p95 = self.client.latency_stats()
        if self._failures:
            self.events.add("robot_link", "robot link restored", up=True, epoch=self.epoch)
            log.info("robot link restored after %d failed requests", self._failures)
        self._failures = 0
        link = RobotLink(True, last, mean, p95, 0, self.client.timeouts, self._errors, "", self.epoch)
        self.robot.set_reply(obs, link)
        self.stats.work(now - t0)

    def _on_failure(self, exc: FrankaTeachError) -> None:
        assert self.client is not None
        self._failures += 1
        self._errors += 1
        self._new_epoch = True  # whatever comes back next is a new link: nothing older is sent
        old = self.robot.link()
        msg = f"{exc.__class__.__name__}: {exc}"
        if self._failures == 1:
            self.events.add("robot_link", f"robot link down: {msg}", up=False)
            log.warning("robot link down: %s", msg)
        self.robot.set_link(
            RobotLink(False, old.rtt_last_s, old.rtt_mean_s, old.rtt_p95_s, self._failures,
                      self.client.timeouts, self._errors, msg, self.epoch)
        )
        self.stop_event.wait(min(self.retry_s * self._failures, 1.0))

    def cleanup(self) -> None:
        # The robot keeps holding its last target: nothing more is sent.
        if self.client is not None:
            self.client.close()
