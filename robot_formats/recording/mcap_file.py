"""One episode's MCAP file, from creation to its final place (the file's life, nothing else).

Created as ``NAME.mcap.partial`` (exclusively: a recording is never overwritten); the header,
the ``recording_start`` metadata, attachments and channels are fsync'd at once, so even a crash
in the first milliseconds leaves a file whose start metadata survives. Chunks are closed and
fsync'd at least every `flush_period_s`. On close the summary is written and the file is moved
once, straight to its destination (e.g. ``recordings/success/NAME.mcap``). A write error marks
the file failed; `salvage` then cuts it after its last intact chunk, adds a summary in place and
files it — first releasing a small space reserve kept beside the partial, so this works on a
full disk. A destination folder that refuses the file (permissions, an immutable folder) never
loses it: it stays beside the partial under its finished name, and the result says so.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mcap.writer import CompressionType, IndexType, Writer

from robot_formats.recording import schemas as S
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.paths import final_name, reserve_path
from robot_formats.recording.recover import finalize_partial
from robot_formats.recording.sink import DurableFile, Opener, move_into, open_exclusive

log = logging.getLogger(__name__)

WRITER_NAME = "oculus_server.recording"
COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
RESERVE_BYTES = 1 << 20  # released on a write error: room for the summary of an aborted file
MCAP_FLUSH_PERIOD_S = 0.5  # flush + fsync at least this often (crash loses at most ~this)
MCAP_CHUNK_SIZE = 1024 * 1024  # bytes per chunk (before compression)
MCAP_COMPRESSION = "lz4"  # chunk compression: "zstd", "lz4" or "none" (see benchmarks/bench_recording.py)


@dataclass(frozen=True)
class Finalized:
    """Where an episode's data ended up.

    Attributes:
        path: the file holding the data (None only if there is none at all).
        complete: `path` is a valid, indexed MCAP (False: a ``.partial`` left for `recover`).
        filed: `path` is the destination that was asked for.
        problem: '' or what went wrong (write error, the move that failed, ...).
        messages: messages in the file.
    """

    path: Path | None
    complete: bool
    filed: bool
    problem: str = ""
    messages: int = 0


def _reserve(path: Path, size: int) -> Path | None:
    """Allocates `size` bytes in a hidden file at `path`; None where that is not possible."""
    if size <= 0:
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        log.debug("no space reserve for the recording (%s)", exc)
        return None
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.write(fd, bytes(size))  # file systems without fallocate
        return path
    except OSError as exc:
        log.debug("no space reserve for the recording (%s)", exc)
        os.close(fd)
        fd = -1
        path.unlink(missing_ok=True)
        return None
    finally:
        if fd >= 0:
            os.close(fd)


class EpisodeFile:
    """A crash-safe MCAP file being written. Single-threaded.

    Args:
        partial: the ``*.mcap.partial`` path to create (must not exist).
        start_metadata: the ``recording_start`` record (str → str).
        attachments: (name, media type, bytes) to embed.
        flush_period_s: close the chunk and fsync at least this often, seconds.
        compression: "zstd", "lz4" or "none".
        chunk_size: a chunk is also closed when it grows past this many bytes.
        opener: opens `partial` for binary writing (tests substitute a full disk).
        reserve_bytes: space kept in a hidden file beside the partial, released on a write error.
        clock: monotonic clock for the flush period, seconds.

    Raises:
        RecordingError: the file exists, cannot be created, or its start cannot be written.
    """

    def __init__(
        self,
        partial: Path,
        start_metadata: Mapping[str, str],
        attachments: Sequence[tuple[str, str, bytes]] = (),
        flush_period_s: float = MCAP_FLUSH_PERIOD_S,
        compression: str = MCAP_COMPRESSION,
        chunk_size: int = MCAP_CHUNK_SIZE,
        opener: Opener = open_exclusive,
        reserve_bytes: int = RESERVE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        created_ns: int | None = None,
    ) -> None:
        if compression not in COMPRESSIONS:
            raise RecordingError(f"unknown compression {compression!r}: expected one of {sorted(COMPRESSIONS)}")
        if not flush_period_s > 0:
            raise RecordingError(f"flush period must be > 0 s, got {flush_period_s}")
        self.path = Path(partial)
        self.flush_period_s = float(flush_period_s)
        self._clock = clock
        self._file = DurableFile(self.path, opener)
        self._writer = Writer(
            self._file,  # type: ignore[arg-type]  # a write/tell/flush stream is all it needs
            chunk_size=chunk_size,
            compression=COMPRESSIONS[compression],
            index_types=IndexType.ALL,
            enable_crcs=True,
        )
        self._channels: dict[str, int] = {}
        self._schema_ids: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._sequences: dict[str, int] = {}
        self._closed = False
        self.messages = 0
        self.flushes = 0
        self._last_flush = clock()
        now_ns = created_ns if created_ns is not None else time.time_ns()
        try:
            self._writer.start(profile="", library=f"{WRITER_NAME} (mcap-python)")
            self._writer.add_metadata("recording_start", dict(start_metadata))
            for name, media_type, data in attachments:
                self._writer.add_attachment(now_ns, now_ns, str(name), str(media_type), bytes(data))
            for spec in S.FIXED_TOPICS:
                self._register(spec)
            self.sync()  # the start metadata survives even a crash before the first chunk
        except RecordingError:
            self._file.close_quietly()
            self.path.unlink(missing_ok=True)  # ours (created exclusively) and holds no data yet
            raise
        self._reserve = _reserve(reserve_path(self.path), reserve_bytes)

    # -- state ---------------------------------------------------------------------------------
    @property
    def bytes_written(self) -> int:
        """Bytes handed to the OS so far (the open chunk is not included until it is flushed)."""
        return self._file.bytes_written

    @property
    def failed(self) -> str | None:
        """Why the file failed (None while healthy)."""
        return self._file.failed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def topic_counts(self) -> dict[str, int]:
        """Messages written per topic (topics with none are left out)."""
        return {t: n for t, n in self._counts.items() if n}

    def check_open(self) -> None:
        """Raises RecordingError if the file is closed or failed earlier."""
        if self._closed:
            raise RecordingError(f"recording {self.path} is closed")
        if self._file.failed is not None:
            raise RecordingError(f"recording {self.path} failed earlier: {self._file.failed}")

    # -- writing -------------------------------------------------------------------------------
    def _register(self, spec: S.TopicSpec) -> int:
        schema_id = self._schema_ids.get(spec.schema)
        if schema_id is None:
            name, encoding, data = S.schema_record(spec.schema)
            schema_id = self._writer.register_schema(name=name, encoding=encoding, data=data)
            self._schema_ids[spec.schema] = schema_id
        cid = self._writer.register_channel(spec.topic, spec.encoding, schema_id)
        self._channels[spec.topic] = cid
        self._counts[spec.topic] = 0
        return cid

    def add(self, topic: str, data: bytes, log_ns: int, publish_ns: int, sequence: int | None = None) -> None:
        """Writes one message; `sequence` None uses a per-topic counter.

        Raises:
            RecordingError: the file cannot be written, or `topic` is not a recording topic.
        """
        cid = self._channels.get(topic)
        if cid is None:
            spec = S.topic_spec(topic)
            if spec is None:
                raise RecordingError(f"{topic!r} is not a topic of the recording schema")
            cid = self._register(spec)
        if sequence is None:
            sequence = self._sequences.get(topic, 0)
        self._sequences[topic] = self._sequences.get(topic, 0) + 1
        self._writer.add_message(cid, log_ns, data, publish_ns or log_ns, sequence & 0xFFFFFFFF)
        self._counts[topic] += 1
        self.messages += 1

    def flush_due(self) -> bool:
        """True when the flush period has passed since the last sync."""
        return self._clock() - self._last_flush >= self.flush_period_s

    def sync(self) -> None:
        """Closes the open chunk and fsyncs.

        Raises:
            RecordingError: the file cannot be written.
        """
        self._writer.flush()
        self._file.sync()
        self._last_flush = self._clock()
        self.flushes += 1

    # -- ending --------------------------------------------------------------------------------
    def _release_reserve(self) -> None:
        if self._reserve is not None:
            self._reserve.unlink(missing_ok=True)
            self._reserve = None

    def finish(self, end_metadata: Mapping[str, str], dest: Path) -> Finalized:
        """Writes the ``recording_end`` record and the summary, then moves the file to `dest`.

        Raises:
            RecordingError: the file could not be finished (it is marked failed; call `salvage`).
        """
        self.check_open()
        self.sync()  # every message is on disk before the end record claims completeness
        self._writer.add_metadata("recording_end", dict(end_metadata))
        self._writer.finish()
        self._file.sync()
        self._file.close()
        self._closed = True
        self._release_reserve()
        return self._place(dest)

    def _place(self, dest: Path) -> Finalized:
        fallback = self.path.with_name(final_name(self.path))
        where, problem = move_into(self.path, dest, fallback)
        if problem:
            log.error("recording %s: %s; the recording is kept as %s", dest.name, problem, where)
        self.path = where
        return Finalized(where, True, where == dest, problem, self.messages)

    def salvage(self, end_metadata: Mapping[str, str], dest: Path) -> Finalized:
        """Ends a file that cannot go on: keeps every intact chunk, adds a summary, files it.

        Never raises: when even the summary cannot be written the ``.partial`` is left for
        `teleop-replay recover` (the result says so).
        """
        if self._closed:
            return Finalized(self.path, True, self.path == dest, "", self.messages)
        self._closed = True
        problem = self._file.failed or ""
        if problem == "":
            try:
                self.sync()  # keep everything written so far if the file is still healthy
            except RecordingError as exc:
                problem = str(exc)
        self._file.close_quietly()
        self._release_reserve()  # room for the summary on a full disk
        try:
            report, where, move_problem = finalize_partial(
                self.path, dest, end_metadata, fallback=self.path.with_name(final_name(self.path))
            )
        except RecordingError as exc:
            why = f"{problem}; " if problem else ""
            return Finalized(self.path, False, False, f"{why}could not be finalized: {exc}", self.messages)
        self.path = where
        if move_problem:
            log.error("recording %s: %s; the recording is kept as %s", dest.name, move_problem, where)
        return Finalized(where, True, where == dest, "; ".join(p for p in (problem, move_problem) if p),
                         report.messages_recovered)
