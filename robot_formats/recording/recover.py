"""Rebuilding unfinished recordings (after a crash, SIGKILL, power loss or a full disk).

`recover` keeps every intact chunk of a ``.partial`` file, cuts the damaged tail, and appends a
summary and index in place, so the result opens in every MCAP reader. Damaged metadata,
attachment, schema or channel records are dropped (marked as a private record every reader
skips) and a damaged header is repaired; each is listed in the report. Before the result takes
its final name it is read whole with the official reader (every record in file order, then the
summary, metadata and attachments through the index): a file that would not read is never
written under the output name. It reports exactly what was kept and estimates what was lost.
`find_partials` lists leftovers for the daemon's start-up.
A partial that holds its header but no message yet (a crash in an episode's first flush period)
still becomes a valid, empty recording, so its start metadata survives and it is filed once.
This module knows nothing of the writer: the writer imports it (to salvage), never the reverse.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mcap.reader import make_reader
from mcap.stream_reader import StreamReader

from robot_formats.recording.errors import RecordingError
from robot_formats.recording.paths import PARTIAL_SUFFIX, is_partial
from robot_formats.recording.scan import MAGIC, ScanResult, scan, write_tail
from robot_formats.recording.sink import fsync_dir, move_into

log = logging.getLogger(__name__)

EXIT_OK = 0  # nothing was lost (already complete, or only the summary was missing)
EXIT_UNRECOVERABLE = 1  # nothing could be recovered
EXIT_DATA_LOST = 3  # a valid file was written but data was lost (the `mcap recover` convention)


@dataclass
class RecoverReport:
    """What `recover` kept and what was lost.

    Attributes:
        source: the file that was read.
        output: the valid file written (None if nothing could be recovered).
        status: "intact" (already finished), "repaired" (only the summary was missing),
            "recovered" (valid file written, data lost; possibly no message at all when the
            crash came before the first flush) or "unrecoverable" (not even a header).
        messages_recovered: messages in the output.
        topic_counts: messages per topic in the output.
        chunks_recovered: intact chunks kept.
        first_log_time_ns, last_log_time_ns: log-time range of the recovered messages.
        truncated_bytes: bytes of the damaged tail that could not be used.
        stop_reason: why the scan stopped (where the damage starts).
        had_end_record: the "recording_end" metadata was found (the writer had reached `close`).
        truncated_estimate_s: the truncated tail's length in recording time, estimated from the
            recovered data rate.
        unflushed_max_s: upper bound of data still in memory when the writer died (its flush
            period; 0 when the file was closed).
        start_metadata: the "recording_start" metadata, if recovered.
        dropped: damaged records left out or repaired (one line each: which, where, why).
    """

    source: Path
    output: Path | None
    status: str
    messages_recovered: int = 0
    topic_counts: dict[str, int] = field(default_factory=dict)
    chunks_recovered: int = 0
    first_log_time_ns: int = 0
    last_log_time_ns: int = 0
    truncated_bytes: int = 0
    stop_reason: str = ""
    had_end_record: bool = False
    truncated_estimate_s: float = 0.0
    unflushed_max_s: float = 0.0
    start_metadata: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    @property
    def data_lost(self) -> bool:
        return self.status == "recovered"

    @property
    def estimated_lost_s(self) -> float:
        """Upper estimate of the recording time lost, seconds."""
        return self.truncated_estimate_s + self.unflushed_max_s

    @property
    def exit_code(self) -> int:
        """0 nothing lost, 3 data lost but a valid file written, 1 nothing recovered."""
        return {"intact": EXIT_OK, "repaired": EXIT_OK, "recovered": EXIT_DATA_LOST}.get(
            self.status, EXIT_UNRECOVERABLE
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"] = str(self.source)
        d["output"] = str(self.output) if self.output else None
        d["data_lost"] = self.data_lost
        d["estimated_lost_s"] = self.estimated_lost_s
        d["exit_code"] = self.exit_code
        return d

    def describe(self) -> str:
        """A few human-readable lines."""
        if self.status == "unrecoverable":
            return f"{self.source}: nothing could be recovered ({self.stop_reason})"
        span = (self.last_log_time_ns - self.first_log_time_ns) / 1e9 if self.messages_recovered else 0.0
        lines = [
            f"{self.source} -> {self.output}: {self.status}",
            f"  kept {self.messages_recovered} messages in {self.chunks_recovered} chunks, {span:.2f} s of data",
        ]
        if self.status != "intact":
            lines.append(f"  scan stopped: {self.stop_reason}")
        lines.extend(f"  {d}" for d in self.dropped)
        if self.data_lost:
            lines.append(
                f"  lost: {self.truncated_bytes} bytes of damaged tail (~{self.truncated_estimate_s:.2f} s) "
                f"+ up to {self.unflushed_max_s:.2f} s never flushed; ~{self.estimated_lost_s:.2f} s at most"
            )
        return "\n".join(lines)


def _report(path: Path, output: Path | None, status: str, s: ScanResult) -> RecoverReport:
    start = s.metadata_named("recording_start") or {}
    had_end = s.metadata_named("recording_end") is not None
    span_s = (s.end_ns - s.start_ns) / 1e9 if s.messages else 0.0
    rate = s.valid_end / span_s if span_s > 0 else 0.0
    try:
        flush = float(start.get("flush_period_s", "nan"))
    except ValueError:
        flush = float("nan")
    lost = status == "recovered"
    return RecoverReport(
        source=path,
        output=output,
        status=status,
        messages_recovered=s.messages,
        topic_counts=s.topic_counts(),
        chunks_recovered=len(s.chunks),
        first_log_time_ns=s.start_ns,
        last_log_time_ns=s.end_ns,
        truncated_bytes=s.truncated_bytes,
        stop_reason=s.stop_reason,
        had_end_record=had_end,
        truncated_estimate_s=(s.truncated_bytes / rate) if (lost and rate > 0) else 0.0,
        unflushed_max_s=(flush if math.isfinite(flush) else 1.0) if (lost and not had_end) else 0.0,
        start_metadata=dict(start),
        dropped=[d.describe() for d in s.dropped],
    )


def _ends_whole(path: Path) -> bool:
    """True if `path` ends as a finished MCAP does: the standard reader finds a footer and summary,
    and the closing magic bytes are intact (that reader does not check them; a streaming reader
    does, and refuses the file at its very end)."""
    try:
        with open(path, "rb") as f:
            if make_reader(f).get_summary() is None:
                return False
            f.seek(-len(MAGIC), os.SEEK_END)
            return f.read(len(MAGIC)) == MAGIC
    except Exception:  # noqa: BLE001 - the mcap library raises many types on a damaged summary
        return False


def _default_output(path: Path) -> Path:
    if path.name.endswith(PARTIAL_SUFFIX):
        return path.with_name(path.name[: -len(PARTIAL_SUFFIX)])
    stem = path.name.removesuffix(".mcap")
    return path.with_name(stem + ".recovered.mcap")


def _recovery_metadata(report: RecoverReport) -> dict[str, str]:
    return {
        "source": report.source.name,
        "status": report.status,
        "messages_recovered": str(report.messages_recovered),
        "truncated_bytes": str(report.truncated_bytes),
        "stop_reason": report.stop_reason,
        "estimated_lost_s": f"{report.estimated_lost_s:.3f}",
        "topic_counts": json.dumps(report.topic_counts, separators=(",", ":")),
        "dropped": json.dumps(report.dropped),
    }


def verify_readable(path: Path) -> None:
    """Reads `path` whole with the official `mcap` reader: every record in file order (chunks as
    records; their content was checked by the scan), then the summary, every metadata record and
    attachment through the index.

    Raises:
        RecordingError: a record does not read (saying which exception the reader raised).
    """
    try:
        with open(path, "rb") as f:
            for _ in StreamReader(f, emit_chunks=True).records:
                pass
            f.seek(0)
            reader = make_reader(f)
            if reader.get_summary() is None:
                raise RecordingError("no summary")
            for _ in reader.iter_metadata():
                pass
            for _ in reader.iter_attachments():
                pass
    except RecordingError as exc:
        raise RecordingError(f"{path} does not read with the mcap reader: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the mcap library raises many types on a bad file
        raise RecordingError(f"{path} does not read with the mcap reader: {type(exc).__name__}: {exc}") from exc


def _finish(
    path: Path, target: Path, s: ScanResult, extra: list[tuple[str, Mapping[str, str]]], in_place: bool
) -> None:
    """Writes the repaired file at `target`.

    In place: `path` itself is cut and completed (a few kB written, so it works on a nearly full
    disk) and then renamed to `target`; otherwise the intact prefix is copied first and `path`
    is left untouched.
    """
    work = path if in_place else target.with_name(target.name + ".recovering")
    try:
        if not in_place:
            with open(path, "rb") as src, open(work, "wb") as dst:
                remaining = s.valid_end
                while remaining > 0:
                    block = src.read(min(remaining, 1 << 22))
                    if not block:
                        raise RecordingError(f"{path} shrank while being recovered")
                    dst.write(block)
                    remaining -= len(block)
        with open(work, "r+b") as f:
            for offset, patch in s.patches:  # drop (or repair) damaged records in place
                f.seek(offset)
                f.write(patch)
            write_tail(f, s, extra)
            f.flush()
            os.fsync(f.fileno())
        verify_readable(work)
        if work != target:
            os.replace(work, target)
        fsync_dir(target.parent)
    except (OSError, RecordingError) as exc:
        if not in_place:
            work.unlink(missing_ok=True)
        raise RecordingError(f"cannot write recovered recording {target}: {exc}") from exc


def recover(path: Path | str, out: Path | str | None = None) -> RecoverReport:
    """Rebuilds a valid, indexed MCAP from an unfinished (or finished) recording.

    Args:
        path: a ``NAME.mcap.partial`` left by a crash, or any MCAP file.
        out: where to write the result. Default: a ``.partial`` is repaired in place and renamed
            to ``NAME.mcap``; any other file gets ``NAME.recovered.mcap`` beside it (the original
            is left untouched).

    Returns:
        The report (see `RecoverReport.exit_code` for the CLI convention). Nothing is written
        when the status is "unrecoverable".

    Raises:
        RecordingError: the file cannot be read, or the output exists or cannot be written.
    """
    path = Path(path)
    try:
        s = scan(path)
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc}") from exc
    target = Path(out) if out is not None else None
    if s.complete and not s.dropped and _ends_whole(path):
        if target is None and is_partial(path):
            target = _default_output(path)  # finished but never renamed (e.g. the move failed)
            if target.exists():
                raise RecordingError(f"{target} already exists; pass another output (-o)")
            os.replace(path, target)
            fsync_dir(target.parent)
            return _report(path, target, "intact", s)
        if target is not None and target.resolve() != path.resolve():
            if target.exists():
                raise RecordingError(f"{target} already exists; choose another output")
            shutil.copyfile(path, target)
        return _report(path, target or path, "intact", s)
    if s.header is None:
        return _report(path, None, "unrecoverable", s)
    target = target or _default_output(path)
    if target.exists():
        raise RecordingError(f"{target} already exists; pass another output (-o)")
    had_end = s.metadata_named("recording_end") is not None
    last_is_end = had_end and bool(s.metadata) and (not s.chunks or s.metadata[-1][0] > s.chunks[-1].offset)
    if s.dropped:
        status = "recovered"  # damaged records were left out
    elif s.complete or (last_is_end and s.metadata[-1][2].name == "recording_end"):
        status = "repaired"  # every message is there; only the summary was missing or damaged
    else:
        status = "recovered"
    report = _report(path, target, status, s)
    extra: list[tuple[str, Mapping[str, str]]] = [("recovery", _recovery_metadata(report))]
    if not had_end:
        extra.append(
            (
                "recording_end",
                {
                    "outcome": "crashed",
                    "recovered": "true",
                    "messages": str(report.messages_recovered),
                    "duration_s": f"{(s.end_ns - s.start_ns) / 1e9:.3f}",
                    "topic_counts": json.dumps(report.topic_counts, separators=(",", ":")),
                    "estimated_lost_s": f"{report.estimated_lost_s:.3f}",
                },
            )
        )
    in_place = is_partial(path) and target == _default_output(path)
    _finish(path, target, s, extra, in_place)
    log.info("%s", report.describe())
    return report


def finalize_partial(
    partial: Path, dest: Path, end_metadata: Mapping[str, str], fallback: Path | None = None
) -> tuple[RecoverReport, Path, str]:
    """Finishes an aborted recording in place (cut after the last intact chunk, add a summary)
    and moves it to `dest` in one rename (or to `fallback` if `dest`'s folder refuses it).

    Used by the writer's abort; writes only a few kB, so it works on a nearly full disk.

    Returns:
        (the report, where the file is now, '' or why it is not at `dest`).

    Raises:
        RecordingError: the partial file is unusable or cannot be written (it is left as is).
    """
    try:
        s = scan(partial)
    except OSError as exc:
        raise RecordingError(f"cannot read {partial}: {exc}") from exc
    if s.header is None:
        raise RecordingError(f"{partial} has no MCAP header: {s.stop_reason}")
    report = _report(partial, dest, "repaired" if not (s.truncated_bytes or s.dropped) else "recovered", s)
    _finish(
        partial, partial, s, [("recording_end", dict(end_metadata)), ("recovery", _recovery_metadata(report))], True
    )
    where, problem = move_into(partial, dest, fallback)
    report.output = where
    return report, where, problem


def find_partials(directory: Path | str) -> list[Path]:
    """Returns the unfinished recordings (``*.mcap.partial``) in `directory`, oldest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if p.is_file() and p.name.endswith(".mcap" + PARTIAL_SUFFIX)]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))
