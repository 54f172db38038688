"""The live view in a helper process, so mapping, encoding and the WebSocket server never hold the
daemon's GIL.

The daemon keeps only a forwarder, the ``live-sink`` thread: the recorder `offer_tick`s to it (a
``put_nowait`` on a bounded queue; full → dropped, counted as ``live_ticks_dropped``) and the
forwarder sends the raw ticks down a pipe to a child process. The child (this program, started by
this process: the pipes are ours alone) owns the `LiveServer` and runs a `LiveSinkThread`: the
recording's `TickMapper` + `ScenePainter` (one mapping code path: the viewer gets the file's bytes)
and foxglove-sdk's server. What the child knows comes back on a second pipe, applied by a receiver
thread: the server's address (or why it could not bind), whether any client is subscribed
(`wanted`: with nobody subscribed the recorder builds and offers nothing), and the live view's
counters (messages sent, ticks dropped, subscriptions, client backlog overflows), added up and
sent every `REPORT_S`.

Nothing the loops do waits on the child: a stalled child (SIGSTOP, a client that never reads)
fills the pipe, then the forwarder's queue, and ticks are dropped and counted. The live view is
never fatal: a child that cannot bind or that dies is reported (log, a ``live_warning`` event) and
teleoperation and recording go on. The child dies with the daemon: when the daemon's end of the
pipe closes (whatever the reason) it stops its server and exits; at shutdown a child that does
not go in time is killed (it holds nothing that must be saved).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from frankateach.thread_name import set_os_thread_name
from oculus_server.state import Counters, EventLog
from oculus_server.threads.base import DaemonThread, Supervisor
from oculus_server.threads.child import StatusSender, end_child, receive_status, spawn_child
from oculus_server.threads.live_sink import LIVE_QUEUE_SIZE, LiveSinkThread, offer
from robot_formats.recording.live import LiveServer, advertised_topics
from robot_formats.recording.mapping import TickMapper
from robot_formats.recording.records import RecordTick

log = logging.getLogger(__name__)

REPORT_S = 0.25  # how often the child sends its counters back, seconds
POLL_S = 0.1  # the child looks at its subscriptions at least this often, seconds
LAYOUT = "configs/foxglove_layout.json"


@dataclass(frozen=True)
class LiveSettings:
    """What the live-view process serves.

    Attributes:
        host, port: the address to bind (port 0: any free port).
        cameras: camera names whose topics are advertised at start.
        queue_size: ticks the child's sink queues before it drops (counted).
    """

    host: str
    port: int
    cameras: tuple[str, ...] = ()
    queue_size: int = LIVE_QUEUE_SIZE


class _LiveRelay(StatusSender):
    """The child's live-view counters: counts added up, gauges kept; both sent every `REPORT_S`
    (gauges only when changed), so the daemon gets a few small messages a second at most."""

    NOT_SENT = ("live",)  # the daemon shows its own forwarding queue's depth

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self._figures = threading.Lock()
        self._counts: dict[str, int] = {}
        self._depths: dict[str, int] = {}
        self._reported: dict[str, int] = {}
        self._next = 0.0

    def count(self, name: str, n: int = 1) -> None:
        with self._figures:
            self._counts[name] = self._counts.get(name, 0) + n

    def set_queue_depth(self, name: str, depth: int) -> None:
        if name not in self.NOT_SENT:
            with self._figures:
                self._depths[name] = depth

    def flush(self, now: float, force: bool = False) -> None:
        """Sends what changed since the last report, at most every `REPORT_S` unless `force`."""
        if now < self._next and not force:
            return
        self._next = now + REPORT_S
        with self._figures:
            counts, self._counts = self._counts, {}
            depths = {k: v for k, v in self._depths.items() if self._reported.get(k) != v}
            self._reported.update(depths)
        if counts or depths:
            self.send(("counters", counts, depths))


def child_main(items: Connection, status: Connection, settings: LiveSettings) -> None:
    """The live-view process: serves `settings`, publishes the ticks that arrive on `items`.

    Messages in: ``("mapper", TickMapper keyword arguments)`` (before any tick), ``("tick", tick)``,
    ``("stop",)``. Out: ``("serving", url)`` or ``("error", why)``, ``("wanted", bool)`` on each
    change, ``("counters", counts, gauges)``, and last ``("done", failures)``. Ctrl-C reaches the
    whole process group: the daemon decides when the view stops, so SIGINT is ignored here; the
    process ends on "stop" or when the daemon's end of `items` closes.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    relay = _LiveRelay(status)
    options: dict[str, Any] = {}
    sv = Supervisor()
    sink = LiveSinkThread(
        lambda: LiveServer(settings.host, settings.port, topics=advertised_topics(settings.cameras)),
        lambda: TickMapper(**options), sv, relay, queue_size=settings.queue_size)
    if not sink.open() or sink.server is None:
        relay.send(("error", sink.error))
        relay.send(("done", []))
        return
    relay.send(("serving", sink.server.url))
    sink.start()
    wanted = False
    try:
        while not sv.stop.is_set():
            if items.poll(POLL_S):
                try:
                    msg = items.recv()
                except (EOFError, OSError):  # the daemon is gone (stopped, killed, crashed)
                    break
                if msg[0] == "tick":
                    sink.offer_tick(msg[1])
                elif msg[0] == "mapper":
                    options.clear()
                    options.update(msg[1])
                elif msg[0] == "stop":
                    break
            if sink.wanted != wanted:
                wanted = sink.wanted
                relay.send(("wanted", wanted))
            relay.flush(time.monotonic())
    finally:
        sv.stop.set()
        sink.join(2.0)
        relay.flush(time.monotonic(), force=True)
        relay.send(("done", [f.error for f in sv.failures()]))


