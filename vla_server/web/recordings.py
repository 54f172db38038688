"""`RecordingLibrary`: the teleop recordings folder as the web UI sees it.

Per finished recording (``*.mcap`` anywhere under the folder, e.g. ``success/NAME.mcap``): a summary
for the list, what `teleop-replay info` says (JSON and its text; `robot_formats.recording.info`), the
`teleop-replay plot` PNG and one MP4 per camera (`teleop-replay export --to mp4`), both made on demand
by running the `teleop-replay` command (`replay_command`) and cached on disk.

A recording's id is its path relative to the folder with ``/`` separators. Ids are checked before
any file is touched: no absolute paths, no ``..``, no hidden parts, ``.mcap`` only, and the resolved
file must lie inside the folder (symlinks out of it are refused).

Cache layout: ``<cache_dir>/<key>/plot.png`` and ``<cache_dir>/<key>/video/<stem>.<camera>.mp4``,
where ``key`` hashes the id, size and modification time, so a changed file gets new derived files.
Files are written under a temporary name and renamed into place; the cache is pruned to
`max_cache_bytes` (oldest first) after each new entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from robot_formats.recording import schemas as S
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.info import format_info, recording_info
from vla_server.web.jobs import DONE, JobRunner, JobStatus, Progress
from vla_server.web.replay_command import COMMAND, run_replay

MAX_LISTED = 2000  # recordings listed at most (newest first)
PLOT_TIMEOUT_S = 120.0  # `teleop-replay plot` is stopped after this long, s
VIDEO_TIMEOUT_S = 1800.0  # `teleop-replay export --to mp4` is stopped after this long, s


class RecordingNotFound(LookupError):
    """No finished recording with that id."""


class BadRecordingId(ValueError):
    """An id that could name something outside the recordings folder or not a recording."""


@dataclass(frozen=True)
class RecordingSummary:
    """One row of the recordings list. Times are Unix seconds; `error` is set when unreadable."""

    id: str
    name: str
    folder: str
    size_bytes: int
    modified: float
    outcome: str = "unknown"
    duration_s: float | None = None
    task: str = ""
    operator: str = ""
    cameras: tuple[str, ...] = ()
    messages: int = 0
    gaps_found: bool = False
    recovered: bool = False
    sim_state: bool = False  # carries the simulator's state blob (/sim/state): an arena episode can start in it
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cameras"] = list(self.cameras)
        return d


def check_id(rid: str) -> PurePosixPath:
    """Validates a recording id's form (not its existence).

    Raises:
        BadRecordingId: empty, absolute, with ``..``/hidden/empty parts, backslashes or NUL, or not ``.mcap``.
    """
    if not isinstance(rid, str) or not rid or len(rid) > 1024:
        raise BadRecordingId(f"recording id: expected a relative path like 'success/NAME.mcap', got {rid!r}")
    if "\\" in rid or "\x00" in rid or rid.startswith("/"):
        raise BadRecordingId(f"recording id: expected a relative path with '/' separators, got {rid!r}")
    p = PurePosixPath(rid)
    if any(part in ("", ".", "..") or part.startswith(".") for part in rid.split("/")):
        raise BadRecordingId(f"recording id: no empty, '.', '..' or hidden parts allowed, got {rid!r}")
    if not p.name.endswith(".mcap"):
        raise BadRecordingId(f"recording id: expected a finished '.mcap' recording, got {rid!r}")
    return p


class RecordingLibrary:
    """Lists, describes, plots and videos the recordings under `root`.

    Args:
        root: the recordings folder (need not exist yet; then the list is empty).
        cache_dir: where plots and videos are kept (created on demand).
        max_cache_bytes: prune the cache to this size after writing to it.
        jobs: the runner for video jobs (the library makes one if not given; `close()` stops it).
    """

    def __init__(
        self, root: Path, cache_dir: Path, max_cache_bytes: int = 2_000_000_000, jobs: JobRunner | None = None
    ) -> None:
        self.root = Path(root)
        self.cache_dir = Path(cache_dir)
        self.max_cache_bytes = int(max_cache_bytes)
        self._own_jobs = jobs is None
        self.jobs = jobs or JobRunner()
        self._summaries: dict[tuple[str, int, int], RecordingSummary] = {}
        self._lock = threading.Lock()
        self._plot_lock = threading.Lock()  # matplotlib's pyplot is not thread-safe

    def close(self) -> None:
        """Stops the video job runner if the library made it."""
        if self._own_jobs:
            self.jobs.stop()

    # -- lookup ------------------------------------------------------------------------------------
    def resolve(self, rid: str) -> Path:
        """The file for `rid`.

        Raises:
            BadRecordingId: see `check_id`, or the file resolves outside the folder.
            RecordingNotFound: no such finished recording.
        """
        rel = check_id(rid)
        path = self.root.joinpath(*rel.parts)
        try:
            real = path.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            raise RecordingNotFound(f"no recording {rid!r} in {self.root}") from None
        if not real.is_relative_to(self.root.resolve()):
            raise BadRecordingId(f"recording {rid!r} points outside the recordings folder")
        if not real.is_file():
            raise RecordingNotFound(f"{rid!r} is not a file")
        return real

    def _key(self, rid: str, path: Path) -> str:
        st = path.stat()
        return hashlib.sha1(f"{rid}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:20]

    # -- list --------------------------------------------------------------------------------------
    def list(self) -> list[RecordingSummary]:
        """Every finished recording, newest first (at most `MAX_LISTED`)."""
        if not self.root.is_dir():
            return []
        root = self.root.resolve()
        found: list[tuple[float, str, Path, os.stat_result]] = []
        for path in root.rglob("*.mcap"):
            rel = path.relative_to(root).as_posix()
            try:
                check_id(rel)
                st = path.stat()
            except (BadRecordingId, OSError):
                continue
            if path.is_file():
                found.append((st.st_mtime, rel, path, st))
        found.sort(key=lambda x: (-x[0], x[1]))
        out = [self._summary(rel, path, st) for _, rel, path, st in found[:MAX_LISTED]]
        with self._lock:  # forget files that are gone
            live = {(s.id, s.size_bytes, int(s.modified * 1e9)) for s in out}
            for k in [k for k in self._summaries if (k[0], k[1], k[2]) not in live]:
                del self._summaries[k]
        return out

    def _summary(self, rid: str, path: Path, st: os.stat_result) -> RecordingSummary:
        ck = (rid, st.st_size, int(st.st_mtime * 1e9))
        with self._lock:
            cached = self._summaries.get(ck)
        if cached is not None:
            return cached
        folder = str(PurePosixPath(rid).parent) if "/" in rid else ""
        base = {"id": rid, "name": path.name, "folder": folder, "size_bytes": st.st_size, "modified": st.st_mtime}
        try:
            info = recording_info(path, sequences=False)  # summary and index only: fast
        except (RecordingError, OSError, ValueError) as exc:
            summary = RecordingSummary(**base, error=str(exc))  # type: ignore[arg-type]
        else:
            start = info["metadata"].get("recording_start", {})
            cams = tuple(
                sorted(n for n in (S.camera_name_from_topic(t["topic"]) for t in info["topics"] if t["count"]) if n)
            )
            summary = RecordingSummary(
                **base,  # type: ignore[arg-type]
                outcome=str(info["outcome"]),
                duration_s=info["duration_s"],
                task=str(start.get("task") or start.get("instruction") or ""),
                operator=str(start.get("operator") or ""),
                cameras=cams,
                messages=int(info["messages"]),
                gaps_found=bool(info["gaps_found"]),
                recovered=bool(info["recovered"]),
                sim_state=any(t["topic"] == S.TOPIC_SIM_STATE and t["count"] for t in info["topics"]),
            )
        with self._lock:
            self._summaries[ck] = summary
        return summary

    # -- info --------------------------------------------------------------------------------------
    def info(self, rid: str) -> dict[str, Any]:
        """`teleop-replay info --json` for `rid`, plus ``text``: what `teleop-replay info` prints."""
        path = self.resolve(rid)
        info = recording_info(path)
        info["file"] = rid  # never the server's absolute path
        info["id"] = rid
        info["text"] = format_info(info)
        return info

    # -- plot --------------------------------------------------------------------------------------
    def plot(self, rid: str) -> Path:
        """The `teleop-replay plot` PNG for `rid`, made on first request (a second or two) and cached.

        Raises:
            RecordingError: the plot could not be made (the command's message).
        """
        path = self.resolve(rid)
        out = self.cache_dir / self._key(rid, path) / "plot.png"
        if out.is_file():
            return out
        with self._plot_lock:  # one plot at a time: a second request for it waits and finds it made
            if out.is_file():
                return out
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".plot.{os.getpid()}.{threading.get_ident()}.png")
            try:
                run_replay(["plot", str(path), "-o", str(tmp)], PLOT_TIMEOUT_S, hide=[(str(path), rid)])
                os.replace(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
        self._prune(keep=out.parent)
        return out

    # -- video -------------------------------------------------------------------------------------
    def _video_dir(self, rid: str) -> tuple[Path, str]:
        path = self.resolve(rid)
        key = self._key(rid, path)
        return self.cache_dir / key / "video", key

    def videos(self, rid: str) -> dict[str, Path]:
        """Camera name -> cached MP4 for `rid` (empty until `start_video` has finished)."""
        vdir, _ = self._video_dir(rid)
        manifest = vdir / "cameras.json"
        if not manifest.is_file():
            return {}
        names = json.loads(manifest.read_text())
        return {n: vdir / f for n, f in names.items() if (vdir / f).is_file()}

    def video_status(self, rid: str) -> dict[str, Any]:
        """``{"state": "missing"|"queued"|"running"|"done"|"failed", "phase", "progress", "error", "cameras"}``."""
        vids = self.videos(rid)
        _, key = self._video_dir(rid)
        job = self.jobs.status(key)
        if vids:
            return {**JobStatus(key, state=DONE, phase="done", progress=1.0).to_dict(), "cameras": sorted(vids)}
        if job is None:
            return {"state": "missing", "phase": "", "progress": 0.0, "error": "", "cameras": []}
        return {**job.to_dict(), "cameras": []}

    def start_video(self, rid: str) -> dict[str, Any]:
        """Queues the MP4 export of `rid` unless it exists or is under way; returns `video_status`.

        Raises:
            RuntimeError: the job queue is full.
        """
        if self.videos(rid):
            return self.video_status(rid)
        path = self.resolve(rid)
        vdir, key = self._video_dir(rid)
        if (st := self.jobs.status(key)) is not None and st.state not in ("queued", "running"):
            self.jobs.forget(key)
        self.jobs.submit(key, lambda progress: self._make_video(path, vdir, progress))
        return self.video_status(rid)

    def _make_video(self, path: Path, vdir: Path, progress: Progress) -> None:
        rid = path.relative_to(self.root.resolve()).as_posix()
        info = recording_info(path, sequences=False)
        if not any(S.camera_name_from_topic(t["topic"]) for t in info["topics"] if t["count"]):
            raise RecordingError(f"{path.name} has no camera frames to make a video of")
        tmp = vdir.with_name(f".video.{os.getpid()}.{time.monotonic_ns()}")
        try:
            run_replay(["export", str(path), "--to", "mp4", "-o", str(tmp)], VIDEO_TIMEOUT_S, progress,
                       hide=[(str(path), rid), (str(tmp), "the video cache")])
            stem = path.name[: -len(".mcap")]
            written = {f.name[len(stem) + 1 : -len(".mp4")]: f.name for f in tmp.glob(f"{stem}.*.mp4")}
            if not written:
                raise RecordingError(f"{COMMAND} export wrote no video for {rid}")
            (tmp / "cameras.json").write_text(json.dumps(written))
            if vdir.exists():
                shutil.rmtree(vdir)
            os.replace(tmp, vdir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self._prune(keep=vdir.parent)

    # -- cache -------------------------------------------------------------------------------------
    def _prune(self, keep: Path) -> None:
        """Deletes the least recently written cache entries (never `keep`) until the cache fits `max_cache_bytes`."""
        if not self.cache_dir.is_dir():
            return
        entries = []
        for d in self.cache_dir.iterdir():
            if d.is_dir() and not d.name.startswith("."):
                files = [f for f in d.rglob("*") if f.is_file()]
                entries.append(
                    (max((f.stat().st_mtime for f in files), default=0.0), sum(f.stat().st_size for f in files), d)
                )
        total = sum(e[1] for e in entries)
        for _, size, d in sorted(entries):
            if total <= self.max_cache_bytes:
                break
            if d == keep:
                continue
            shutil.rmtree(d, ignore_errors=True)
            total -= size
