"""Measured memory of processes, from /proc (Linux)."""

from __future__ import annotations


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
