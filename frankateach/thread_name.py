"""The kernel's name for the calling thread, so `top -H`, `ps -L`, py-spy and `perf sched` tell
the daemon's loops apart (Python's `threading` names are not the kernel's: every thread of a
Python process shows as ``python``)."""

from __future__ import annotations

import ctypes
import os
import sys
import threading

PR_SET_NAME = 15  # <linux/prctl.h>
MAX_NAME_BYTES = 15  # the kernel keeps 16 bytes, the last one the terminating NUL


def set_os_thread_name(name: str) -> bool:
    """Names the calling thread `name` for the kernel (cut to 15 bytes; Linux only).

    Returns:
        True if named; False where unsupported (not Linux, no libc) or when prctl refused.
    """
    if not sys.platform.startswith("linux"):
        return False
    raw = name.encode("utf-8", "replace")[:MAX_NAME_BYTES]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_NAME, ctypes.c_char_p(raw), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def os_thread_name(tid: int | None = None) -> str:
    """The kernel's name of thread `tid` of this process (the calling thread by default)."""
    tid = threading.get_native_id() if tid is None else tid
    with open(f"/proc/{os.getpid()}/task/{tid}/comm", encoding="utf-8") as f:
        return f.read().rstrip("\n")
