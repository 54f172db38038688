"""Recording thread (40 Hz): one `RecordTick` per tick, independent of the robot's speed.

Each tick snapshots the newest VR sample, measured robot state, last command, camera frames that
arrived since the previous tick, control mode, events and (about once a second) loop timing and
counters (VR rejections among them), and `put_nowait`s it on the MCAP queue. A full queue drops
the tick and counts it; the tick's `seq` still advances, so the gap is visible in the file.
Episode requests (A = start/stop, B = success) are turned here into `EpisodeStart`/`EpisodeStop`
items on the same queue, which keep a reserved margin; should even that be full (a stalled
writer), they wait in order in the thread and go first on a later tick, never raising.
A toggle within `debounce_s` of an episode's start is ignored, so a double press, or the A press
of a scripted demo run with --record-on-start, cannot end an episode that has just begun.
Error events (and the start-up note on scheduling) that happen while no episode is open are kept
for the next one. An episode in
which the robot never answered is never called a success.

Every measured state (the state feed's, or the replies') and every command the robot thread sent
since the previous tick go into the tick (`robot_states`, `sent_commands`), so each is recorded
once whatever the scheduling; sent commands of a dropped tick go into the next one, and those sent
after the last tick of an episode into its `EpisodeStop`.

The live view (`live`): while a viewer is subscribed every tick is also offered to the live sink
(a `put_nowait`; it maps and publishes in its own thread), and between episodes ticks are built
for it alone; with no viewer nothing is built or offered.
"""

from __future__ import annotations

import logging
import math
import queue
import time
from collections import deque
from typing import Protocol

from oculus_server.constants import RECORD_FREQ
from oculus_server.state import SharedState
from oculus_server.threads.base import RateThread, Supervisor
from oculus_server.threads.overrun import OverrunReporter
from robot_formats.recording.records import EpisodeStart, EpisodeStop, RecordTick, SentCommand

log = logging.getLogger(__name__)

CONTROL_MARGIN = 8  # queue slots kept free for episode start/stop items
KEPT_WHILE_IDLE = ("scheduling",)  # event kinds (besides errors) kept for the next episode


def kept_while_idle(kind: str) -> bool:
    """Whether an event of `kind` that happens while no episode is open goes into the next one."""
    return "error" in kind or kind in KEPT_WHILE_IDLE


class LiveTicks(Protocol):
    """Where the live view takes ticks (`oculus_server.threads.live_sink.LiveSinkThread`)."""

    @property
    def wanted(self) -> bool:
        """A viewer is subscribed (a lock-free read)."""
        ...

    def offer_tick(self, tick: RecordTick) -> None:
        """Queues a tick for the viewers; never blocks."""
        ...


