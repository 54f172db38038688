"""MCAP-writer thread: drains the MCAP queue; the only code that touches an `EpisodeWriter`.

Episodes are written to ``recordings/NAME.mcap.partial`` and, when closed, moved once, atomically,
to ``recordings/success/NAME.mcap`` or ``recordings/failure/NAME.mcap``.

A recording fault never stops this thread or teleoperation. Whatever goes wrong — a folder that
cannot be created, a full disk, a destination folder that refuses the file (permissions, an
immutable folder), even an unexpected exception in the writer — ends that episode only: what was
written is kept as a recoverable file (a finished MCAP where possible, else the ``.partial`` for
`teleop-replay recover`), the fault is shown (episode error on the dashboard and status line),
logged, and written to `/events` of the next episode; the next episode starts a new file.
Every fault is kept in `faults`, so the daemon exits non-zero and says where the data is.
On shutdown the queue is drained for at most `drain_s` and an open episode is finalized.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oculus_server.state.sinks import CountSink, EpisodeSink, EventSink
from oculus_server.threads.base import DaemonThread, Supervisor
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.paths import outcome_dir
from robot_formats.recording.records import EpisodeStart, EpisodeStop, Event, RecordTick
from robot_formats.recording.writer import EpisodeWriter, Finalized

log = logging.getLogger(__name__)

WriterFactory = Callable[[Path, dict], EpisodeWriter]
CARRY_MAX = 64  # error events kept for the next episode


@dataclass(frozen=True)
class RecordingFault:
    """A recording that did not end as asked.

    Attributes:
        episode: the episode's name.
        problem: what went wrong.
        path: where its data is (None: nothing was written).
        complete: `path` is a valid, indexed MCAP (False: a ``.partial`` for `recover`).
    """

    episode: str
    problem: str
    path: Path | None
    complete: bool

    def describe(self) -> str:
        """One line saying what happened and where the data is."""
        if self.path is None:
            where = "nothing was written"
        elif self.complete:
            where = f"the data is in {self.path}"
        else:
            where = f"the data is in {self.path} (run `teleop-replay recover {self.path}`)"
        return f"recording {self.episode}: {self.problem}; {where}"


class McapWriterThread(DaemonThread):
    """Owns the episode writer."""

    def __init__(
        self,
        mcap_queue: queue.Queue,
        supervisor: Supervisor,
        counters: CountSink,
        episode: EpisodeSink,
        events: EventSink,
        recordings_dir: Path,
        writer_factory: WriterFactory,
        base_metadata: dict[str, Any] | None = None,
        drain_s: float = 0.5,
        realtime_priority: int = 0,
    ) -> None:
        super().__init__("mcap-writer", supervisor, realtime_priority)
        self.counters, self.episode_status, self.events = counters, episode, events
        self.queue = mcap_queue
        self.dir = Path(recordings_dir)
        self.writer_factory = writer_factory
        self.base_metadata = dict(base_metadata or {})
        self.drain_s = drain_s
        self.writer: EpisodeWriter | None = None
        self.episode = ""
        self.saved: list[Path] = []
        self.faults: list[RecordingFault] = []
        self._carry: list[Event] = []  # error events for the next episode's /events
        self.finish_outcome, self.finish_reason = "shutdown", "daemon stopped"  # how `finish` ends an episode
        # carried events already written (no duplicates); compared by value: with the writer in a
        # helper process the recorder's copy of an event is not the object kept here
        self._carried: list[Event] = []

    def body(self) -> None:
        while not self.stop_event.is_set():
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self._handle(item)
        # Shutdown: write what is already queued (bounded in time), then finalize.
        deadline = time.monotonic() + self.drain_s
        while time.monotonic() < deadline:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            self._handle(item)

    def finish(self) -> None:
        """Finalizes an episode left open (called in this thread's cleanup)."""
        if self.writer is not None:
            self._close(EpisodeStop(self.finish_outcome, False, self.finish_reason))

    def cleanup(self) -> None:
        # Past the drain budget only episode control items are still handled (the recorder's
        # final stop among them); ticks left behind are counted as dropped.
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, RecordTick):
                self.counters.count("records_dropped")
            else:
                self._handle(item)
        self.finish()

    # -- items ----------------------------------------------------------------------------------
    def _handle(self, item: object) -> None:
        try:
            if isinstance(item, RecordTick):
                self._write(item)
            elif isinstance(item, EpisodeStart):
                self._open(item)
            elif isinstance(item, EpisodeStop):
                self._close(item)
        except Exception as exc:
            log.exception("recording writer error")
            self._abort(f"unexpected writer error: {type(exc).__name__}: {exc}")
        self.counters.set_queue_depth("mcap", self.queue.qsize())

    def _open(self, start: EpisodeStart) -> None:
        if self.writer is not None:
            self._close(EpisodeStop("failure", False, "new episode started"))
        self.episode = start.name
        path = self.dir / f"{start.name}.mcap"
        meta = {**self.base_metadata, **start.metadata, "episode": start.name}
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.writer = self.writer_factory(path, meta)
        except (RecordingError, OSError) as exc:
            self._fault(f"cannot start the recording {path}: {exc}", None, False)
            return
        self.episode_status.update(
            active=True, path=str(self.writer.path), started_wall=start.t_wall,
            messages=0, bytes_written=0, success=False, error="",
        )
        carried, self._carry = self._carry, []
        self._carried = list(carried)
        for event in carried:  # faults of earlier episodes go into this one's /events
            self.writer.write_event(event)

    def _write(self, tick: RecordTick) -> None:
        if self.writer is None:
            # The episode's file failed: ticks are dropped until the next episode, but their
            # error events are kept for it.
            self._keep(e for e in tick.events if "error" in e.kind)
            return
        if self._carried and tick.events:
            kept = tuple(e for e in tick.events if e not in self._carried)
            if len(kept) != len(tick.events):
                tick = dataclasses.replace(tick, events=kept)
        try:
            self.writer.write(tick)
        except RecordingError as exc:
            self._keep(e for e in tick.events if "error" in e.kind)
            self._abort(f"recording stopped: {exc}")
            return
        self.episode_status.update(messages=self.writer.messages, bytes_written=self.writer.bytes_written)

    def _close(self, stop: EpisodeStop) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        try:
            writer.write_sent_commands(stop.sent_commands)
        except RecordingError as exc:
            log.warning("could not write the commands sent after the last tick: %s", exc)
        for event in stop.events:
            try:
                writer.write_event(event)
            except RecordingError as exc:
                log.warning("could not write the closing events: %s", exc)
                break
        end = {"outcome": stop.outcome, "success": str(stop.success).lower(), "ended_by": stop.reason or stop.outcome}
        if stop.reason:
            end["reason"] = stop.reason
        result = writer.finalize(stop.outcome, end, dest_dir=outcome_dir(self.dir, stop.success))
        self._filed(result, f"episode saved ({stop.outcome})")

    def _abort(self, reason: str) -> None:
        """Ends the open episode after a fault: keeps what was written, files it as a failure."""
        writer, self.writer = self.writer, None
        if writer is None:
            self._fault(reason, None, False)
            return
        try:
            writer.abort(reason, dest_dir=outcome_dir(self.dir, False))
            result = writer.result
        except Exception as exc:
            log.exception("recording salvage failed")
            result = Finalized(writer.path, False, False, f"salvage failed: {exc}", writer.messages)
        assert result is not None
        self.episode_status.update(active=False, path="")
        path = result.path if result.path is not None and result.path.exists() else None
        self._fault(reason + (f" ({result.problem})" if result.problem and result.problem not in reason else ""),
                    path, result.complete)

    def _filed(self, result: Finalized, what: str) -> None:
        if result.complete and result.filed and not result.problem:
            assert result.path is not None
            self.saved.append(result.path)
            log.info("%s: %s", what, result.path)
            self.episode_status.update(active=False, path="", last_saved=str(result.path))
            return
        self.episode_status.update(active=False, path="")
        if result.complete and result.path is not None:
            self.saved.append(result.path)
            self.episode_status.update(last_saved=str(result.path))
        self._fault(result.problem or "the recording could not be filed", result.path, result.complete)

    def _keep(self, events: Any) -> None:
        for e in events:
            if len(self._carry) < CARRY_MAX and e not in self._carry:
                self._carry.append(e)

    def _fault(self, problem: str, path: Path | None, complete: bool) -> None:
        fault = RecordingFault(self.episode or "?", problem, path, complete)
        self.faults.append(fault)
        message = fault.describe()
        log.error("%s", message)
        data: dict[str, Any] = {"source": "recording", "episode": fault.episode, "complete": complete}
        if path is not None:
            data["path"] = str(path)
        event = self.events.add("error", message, **data)
        self._keep([event])
        self.episode_status.update(error=message)
