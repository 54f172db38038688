"""Scheduling without privilege: a loop thread asks the kernel for a short EEVDF slice (read back
from ``/proc/self/task/TID/sched``), only the calling thread is changed, and the daemon's
time-keeping loops ask for the configured slice when SCHED_FIFO is off."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from oculus_server.config import DaemonConfig
from oculus_server.threads.base import DaemonThread, Supervisor
from oculus_server.threads.realtime import set_slice

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sched_setattr: Linux")


def kernel_slice_ns(tid: int) -> int | None:
    """The thread's EEVDF slice as the kernel reports it (None where /proc does not show it)."""
    try:
        text = Path(f"/proc/self/task/{tid}/sched").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("se.slice"):
            return int(float(line.split(":")[1]))
    return None


def _needs_slices() -> None:
    if kernel_slice_ns(threading.get_native_id()) is None:
        pytest.skip("this kernel does not show se.slice (EEVDF slices need Linux >= 6.12)")


def test_set_slice_changes_the_calling_thread_only() -> None:
    _needs_slices()
    main_before = kernel_slice_ns(threading.get_native_id())
    seen: list[tuple[bool, int | None]] = []

    def body() -> None:
        seen.append((set_slice(0.0002), kernel_slice_ns(threading.get_native_id())))

    t = threading.Thread(target=body)
    t.start()
    t.join(5)
    assert seen == [(True, 200_000)]
    assert kernel_slice_ns(threading.get_native_id()) == main_before


def test_requests_are_clamped_to_what_the_kernel_allows_and_zero_is_no_request() -> None:
    _needs_slices()
    seen: list[object] = []

    def body() -> None:
        seen.append((set_slice(1e-9), kernel_slice_ns(threading.get_native_id())))
        seen.append(set_slice(0.0))

    t = threading.Thread(target=body)
    t.start()
    t.join(5)
    assert seen == [(True, 100_000), False]


class _Loop(DaemonThread):
    def body(self) -> None:
        self.seen = kernel_slice_ns(threading.get_native_id())


def test_a_loop_without_realtime_runs_with_its_slice() -> None:
    _needs_slices()
    t = _Loop("control", Supervisor(), realtime_priority=0)
    t.slice_s = DaemonConfig().loop_slice_ms / 1e3
    t.start()
    t.join(5)
    assert t.short_slice and t.seen == round(DaemonConfig().loop_slice_ms * 1e6)


def test_the_default_asks_for_a_slice_shorter_than_the_kernels() -> None:
    """0.2 ms: measured with benchmarks/bench_daemon_load.py (README, scheduling)."""
    assert 0 < DaemonConfig().loop_slice_ms < 0.7