class RecorderThread(RateThread):
    """Builds record ticks; never touches the MCAP writer itself."""

    def __init__(
        self,
        mcap_queue: queue.Queue,
        supervisor: Supervisor,
        state: SharedState,
        hz: float = RECORD_FREQ,
        enabled: bool = True,
        record_on_start: bool = False,
        task: str = "",
        timing_period_s: float = 1.0,
        debounce_s: float = 1.0,
        realtime_priority: int = 0,
        robot_label: str = "the robot",
        overruns: OverrunReporter | None = None,
        live: LiveTicks | None = None,
    ) -> None:
        super().__init__("recording", hz, supervisor, state.rates, realtime_priority=realtime_priority,
                         overruns=overruns)
        self.state = state  # the recorder reads every part
        self.queue = mcap_queue
        self.robot_label = robot_label
        self.live = live  # the live view: every tick while a viewer is subscribed, episode or not
        self._live_seq = 0
        self._last_live_sim: object = None
        self._pending_control: deque[object] = deque()  # control items waiting for queue room
        self._idle_errors: deque = deque(maxlen=32)  # error events while no episode is open
        self._sent_carry: tuple[SentCommand, ...] = ()  # sent commands of a dropped tick
        self.enabled = enabled
        self.task = task
        self.timing_period_s = timing_period_s
        self.debounce_s = debounce_s
        self._opened_at = float("-inf")
        self._robot_at_open: object = None
        self._robot_seen = False
        self.seq = 0
        self.open = False
        self.success = False
        self._next_timing = 0.0
        self._wall_at_tick = time.time()
        # --record-on-start opens the episode once the robot has answered (at most 2 s after
        # start), so a recording does not begin with ticks that have no robot state.
        self._pending_start: float | None = (time.monotonic() + 2.0) if enabled and record_on_start else None

    # -- episodes -------------------------------------------------------------------------------
    def _control(self, item: object) -> None:
        self._pending_control.append(item)
        self._send_control()

    def _send_control(self) -> bool:
        """Queues waiting control items in order; True when none is left waiting."""
        while self._pending_control:
            try:
                self.queue.put_nowait(self._pending_control[0])
            except queue.Full:  # only with a stalled writer: ticks leave CONTROL_MARGIN free
                return False
            self._pending_control.popleft()
        return True

    def _start_episode(self) -> None:
        now = time.time()
        name = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1000) % 1000:03d}"
        if self.task:
            name += "_" + "".join(c if c.isalnum() else "-" for c in self.task)[:40]
        self.seq = 0
        self.open = True
        self._opened_at = time.monotonic()
        self.success = False
        self._next_timing = 0.0
        self._robot_at_open = self.state.robot.observation()
        self._robot_seen = False
        self.state.measured.take()  # the episode records what happens from now on
        self._take_sent()
        self._control(EpisodeStart(name=name, t_wall=now))
        self.state.events.add("episode_start", f"episode {name} started", name=name)
        log.info("episode %s started", name)

    def _note_robot(self, obs: object) -> None:
        """Marks the episode as having robot data: a new measured state, or the link up."""
        if not self._robot_seen and obs is not None and (obs is not self._robot_at_open or self.state.robot.link().up):
            self._robot_seen = True

    def _stop_episode(self, outcome: str | None = None, reason: str = "") -> None:
        self._note_robot(self.state.robot.observation())
        if not self._robot_seen:
            why = f"{self.robot_label} never answered during this episode: it holds no robot data"
            self.state.events.add("error", why, robot=self.robot_label)
            log.error("episode: %s", why)
            if self.success:
                self.success = False
                outcome = "failure" if outcome in (None, "success") else outcome
            reason = f"{reason}; {why}" if reason else why
        outcome = outcome or ("success" if self.success else "failure")
        self.state.events.add("episode_stop", f"episode stopped ({outcome})", outcome=outcome)
        events = self.state.events.take()  # the stop itself among them: written before closing
        self._control(EpisodeStop(outcome=outcome, success=self.success, reason=reason, events=events,
                                  sent_commands=self._take_sent()))
        self.open = False
        log.info("episode stopped (%s)", outcome)

    def _handle_requests(self) -> None:
        for req in self.state.episode.take_requests():
            if not self.enabled:
                continue
            if req == "success":
                if self.open:
                    self.success = True
                    self.state.episode.update(success=True)
                    self.state.events.add("success", "episode marked successful")
            elif req == "start" or (req == "toggle" and not self.open):
                if not self.open:
                    self._start_episode()
            elif req in ("stop", "toggle") and self.open:
                if req == "toggle" and time.monotonic() - self._opened_at < self.debounce_s:
                    # A press right after an episode opened (e.g. by --record-on-start, or a
                    # double press) would throw the episode away: ignore it.
                    log.info("episode button ignored: episode opened %.2f s ago", time.monotonic() - self._opened_at)
                    continue
                self._stop_episode()

    # -- ticks ----------------------------------------------------------------------------------
    def _build(self, live: bool = False) -> RecordTick:
        """This tick's snapshot; `live`: between episodes, for the live view only (error events
        stay kept for the next episode, the simulator's state is only looked at)."""
        now = self.ticker.last_tick  # the wake-up time: what this tick stands for
        if math.isnan(now):  # stepped outside the ticker (tests, a first call)
            now = time.monotonic()
        wall = self._wall_at_tick
        rates, counters = {}, {}
        if now >= self._next_timing:
            self._next_timing = now + self.timing_period_s
            rates = self.state.rates.snapshot()
            counters = self.state.counters.snapshot()
            counters.update(self.state.latency_figures())
            link = self.state.robot.link()
            counters.update(rtt_mean_ms=link.rtt_mean_s * 1e3, rtt_p95_ms=link.rtt_p95_s * 1e3)
            vrs = self.state.vr.status()
            counters["vr_rejected"] = vrs.rejected
            for why, n in vrs.reject_reasons.items():
                counters[f"vr_rejected_{why}"] = n
        events = self.state.events.take()
        sim_state = None
        if live:
            self._idle_errors.extend(e for e in events if kept_while_idle(e.kind))
            sim_state = self.state.sim.peek()
            if sim_state is self._last_live_sim:
                sim_state = None
            else:
                self._last_live_sim = sim_state
        else:
            if self._idle_errors:
                events = (*self._idle_errors, *events)
                self._idle_errors.clear()
            sim_state = self.state.sim.take()  # newest only; kept while idle for the next episode
        robot = self.state.robot.observation()
        self._note_robot(robot)
        return RecordTick(
            seq=self._live_seq if live else self.seq,
            t_mono=now,
            t_wall=wall,
            vr=self.state.vr.sample(),
            robot=robot,
            command=self.state.commands.command(),
            mode=self.state.commands.mode(),
            cameras=self.state.cameras.take_new(),
            events=events,
            rates=rates,
            counters=counters,
            safety=self.state.safety.take(),
            sim_state=sim_state,
            robot_states=self.state.measured.take(),
            sent_commands=self._take_sent(),
            assist=self.state.assist.take(),
        )

    def _take_sent(self) -> tuple[SentCommand, ...]:
        """Commands sent since the previous tick, after those of a dropped tick."""
        carried, self._sent_carry = self._sent_carry, ()
        return carried + self.state.sent.take()

    def _flush_tick(self) -> None:
        tick = self._build()
        self.seq += 1
        if self.live is not None:
            self.live.offer_tick(tick)  # never blocks; nothing at all without a viewer
        if not self._send_control() or self.queue.qsize() >= self.queue.maxsize - CONTROL_MARGIN:
            self._dropped(tick)
            return
        try:
            self.queue.put_nowait(tick)
        except queue.Full:
            self._dropped(tick)
            return
        self.state.counters.count("records_queued")

    def _dropped(self, tick: RecordTick) -> None:
        """Counts a tick that found no room; its sent commands go into the next one."""
        self.state.counters.count("records_dropped")
        self._sent_carry = tuple(tick.sent_commands or ())

    def step(self) -> None:
        self._wall_at_tick = time.time()
        if self._pending_start is not None and (
            self.state.robot.observation() is not None or time.monotonic() >= self._pending_start
        ):
            self._pending_start = None  # --record-on-start: once the robot answers (or 2 s)
            self.state.episode.request("start")
        self._handle_requests()
        if self.open:
            self._flush_tick()
        elif self.live is not None and self.live.wanted:  # between episodes, for a viewer only
            self._send_control()
            self.live.offer_tick(self._build(live=True))
            self._live_seq += 1
        else:
            self._send_control()
            self.state.cameras.take_new()  # nothing to record: don't let frames pile up
            self.state.measured.take()
            self._take_sent()
            self._idle_errors.extend(e for e in self.state.events.take() if kept_while_idle(e.kind))
            self.state.safety.take()
            self.state.assist.take()
        self.state.counters.set_queue_depth("mcap", self.queue.qsize())

    def finish(self, reason: str = "daemon stopped") -> None:
        """Called by the daemon after the thread stopped: closes an open episode as 'shutdown'.

        `reason` becomes the file's `ended_by` (e.g. which thread failed).
        """
        if self.open:
            self._stop_episode(outcome="shutdown", reason=reason)
        self._send_control()

    @property
    def control_waiting(self) -> int:
        """Episode start/stop items not yet on the queue (the writer is stalled)."""
        return len(self._pending_control)
