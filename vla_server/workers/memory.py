"""Measured memory of processes, from /proc (Linux)."""

from __future__ import annotations

from typing import Any


def rss_mb(pid: int) -> float | None:
    """Resident set size of `pid` in MiB (VmRSS from /proc/PID/status), None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0  # kB -> MiB
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError, IndexError):
        return None
    return None  # a zombie has no VmRSS line


def release_free_memory() -> bool:
    """Hands the C heap's free pages back to the kernel (glibc ``malloc_trim(0)``, every arena):
    memory freed after a burst — a load's temporaries, the last openpi connection's message
    buffers — stops counting as resident. A few ms for a process of ~50 MiB; call it when idle,
    never per request. False where there is no glibc (the call does nothing then)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim is False:
        return False
    _malloc_trim(0)
    return True


_malloc_trim: Any = None  # libc's malloc_trim once looked up; False: none here
