"""Where recordings live: file names, the in-progress suffix and the outcome folders.

``recordings/NAME.mcap.partial`` while an episode is written; on close it is moved once, straight
to ``recordings/success/NAME.mcap`` or ``recordings/failure/NAME.mcap``. Nothing here touches
the disk except `retire_note`.
"""

from __future__ import annotations

from pathlib import Path

RECORDINGS_DIR = "recordings"  # the default recordings folder (the daemon writes, the web UI lists)
PARTIAL_SUFFIX = ".partial"
RESERVE_SUFFIX = ".reserve"  # hidden space reserve beside a partial (see mcap_file.EpisodeFile)
SUCCESS_DIR = "success"
FAILURE_DIR = "failure"


def partial_path(final_path: Path) -> Path:
    """Returns the in-progress name of `final_path` (``NAME.mcap`` → ``NAME.mcap.partial``)."""
    return final_path.with_name(final_path.name + PARTIAL_SUFFIX)


def final_name(partial: Path) -> str:
    """Returns the finished name of a partial (``NAME.mcap.partial`` → ``NAME.mcap``)."""
    name = partial.name
    return name.removesuffix(PARTIAL_SUFFIX)


def reserve_path(partial: Path) -> Path:
    """Returns the hidden space-reserve file of a partial (``.NAME.mcap.partial.reserve``)."""
    return partial.with_name("." + partial.name + RESERVE_SUFFIX)


def outcome_dir(recordings_dir: Path, success: bool) -> Path:
    """Returns ``recordings_dir/success`` or ``recordings_dir/failure``."""
    return Path(recordings_dir) / (SUCCESS_DIR if success else FAILURE_DIR)


def is_partial(path: Path) -> bool:
    """True for ``*.mcap.partial`` names."""
    return path.name.endswith(".mcap" + PARTIAL_SUFFIX)


def retire_note(path: Path, text: str) -> Path:
    """Writes ``PATH.txt`` beside a retired file explaining what happened to it; returns it."""
    note = path.with_name(path.name + ".txt")
    note.write_text(text.rstrip() + "\n")
    return note
