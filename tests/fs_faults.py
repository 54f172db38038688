"""Real file-system faults for recording tests: an immutable folder and a tiny, full disk.

Both need root (CAP_LINUX_IMMUTABLE, CAP_SYS_ADMIN); the tests that use them are skipped with a
message where the machine cannot provide them (no chattr, a file system without attributes, no
permission to mount).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def immutable(folder: Path) -> Iterator[Path]:
    """Makes `folder` immutable (``chattr +i``: even root cannot add or rename files in it)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed: cannot make a folder immutable")
    folder.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip(f"this file system does not support chattr +i: {out.stderr.strip()}")
    probe = folder / ".probe"
    try:
        probe.touch()
    except OSError:
        pass
    else:  # attributes ignored here: the test would prove nothing
        probe.unlink()
        subprocess.run(["chattr", "-i", str(folder)], check=False)
        pytest.skip("chattr +i did not make the folder immutable here")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=False)


@contextlib.contextmanager
def tiny_disk(mount_point: Path, size_kib: int) -> Iterator[Path]:
    """Mounts a `size_kib` KiB tmpfs at `mount_point`: a real disk that fills up (ENOSPC)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount_point.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mount_point)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Fills the file system of `folder` with one ballast file, leaving about `leave_bytes` free."""
    ballast = folder / "ballast.bin"
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize - leave_bytes
    with open(ballast, "wb") as f:
        block = bytes(1 << 16)
        while free > 0:
            try:
                f.write(block[: min(len(block), free)])
                f.flush()
            except OSError:
                break
            free -= len(block)
    return ballast
