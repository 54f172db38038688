"""`EpisodeWriter`: streams RecordTicks into one crash-safe, Foxglove-native MCAP file.

A thin composition of the two halves of writing an episode: `mapping.TickMapper` (which topic
each piece of a tick goes to, with which times) and `mcap_file.EpisodeFile` (the file's life:
``NAME.mcap.partial``, periodic flush + fsync, one final move, salvage after a write error).
See `robot_formats.recording.schemas` for the topics.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from robot_formats.recording import encode as E
from robot_formats.recording import schemas as S
from robot_formats.recording.camera_mounts import CameraMount
from robot_formats.recording.encode import Message
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.mapping import (
    DEFAULT_WORLD_T_VR_HEAD,
    CameraSpec,
    ScenePainter,
    TickMapper,
)
from robot_formats.recording.mcap_file import (
    COMPRESSIONS,
    MCAP_CHUNK_SIZE,
    MCAP_COMPRESSION,
    MCAP_FLUSH_PERIOD_S,
    RESERVE_BYTES,
    WRITER_NAME,
    EpisodeFile,
    Finalized,
)
from robot_formats.recording.paths import PARTIAL_SUFFIX, partial_path
from robot_formats.recording.records import Event, RecordTick, SentCommand
from robot_formats.recording.sink import Opener, open_exclusive

__all__ = [
    "COMPRESSIONS", "DEFAULT_WORLD_T_VR_HEAD", "PARTIAL_SUFFIX", "WRITER_NAME", "CameraSpec",
    "EpisodeWriter", "Finalized", "as_str_map", "partial_path",
]

log = logging.getLogger(__name__)

_OUTCOME = re.compile(r"^[a-z][a-z0-9_-]*$")


def as_str_map(values: Mapping[str, Any], what: str) -> dict[str, str]:
    """Returns MCAP metadata (str → str); non-string values are JSON-encoded.

    Raises:
        RecordingError: a key is not a string.
    """
    out: dict[str, str] = {}
    for k, v in values.items():
        if not isinstance(k, str):
            raise RecordingError(f"{what}: metadata keys must be strings, got {k!r}")
        out[k] = v if isinstance(v, str) else json.dumps(E.jsonable(v), separators=(",", ":"))
    return out


class EpisodeWriter:
    """Writes one episode. Single-threaded: only the daemon's MCAP-writer thread may call it.

    Args:
        final_path: where the finished recording goes by default (``*.mcap``); the file is
            written beside it as ``NAME.mcap.partial``. Must not exist yet.
        start_metadata: "recording_start" metadata (operator, task, robot, config, versions,
            rates …); values that are not strings are JSON-encoded.
        cameras: camera name → (width px, height px, vertical fov deg) for the calibration topics.
        attachments: (name, media type, bytes) to embed, e.g. ("panda.xml", "application/xml", …).
        flush_period_s: close the chunk and fsync at least this often.
        compression: chunk compression, "zstd", "lz4" or "none".
        chunk_size: a chunk is also closed when it grows past this many bytes.
        policy_gains: shown on every /control/mode message.
        world_T_base: (4, 4) robot base pose in the world frame, metres (identity if None).
        world_T_vr_head: (4, 4) display placement of the VR headset frame in the world.
        opener: opens the partial file for writing (hook for tests; default refuses to overwrite).
        camera_mounts: camera name → mount (its `/tf` frame); also stored in the start metadata.
        reserve_bytes: disk space held back for finalizing after a full disk.
        scene: draws the 3D scene (`mapping.ScenePainter`: link frames in /tf, /scene).

    Raises:
        RecordingError: the file exists already or cannot be created.
    """

    def __init__(
        self,
        final_path: Path | str,
        start_metadata: Mapping[str, Any],
        cameras: Mapping[str, CameraSpec] | None = None,
        attachments: Sequence[tuple[str, str, bytes]] = (),
        flush_period_s: float = MCAP_FLUSH_PERIOD_S,
        compression: str = MCAP_COMPRESSION,
        chunk_size: int = MCAP_CHUNK_SIZE,
        policy_gains: Mapping[str, float] | None = None,
        world_T_base: np.ndarray | None = None,
        world_T_vr_head: np.ndarray | None = None,
        opener: Opener = open_exclusive,
        camera_mounts: Mapping[str, CameraMount] | None = None,
        reserve_bytes: int = RESERVE_BYTES,
        scene: ScenePainter | None = None,
    ) -> None:
        self.final_path = Path(final_path)
        if self.final_path.suffix != ".mcap":
            raise RecordingError(f"recording path must end in .mcap, got {self.final_path}")
        if self.final_path.exists():
            raise RecordingError(f"recording {self.final_path} already exists; refusing to overwrite it")
        self._mapper = TickMapper(cameras, camera_mounts, policy_gains, world_T_base, world_T_vr_head, scene)
        created = time.time()
        meta: dict[str, Any] = {
            **as_str_map(start_metadata, "start_metadata"),
            "writer": WRITER_NAME,
            "schema_version": S.SCHEMA_VERSION,
            "flush_period_s": repr(float(flush_period_s)),
            "compression": compression,
            "created": datetime.fromtimestamp(created, UTC).isoformat(),
        }
        if camera_mounts:
            meta.setdefault("cameras", {n: m.to_dict() for n, m in camera_mounts.items()})
        self._file = EpisodeFile(
            partial_path(self.final_path), as_str_map(meta, "start_metadata"), attachments,
            flush_period_s=flush_period_s, compression=compression, chunk_size=chunk_size,
            opener=opener, reserve_bytes=reserve_bytes, created_ns=E.to_ns(created),
        )
        self.flush_period_s = self._file.flush_period_s
        self.last_flushed_tick_seq = -1
        self.result: Finalized | None = None  # set once the episode has ended (close or abort)

    # -- properties -----------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The file being written (the ``.partial`` until it ends, then where it was put)."""
        return self._file.path

    @property
    def messages(self) -> int:
        """Messages written so far."""
        return self._file.messages

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the OS so far (the open chunk is not included until it is flushed)."""
        return self._file.bytes_written

    @property
    def flushes(self) -> int:
        return self._file.flushes

    @property
    def duration_s(self) -> float:
        """Wall time from the first to the last tick written, seconds."""
        return self._mapper.duration_s

    @property
    def topic_counts(self) -> dict[str, int]:
        """Messages written per topic (topics with none are left out)."""
        return self._file.topic_counts

    @property
    def encode_errors(self) -> int:
        """Messages skipped because their content was malformed (logged)."""
        return self._mapper.encode_errors

    # -- writing --------------------------------------------------------------------------------
    def _put(self, messages: list[Message]) -> None:
        for m in messages:
            self._file.add(m.topic, m.data, m.log_ns, m.publish_ns, m.sequence)

    def write(self, tick: RecordTick) -> None:
        """Writes everything in one recording tick; flushes when the flush period is due.

        Malformed pieces (a non-4×4 pose, NaN targets) are skipped and counted, never fatal.

        Raises:
            RecordingError: the file cannot be written (disk full, permissions …); the caller
                stops this recording and calls `abort()`.
        """
        self._file.check_open()
        self._put(self._mapper.tick(tick))
        if self._file.flush_due():
            self.flush()

    def write_sent_commands(self, sent: Sequence[SentCommand]) -> None:
        """Writes commands sent after the last tick (the command topics, each once).

        Raises:
            RecordingError: the file cannot be written.
        """
        self._file.check_open()
        self._put(self._mapper.sent_commands(tuple(sent)))

    def write_event(self, event: Event) -> None:
        """Writes one event on /events (JSON) and /log (foxglove.Log).

        Raises:
            RecordingError: the file cannot be written.
        """
        self._file.check_open()
        self._put(self._mapper.event(event))

    def flush(self) -> None:
        """Closes the open chunk and fsyncs now (also done automatically every flush period).

        Raises:
            RecordingError: the file cannot be written.
        """
        self._file.check_open()
        self._file.sync()
        self.last_flushed_tick_seq = self._mapper.last_tick_seq

    # -- ending ---------------------------------------------------------------------------------
    def _end(self, outcome: str, extra: Mapping[str, Any]) -> dict[str, str]:
        meta = self._mapper.end_metadata(outcome, self._file.messages, self._file.topic_counts)
        meta.update(extra)
        return as_str_map(meta, "end_metadata")

    def finalize(
        self, outcome: str, end_metadata: Mapping[str, Any] | None = None, dest_dir: Path | None = None
    ) -> Finalized:
        """Ends the episode and files it; never raises for I/O problems.

        The summary is written and the file moved once, to ``dest_dir/NAME.mcap`` (default: the
        `final_path` given at construction). If the file cannot be finished (e.g. the disk filled)
        it is salvaged instead: outcome "aborted", the cause as ``reason``. If the folder refuses
        the file it stays beside the partial under its finished name (``filed`` False).

        Raises:
            RecordingError: `outcome` is not a lower-case word, or the episode ended already.
        """
        if not isinstance(outcome, str) or not _OUTCOME.match(outcome):
            raise RecordingError(f"outcome must be a lower-case word like 'success' or 'failure', got {outcome!r}")
        if self.result is not None:
            raise RecordingError(f"recording {self.final_path.name} has ended already ({self.result.path})")
        dest = (Path(dest_dir) if dest_dir is not None else self.final_path.parent) / self.final_path.name
        try:
            self.result = self._file.finish(self._end(outcome, end_metadata or {}), dest)
            if self.result.filed:
                log.info("recording %s closed (%s): %d messages, %.1f s", dest, outcome, self.messages, self.duration_s)
        except RecordingError as exc:
            reason = f"could not close the recording: {exc}"
            self._mapper.note_error(reason)
            extra = {**(end_metadata or {}), "outcome": "aborted", "requested_outcome": outcome, "reason": reason}
            self.result = self._file.salvage(self._end("aborted", extra), dest)
            if not self.result.problem:
                self.result = Finalized(
                    self.result.path, self.result.complete, self.result.filed, reason, self.result.messages
                )
        return self.result

    def close(self, outcome: str, end_metadata: Mapping[str, Any] | None = None, dest_dir: Path | None = None) -> Path:
        """Finishes the file (end metadata, summary, index), fsyncs and moves it to its final name.

        Args:
            outcome: "success", "failure", "shutdown", … (lower-case word).
            end_metadata: extra "recording_end" fields; they override the computed ones.
            dest_dir: folder of the finished file (default: beside the partial).

        Returns:
            The final path.

        Raises:
            RecordingError: bad outcome, or the file could not be finished (the message says
                where what was written is kept).
        """
        result = self.finalize(outcome, end_metadata, dest_dir)
        if not result.complete or result.problem:
            where = f"what was written is kept in {result.path}" if result.complete else (
                f"{result.path} is left for `teleop-replay recover`")
            raise RecordingError(f"could not close {self.final_path.name}: {result.problem}; {where}")
        assert result.path is not None
        return result.path

    def abort(self, reason: str = "", dest_dir: Path | None = None) -> Path | None:
        """Ends a recording that cannot go on (e.g. after a write error) and keeps what it can.

        The file is cut after its last complete chunk and given a summary in place (a space
        reserve is released first, so it works on a full disk); ``recording_end`` says outcome
        "aborted", the real cause in ``reason`` and counts it among the errors.

        Returns:
            The final path, or None if even that failed (the ``.partial`` is left for `recover`).
        """
        if self.result is not None:
            return self.result.path if self.result.complete else None
        cause = reason or self._file.failed or "aborted"
        if self._file.failed is not None and reason and self._file.failed not in reason:
            cause = f"{reason} ({self._file.failed})"
        self._mapper.note_error(f"aborted: {cause}")
        dest = (Path(dest_dir) if dest_dir is not None else self.final_path.parent) / self.final_path.name
        self.result = self._file.salvage(self._end("aborted", {"reason": cause}), dest)
        if self.result.complete:
            log.warning("recording %s aborted (%s): kept %d messages in %s", self.final_path.name, cause,
                        self.result.messages, self.result.path)
            return self.result.path
        log.error("recording %s could not be finalized (%s); run `teleop-replay recover %s`",
                  self.final_path.name, self.result.problem, self.result.path)
        return None