class LiveProcessThread(DaemonThread):
    """The daemon's side of the live view (thread name ``live-sink``): queues and forwards ticks.

    Args:
        settings: what the child serves.
        mapper_options: called once (in this thread, when the first tick is forwarded): the
            `TickMapper` keyword arguments (policy gains, camera mounts, the 3D scene).
        supervisor: the daemon's.
        counters: where the live view's figures go; events: where its warnings go.
        queue_size: ticks queued here before the recorder's offers are dropped (counted).
        nice: the live-view process's nice value (0: the daemon's; see `spawn_child`).
        realtime_priority: of this thread and the receiver (`base.GIL_HOLDER_PRIORITY` when the loops
            run real-time: it takes the GIL, so it must not be preempted by an ordinary process).
    """

    def __init__(
        self,
        settings: LiveSettings,
        mapper_options: Callable[[], dict[str, Any]],
        supervisor: Supervisor,
        counters: Counters,
        events: EventLog,
        queue_size: int = LIVE_QUEUE_SIZE,
        nice: int = 0,
        realtime_priority: int = 0,
    ) -> None:
        super().__init__("live-sink", supervisor, realtime_priority)
        self.settings = settings
        self.nice = nice
        self.mapper_options = mapper_options
        self.counters, self.events = counters, events
        self.queue: queue.Queue[RecordTick] = queue.Queue(maxsize=queue_size)
        self.wanted = False  # the child's word: a client is subscribed (read without a lock)
        self.url = ""  # ws:// address once the child serves
        self.error = ""  # why the live view stopped serving, if it did
        self.proc: BaseProcess | None = None
        self._items: Connection | None = None
        self._status: Connection | None = None
        self._rx: threading.Thread | None = None
        self._done = threading.Event()
        self._up = threading.Event()  # the child serves, could not bind, or ended
        self._ending = threading.Lock()  # the forwarder and the receiver may both see the end
        self._broken = False
        self._unsent = 0

    def offer_tick(self, tick: RecordTick) -> None:
        """Queues a tick for the viewers; never blocks (a full queue drops it, counted)."""
        if self.wanted:
            offer(self.queue, tick, self.counters)

    def launch(self) -> None:
        """Starts the live-view process and its status receiver (once; `body` does it if nobody
        did). The daemon calls it before its loops start: see `wait_started`."""
        if self.proc is not None:
            return
        self.proc, self._items, self._status = spawn_child(child_main, "live-view", (self.settings,), nice=self.nice)
        self._rx = threading.Thread(target=self._receive, name="live-sink-rx", daemon=True)
        self._rx.start()

    def wait_started(self, timeout_s: float) -> bool:
        """Waits at most `timeout_s` until the live-view process serves, could not, or ended."""
        return self._up.wait(timeout_s)

    # -- the forwarder (this thread) ----------------------------------------------------------
    def body(self) -> None:
        self.launch()
        mapper_sent = False
        while not self.stop_event.is_set() and not self._done.is_set():
            try:
                tick = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if not mapper_sent:  # once, when the first viewer comes (as the recording, at its start)
                self._send(("mapper", self._mapper_options()))
                mapper_sent = True
            self._send(("tick", tick))
            self.counters.set_queue_depth("live", self.queue.qsize())

    def _mapper_options(self) -> dict[str, Any]:
        """The mapper's keyword arguments (waits for the simulator's scene, bounded); a problem
        there costs the view its 3D scene, never the daemon."""
        try:
            return self.mapper_options()
        except Exception:  # noqa: BLE001
            log.exception("live view: no mapper options; the view goes on without the 3D scene")
            return {}

    def _send(self, msg: tuple) -> None:
        if self._broken or self._items is None:
            return
        try:
            self._items.send(msg)  # pickled whole first: a failed pickle leaves the pipe as it was
        except (OSError, ValueError) as exc:  # the child died (or was killed by `abandon`)
            self._broken = True
            self._lost(f"the live-view process is gone ({type(exc).__name__})")
        except Exception:  # noqa: BLE001 - a tick that cannot cross is the viewer's loss only
            self.counters.count("live_ticks_dropped")
            self._unsent += 1
            if self._unsent <= 3:
                log.exception("live view: a message could not be sent to the live-view process")

    def abandon(self) -> None:
        """Kills a child that does not go (called at shutdown, e.g. a stalled one the forwarder
        waits on); the forwarder's send then fails and the thread ends."""
        self._broken = True
        self.wanted = False
        proc = self.proc
        if proc is not None and proc.is_alive():
            log.warning("live view: the live-view process did not stop in time: killing it")
            self._done.set()  # an expected end: not reported as lost
            proc.kill()

    def _lost(self, why: str) -> None:
        """The child ended while serving: the live view stops; nothing else does."""
        self.wanted = False
        with self._ending:
            if self._done.is_set():
                return
            self._done.set()
        self._up.set()
        code = self.proc.exitcode if self.proc is not None else None
        self.error = why + (f" (exit code {code})" if code is not None else "")
        message = f"live view stopped: {self.error}; teleoperation and recording go on"
        log.error("%s", message)
        self.events.add("live_warning", message, source="live")

    # -- the receiver ---------------------------------------------------------------------------
    def _receive(self) -> None:
        set_os_thread_name("live-sink-rx")
        self.grant(self.realtime_priority)
        assert self._status is not None
        if receive_status(self._status, self._apply):
            return
        if self.proc is not None:
            self.proc.join(1.0)  # for its exit code
        self._lost("the live-view process exited unexpectedly")

    def _apply(self, msg: tuple) -> None:
        kind = msg[0]
        if kind in ("serving", "error", "done"):
            self._up.set()
        if kind == "wanted":
            self.wanted = bool(msg[1]) and not self._broken and not self._done.is_set()
        elif kind == "counters":
            for name, n in msg[1].items():
                self.counters.count(name, n)
            for name, depth in msg[2].items():
                self.counters.set_queue_depth(name, depth)
        elif kind == "serving":
            self.url = msg[1]
            self.counters.set_queue_depth("live", 0)  # the dashboard shows the live view from now
            log.info("live view: in Foxglove, Open connection -> %s (layout: %s)", self.url, LAYOUT)
        elif kind == "error":  # it could not bind (e.g. a taken port): teleoperation goes on
            self.error = msg[1]
            log.error("%s", self.error)
            self.events.add("live_warning", self.error, source="live")
        elif kind == "done":
            self.wanted = False
            for f in msg[1]:
                log.error("live-view process: %s", f)
            self._done.set()

    def cleanup(self) -> None:
        self.wanted = False
        if self._items is not None:
            self._items.close()  # the child sees EOF: it stops its server and exits
        end_child(self.proc, 1.0)
        if self._rx is not None:
            self._rx.join(1.0)
        if self._status is not None:
            self._status.close()
