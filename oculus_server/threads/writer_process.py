"""MCAP writing in a helper process, so encoding, compression and file writes never hold the
daemon's GIL.

Profiled under load without real-time scheduling (py-spy ``--gil``), the MCAP writer was the
thread holding the daemon's GIL most (JSON and protobuf encoding, chunk compression, writes): when
the machine preempts it while it holds the GIL, every loop waits until it runs again. Here the
daemon keeps only a forwarder, the ``mcap-writer`` thread: ten times a second it sends what the
MCAP queue holds, in one message, down a pipe to a child process (this program, started by this
process: the pipe is ours alone) that runs the same `McapWriterThread` logic. What the writer
reports — episode status, events, counters, faults, saved files — comes back on a second pipe and
is applied to the shared state by a receiver thread (counters and progress four times a second,
the rest as it happens). Both daemon threads take the GIL only a few times a second: a thread the
machine preempts while it holds the GIL stalls every loop, so the fewer such moments the better.
Nothing the loops do waits on either pipe: the recorder only ever `put_nowait`s on the MCAP queue.

A stalled child (a hung disk, SIGSTOP) fills the pipe, then the MCAP queue; ticks are dropped and
counted as with a stalled writer thread, and teleoperation goes on. The child dies with the daemon:
when the daemon's end of the pipe closes (whatever the reason) it finalizes the episode within the
drain budget and exits. At shutdown a child that does not finish in time is killed and its
``.partial`` file reported as a fault (``teleop-replay recover``).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from frankateach.stop_event import StopEvent
from frankateach.thread_name import set_os_thread_name
from frankateach.timing import Ticker
from oculus_server.state import Counters, EpisodeChannel, EventLog
from oculus_server.threads.base import GIL_HOLDER_PRIORITY, DaemonThread, Supervisor
from oculus_server.threads.child import StatusSender, end_child, receive_status, spawn_child
from oculus_server.threads.mcap_writer import McapWriterThread, RecordingFault
from robot_formats.recording.records import EpisodeStart, Event
from robot_formats.recording.writer import EpisodeWriter, Finalized

log = logging.getLogger(__name__)

FINALIZE_S = 3.0  # after the drain budget, how long the child may take to finalize and answer
START_S = 60.0  # how long the child may take to import and answer at start (a busy machine)
FORWARD_PERIOD_S = 0.1  # the forwarder sends what is queued this often
MAX_BATCH = 50  # items per message at most (a queue that filled behind a slow child goes in pieces)
PROGRESS_KEYS = frozenset({"messages", "bytes_written"})  # episode fields that change at every tick
REPORT_PERIOD_S = 0.25  # the child reports counters and progress at most this often (4 Hz)


class _Relay(StatusSender):
    """The child's counters, episode status and events, sent back to the daemon.

    Counters and the episode's progress (`PROGRESS_KEYS`, new at every tick) are held and sent
    together by `flush` (every `REPORT_PERIOD_S`), so that the daemon's receiver wakes a few times
    a second instead of at every tick: each wake-up takes the daemon's GIL, and a thread preempted
    while it holds the GIL stalls every loop. Anything else is sent at once, after what is held,
    so the daemon sees everything in the order it happened.
    """

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self._order = threading.Lock()
        self._counts: dict[str, int] = {}
        self._progress: dict[str, Any] = {}

    def send(self, msg: tuple) -> None:
        with self._order:
            self._send_held()
            super().send(msg)

    def flush(self) -> None:
        """Sends the counters and progress held since the last report (nothing if none)."""
        with self._order:
            self._send_held()

    def _send_held(self) -> None:
        counts, self._counts = self._counts, {}
        progress, self._progress = self._progress, {}
        if counts:
            super().send(("counts", counts))
        if progress:
            super().send(("episode", progress))

    def count(self, name: str, n: int = 1) -> None:
        with self._order:
            self._counts[name] = self._counts.get(name, 0) + n

    def set_queue_depth(self, name: str, depth: int) -> None:
        """Not sent: the daemon shows its own MCAP queue's depth."""

    def update(self, **changes: Any) -> None:
        if changes.keys() <= PROGRESS_KEYS:
            with self._order:
                self._progress.update(changes)
        else:
            self.send(("episode", changes))

    def add(self, kind: str, message: str, **data: object) -> Event:
        ev = Event(kind=kind, message=message, t_wall=time.time(), data=dict(data))
        self.send(("event", ev))
        return ev


