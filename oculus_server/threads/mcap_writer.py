"""MCAP-writer thread: drains the MCAP queue; the only code that touches an `EpisodeWriter`.

Episodes are written to ``recordings/NAME.mcap.partial`` and, when closed, moved atomically to
``recordings/success/NAME.mcap`` or ``recordings/failure/NAME.mcap``. A write error (disk full,
permissions) ends that episode — what was written is finalized when possible — and is shown;
teleoperation goes on and the next episode starts a new file. On shutdown the queue is drained
for at most `drain_s` and an open episode is finalized, marked as ended by shutdown.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from pathlib import Path
from typing import Callable

from oculus_server.errors import RecordingError
from oculus_server.recording.writer import EpisodeWriter
from oculus_server.state import SharedState
from oculus_server.threads.base import DaemonThread, Supervisor
from oculus_server.types import EpisodeStart, EpisodeStop, RecordTick

log = logging.getLogger(__name__)

WriterFactory = Callable[[Path, dict], EpisodeWriter]


class McapWriterThread(DaemonThread):
    """Owns the episode writer."""

    def __init__(
        self,
        mcap_queue: queue.Queue,
        supervisor: Supervisor,
        state: SharedState,
        recordings_dir: Path,
        writer_factory: WriterFactory,
        base_metadata: dict[str, str] | None = None,
        drain_s: float = 0.5,
        realtime_priority: int = 0,
    ) -> None:
        super().__init__("mcap-writer", supervisor, state, realtime_priority)
        self.queue = mcap_queue
        self.dir = Path(recordings_dir)
        self.writer_factory = writer_factory
        self.base_metadata = dict(base_metadata or {})
        self.drain_s = drain_s
        self.writer: EpisodeWriter | None = None
        self.saved: list[Path] = []

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
            self._close(EpisodeStop("shutdown", False, "daemon stopped"))

    def cleanup(self) -> None:
        # Past the drain budget only episode control items are still handled (the recorder's
        # final stop among them); ticks left behind are counted as dropped.
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, RecordTick):
                self.state.count("records_dropped")
            else:
                self._handle(item)
        self.finish()

    # -- items ----------------------------------------------------------------------------------
    def _handle(self, item: object) -> None:
        if isinstance(item, RecordTick):
            self._write(item)
        elif isinstance(item, EpisodeStart):
            self._open(item)
        elif isinstance(item, EpisodeStop):
            self._close(item)
        self.state.set_queue_depth("mcap", self.queue.qsize())

    def _open(self, start: EpisodeStart) -> None:
        if self.writer is not None:
            self._close(EpisodeStop("failure", False, "new episode started"))
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{start.name}.mcap"
        meta = {**self.base_metadata, **start.metadata, "episode": start.name}
        try:
            self.writer = self.writer_factory(path, meta)
        except (RecordingError, OSError) as exc:
            self._error(f"cannot open {path}: {exc}")
            return
        self.state.set_episode(
            active=True, path=str(self.writer.path), started_wall=start.t_wall,
            messages=0, bytes_written=0, success=False, error="",
        )

    def _write(self, tick: RecordTick) -> None:
        if self.writer is None:
            return  # the episode's file failed: ticks are dropped until the next episode
        try:
            self.writer.write(tick)
        except (RecordingError, OSError) as exc:
            self._error(f"recording stopped: {exc}")
            try:
                self.writer.abort()
            except Exception as exc2:  # noqa: BLE001
                log.warning("could not finalize %s after the error: %s", self.writer.path, exc2)
            self.writer = None
            self.state.set_episode(active=False)
            return
        self.state.set_episode(messages=self.writer.messages, bytes_written=self.writer.bytes_written)

    def _close(self, stop: EpisodeStop) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        for event in stop.events:
            try:
                writer.write_event(event)
            except (RecordingError, OSError) as exc:
                log.warning("could not write the closing events: %s", exc)
                break
        end = {"outcome": stop.outcome, "success": str(stop.success).lower(), "ended_by": stop.reason or stop.outcome}
        try:
            path = writer.close(stop.outcome, end)
        except (RecordingError, OSError) as exc:
            self._error(f"could not finalize {writer.path}: {exc}")
            return
        dest_dir = self.dir / ("success" if stop.success else "failure")
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / path.name
        os.replace(path, dest)
        self.saved.append(dest)
        log.info("episode saved: %s (%s)", dest, stop.outcome)
        self.state.set_episode(active=False, path="", last_saved=str(dest))

    def _error(self, message: str) -> None:
        log.error("%s", message)
        self.state.add_event("error", message)
        self.state.set_episode(error=message)
