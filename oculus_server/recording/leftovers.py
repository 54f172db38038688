"""Start-up clean-up of what a crashed run left in the recordings folder — each file handled once.

* ``NAME.mcap.partial`` with data or at least its start metadata: rebuilt into a valid MCAP and
  filed in ``failure/`` (its end record says "crashed").
* a partial without even an MCAP header (killed while creating it): retired once into
  ``failure/`` under its own name, with a ``.txt`` note beside it, so it never warns again.
* hidden space-reserve files of crashed writers: removed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from robot_formats.recording.errors import RecordingError
from robot_formats.recording.paths import FAILURE_DIR, RESERVE_SUFFIX, retire_note
from robot_formats.recording.recover import find_partials, recover

log = logging.getLogger(__name__)


def _retire(partial: Path, dest_dir: Path, why: str) -> Path | None:
    """Moves an unrecoverable partial into `dest_dir` with a note; None if that fails too."""
    dest = dest_dir / partial.name
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            raise FileExistsError(17, "File exists", str(dest))
        os.replace(partial, dest)
        retire_note(dest, f"{partial.name}: nothing could be recovered ({why}).\n"
                          "It was left by a run that stopped while creating it; it is kept here as it was.")
    except OSError as exc:
        log.warning("leftover %s holds nothing recoverable (%s) and cannot be moved to %s: %s",
                    partial, why, dest_dir, exc)
        return None
    log.warning("leftover %s held nothing recoverable (%s): retired to %s", partial.name, why, dest)
    return dest


def recover_leftovers(directory: Path) -> list[Path]:
    """Recovers `*.mcap.partial` files a crashed run left behind into `directory/failure/`.

    Returns:
        The recovered recordings. A file whose recovery fails for another reason (e.g. an
        unreadable file) is left where it is, with a message saying how to retry by hand.
    """
    directory = Path(directory)
    dest_dir = directory / FAILURE_DIR
    if directory.is_dir():
        for reserve in directory.glob("." + "*" + RESERVE_SUFFIX):
            reserve.unlink(missing_ok=True)
    out: list[Path] = []
    for partial in find_partials(directory):
        try:
            report = recover(partial)
        except (RecordingError, OSError) as exc:
            log.warning("could not recover %s: %s (try: teleop-replay recover %s)", partial, exc, partial)
            continue
        if report.output is None:
            _retire(partial, dest_dir, report.stop_reason or "no MCAP header")
            continue
        dest = dest_dir / report.output.name
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                raise FileExistsError(17, "File exists", str(dest))
            os.replace(report.output, dest)
        except OSError as exc:
            log.warning("recovered %s but cannot move it into %s: %s; it stays at %s",
                        partial.name, dest_dir, exc, report.output)
            out.append(report.output)
            continue
        out.append(dest)
        log.warning("recovered a recording left by a crashed run -> %s: %s", dest, report.describe())
    return out
