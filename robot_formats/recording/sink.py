"""The file an episode is streamed into: counts bytes, fsyncs, and turns OS errors into clear ones."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from robot_formats.recording.errors import RecordingError

Opener = Callable[[Path], BinaryIO]


def open_exclusive(path: Path) -> BinaryIO:
    """Opens `path` for binary writing; fails if it already exists (never overwrite a recording)."""
    return open(path, "xb")


def describe_os_error(exc: OSError) -> str:
    """Returns a one-line explanation of an I/O error with a hint for the common causes."""
    hints = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "the file system is read-only",
        errno.EIO: "low-level I/O error (failing disk or removed drive?)",
        errno.EEXIST: "the file already exists",
        errno.ENOENT: "the folder does not exist",
    }
    name = errno.errorcode.get(exc.errno or -1, "")
    hint = hints.get(exc.errno or -1, exc.strerror or str(exc))
    return f"{hint} ({name or 'OSError'}: {exc})"


class DurableFile:
    """A write-only binary stream for the MCAP writer with byte counting and `sync()`.

    The MCAP library only needs `write`, `tell` and `flush`. Every OS error becomes a
    `RecordingError` naming the file and the cause; after the first error the file is marked
    failed and every later call raises at once.

    Args:
        path: file to create (must not exist).
        opener: opens `path` for binary writing (a hook so tests can substitute a full disk).
    """

    def __init__(self, path: Path, opener: Opener = open_exclusive) -> None:
        self.path = Path(path)
        try:
            self._f = opener(self.path)
        except OSError as exc:
            raise RecordingError(f"cannot create recording {self.path}: {describe_os_error(exc)}") from exc
        self.bytes_written = 0  # handed to the OS or buffered for it
        self.bytes_synced = 0  # known to be on disk (after the last successful sync)
        self.failed: str | None = None
        self._closed = False

    def _check(self) -> None:
        if self.failed is not None:
            raise RecordingError(f"recording {self.path} already failed: {self.failed}")
        if self._closed:
            raise RecordingError(f"recording {self.path} is closed")

    def _fail(self, what: str, exc: OSError) -> RecordingError:
        self.failed = f"{what} failed: {describe_os_error(exc)}"
        return RecordingError(f"recording {self.path}: {self.failed}")

    def write(self, data: bytes) -> int:
        self._check()
        try:
            n = self._f.write(data)
        except OSError as exc:
            raise self._fail("write", exc) from exc
        n = len(data) if n is None else n
        self.bytes_written += n
        return n

    def tell(self) -> int:
        return self.bytes_written

    def flush(self) -> None:
        self._check()
        try:
            self._f.flush()
        except OSError as exc:
            raise self._fail("flush", exc) from exc

    def sync(self) -> None:
        """Flushes Python's buffer and asks the OS to put the bytes on disk (`os.fsync`)."""
        self.flush()
        try:
            os.fsync(self._f.fileno())
        except OSError as exc:
            raise self._fail("fsync", exc) from exc
        self.bytes_synced = self.bytes_written

    def close(self) -> None:
        """Flushes and closes; raises `RecordingError` if the final flush fails."""
        if self._closed:
            return
        self._closed = True
        try:
            self._f.close()
        except OSError as exc:
            raise self._fail("close", exc) from exc

    def close_quietly(self) -> None:
        """Closes without raising (used after a failure: the tail may be lost, the rest is kept)."""
        self._closed = True
        try:
            self._f.close()
        except OSError:
            # A full disk refuses the buffered tail on close; the file keeps what reached it.
            pass


def fsync_dir(path: Path) -> None:
    """Makes a rename in folder `path` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def move_into(src: Path, dest: Path, fallback: Path | None = None) -> tuple[Path, str]:
    """Moves `src` to `dest` (creating `dest`'s folder), never raising for OS errors.

    A folder that cannot be created or written (full disk, permissions, an immutable folder)
    does not lose the file: it is moved to `fallback` instead when given (normally a finished
    name beside `src`), else left where it is.

    Returns:
        (where the file is now, '' or a one-line description of what went wrong).
    """
    problem = ""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            raise FileExistsError(17, "File exists", str(dest))
        os.replace(src, dest)
        fsync_dir(dest.parent)
        return dest, ""
    except OSError as exc:
        problem = f"cannot move {dest.name} into {dest.parent}: {describe_os_error(exc)}"
    if fallback is not None and fallback not in (src, dest):
        try:
            if fallback.exists():
                raise FileExistsError(17, "File exists", str(fallback))
            os.replace(src, fallback)
            fsync_dir(fallback.parent)
            return fallback, problem
        except OSError as exc:
            problem += f"; cannot rename it to {fallback.name} either: {describe_os_error(exc)}"
    return src, problem