class _ChildWriter(McapWriterThread):
    """The writer in the recording process: each fault and saved file is reported as it happens."""

    relay: _Relay

    def _fault(self, problem: str, path: Path | None, complete: bool) -> None:
        super()._fault(problem, path, complete)
        self.relay.send(("fault", self.faults[-1]))

    def _filed(self, result: Finalized, what: str) -> None:
        before = len(self.saved)
        super()._filed(result, what)
        for p in self.saved[before:]:
            self.relay.send(("saved", p))


def child_main(items: Connection, status: Connection, recordings_dir: str, base_metadata: dict,
               drain_s: float) -> None:
    """The recording process: runs an `McapWriterThread` on what arrives on `items`.

    Ctrl-C reaches the whole process group: the daemon decides when recording stops, so SIGINT
    is ignored here; the process ends on "stop" or when the daemon's end of `items` closes.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    relay = _Relay(status)
    q: queue.Queue = queue.Queue()
    options: dict[str, dict[str, Any]] = {}  # episode name → EpisodeWriter keyword arguments

    def factory(path: Path, meta: dict) -> EpisodeWriter:
        return EpisodeWriter(path, meta, **options.pop(str(meta.get("episode", "")), {}))

    sv = Supervisor()
    writer = _ChildWriter(q, sv, relay, relay, relay, Path(recordings_dir), factory,
                          base_metadata=base_metadata, drain_s=drain_s)
    writer.relay = relay
    writer.stop_event = StopEvent()
    writer.start()
    relay.send(("ready",))
    report = time.monotonic() + REPORT_PERIOD_S
    try:
        while True:
            try:
                msg = items.recv() if items.poll(max(0.0, report - time.monotonic())) else None
            except (EOFError, OSError):  # the daemon is gone (killed, crashed): finish up
                writer.finish_outcome = "crashed"
                writer.finish_reason = "the daemon ended without stopping the episode (killed or crashed)"
                break
            if msg is not None:  # None: nothing came before the next report
                if msg[0] == "stop":
                    break
                for kind, *what in msg[1]:  # ("batch", [("item", x) | ("start", EpisodeStart, options), ...])
                    if kind == "start":
                        options[what[0].name] = what[1]
                    q.put(what[0])
            if time.monotonic() >= report:
                relay.flush()
                report = max(report + REPORT_PERIOD_S, time.monotonic())
    finally:
        writer.stop_event.set()
        writer.join()
        relay.send(("done", [f.error for f in sv.failures()]))


class WriterProcessThread(DaemonThread):
    """The daemon's side of the recording process (thread name ``mcap-writer``).

    Args:
        mcap_queue: what the recorder queues (`RecordTick`, `EpisodeStart`, `EpisodeStop`).
        supervisor: the daemon's.
        counters, episode, events: where the writer's reports go.
        recordings_dir: where episodes are written.
        writer_options: called (in this thread) for each new episode: the `EpisodeWriter` keyword
            arguments (attachments, policy gains, camera mounts).
        base_metadata: metadata of every recording.
        drain_s: at shutdown, how long the child writes what is still queued, seconds.
        nice: the recording process's nice value (0: the daemon's; see `spawn_child`).
    """

    def __init__(
        self,
        mcap_queue: queue.Queue,
        supervisor: Supervisor,
        counters: Counters,
        episode: EpisodeChannel,
        events: EventLog,
        recordings_dir: Path,
        writer_options: Callable[[], dict[str, Any]],
        base_metadata: dict[str, Any] | None = None,
        drain_s: float = 0.5,
        realtime_priority: int = 0,
        nice: int = 0,
    ) -> None:
        super().__init__("mcap-writer", supervisor, realtime_priority)
        self.nice = nice
        self.queue = mcap_queue
        self.counters, self.episode_status, self.events = counters, episode, events
        self.dir = Path(recordings_dir)
        self.writer_options = writer_options
        self.base_metadata = dict(base_metadata or {})
        self.drain_s = drain_s
        self.faults: list[RecordingFault] = []
        self.saved: list[Path] = []
        self.proc: BaseProcess | None = None
        self._items: Connection | None = None
        self._status: Connection | None = None
        self._rx: threading.Thread | None = None
        self._done = threading.Event()
        self._ready = threading.Event()
        self._up = threading.Event()  # the child started, or ended: nothing left to wait for
        self._episode = ""  # the open episode's name and file, for a fault if the child dies
        self._path = ""
        self._broken = False

    def launch(self) -> None:
        """Starts the recording process and its status receiver (once; `body` does it if nobody
        did). The daemon calls it before its loops start: see `wait_started`."""
        if self.proc is not None:
            return
        self.proc, self._items, self._status = spawn_child(
            child_main, "mcap-writer", (str(self.dir), self.base_metadata, self.drain_s), nice=self.nice)
        self._rx = threading.Thread(target=self._receive, name="mcap-writer-rx", daemon=True)
        self._rx.start()

    def wait_started(self, timeout_s: float) -> bool:
        """Waits at most `timeout_s` until the recording process has started or ended (True: nothing
        left to wait for; as `LiveProcessThread.wait_started`)."""
        return self._up.wait(timeout_s)

    # -- the forwarder (this thread) ----------------------------------------------------------
    def body(self) -> None:
        self.launch()
        # Every FORWARD_PERIOD_S, what is queued goes down in one message: a few wake-ups a second,
        # each a short hold of the GIL, instead of one per tick.
        ticker = Ticker(1.0 / FORWARD_PERIOD_S, name="mcap-forward")
        while ticker.wait(self.stop_event):
            self._forward()
        # Shutdown: hand over what is queued (the child writes it within its drain budget).
        self._forward()
        self._send_msg(("stop",))
        wait_s = self.drain_s + FINALIZE_S + (0.0 if self._ready.is_set() else START_S)
        if not self._done.wait(wait_s):
            self.abandon(f"the recording process did not finish within {wait_s:.1f} s")

    def _forward(self) -> None:
        """Sends everything queued now in ``("batch", [...])`` messages of at most `MAX_BATCH` items."""
        batch: list[tuple] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            batch.append(("start", item, self.writer_options()) if isinstance(item, EpisodeStart) else ("item", item))
            if len(batch) == MAX_BATCH:
                self._send_msg(("batch", batch))
                batch = []
        self.counters.set_queue_depth("mcap", self.queue.qsize())
        if batch:
            self._send_msg(("batch", batch))

    def _send_msg(self, msg: tuple) -> None:
        if self._broken or self._items is None:
            return
        try:
            self._items.send(msg)
        except (OSError, ValueError) as exc:  # the child died (or was killed by `abandon`)
            self._broken = True
            if not self._done.is_set():
                self._lost(f"the recording process is gone ({type(exc).__name__})")

    def abandon(self, why: str = "the recording process stopped answering") -> None:
        """Kills a child that does not finish (called at shutdown); its episode becomes a fault."""
        proc = self.proc
        if proc is not None and proc.is_alive() and not self._done.is_set():
            log.error("%s: killing it", why)
            proc.kill()
            proc.join(2.0)
            self._lost(why)
        self._broken = True

    def _lost(self, why: str) -> None:
        """Records the open episode (if any) as a fault: its data is in the ``.partial`` file."""
        if self._done.is_set():
            return
        self._done.set()
        self._up.set()
        code = self.proc.exitcode if self.proc is not None else None
        problem = why + (f" (exit code {code})" if code is not None else "")
        path = Path(self._path) if self._path else None
        if path is not None and not path.exists():
            path = None
        fault = RecordingFault(self._episode or "?", problem, path, False)
        self.faults.append(fault)
        message = fault.describe()
        log.error("%s", message)
        self.events.add("error", message, source="recording", episode=fault.episode, complete=False)
        self.episode_status.update(active=False, path="", error=message)

    # -- the receiver ---------------------------------------------------------------------------
    def _receive(self) -> None:
        set_os_thread_name("mcap-writer-rx")
        # it takes the GIL: real-time too (lowest), so an ordinary process never preempts it holding it
        self.grant(min(GIL_HOLDER_PRIORITY, self.realtime_priority))
        assert self._status is not None
        if receive_status(self._status, self._apply):
            return
        if not self._done.is_set():
            self._lost("the recording process exited unexpectedly")

    def _apply(self, msg: tuple) -> None:
        kind = msg[0]
        if kind == "counts":
            for name, n in msg[1].items():
                self.counters.count(name, n)
        elif kind == "episode":
            changes = msg[1]
            if changes.get("active"):
                self._path = str(changes.get("path", ""))
                self._episode = Path(self._path).name.split(".")[0] if self._path else ""
            elif changes.get("active") is False:
                self._path = ""
            self.episode_status.update(**changes)
        elif kind == "event":
            self.events.put(msg[1])
        elif kind == "ready":
            self._ready.set()
            self._up.set()
        elif kind == "fault":
            self.faults.append(msg[1])
        elif kind == "saved":
            self.saved.append(msg[1])
        elif kind == "done":
            for f in msg[1]:
                log.error("recording process: %s", f)
            self._done.set()
            self._up.set()

    def cleanup(self) -> None:
        end_child(self.proc, 1.0)
        if self._rx is not None:
            self._rx.join(1.0)
        for c in (self._items, self._status):
            if c is not None:
                c.close()
