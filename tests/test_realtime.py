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


def test_with_real_time_loops_the_threads_that_take_the_gil_run_real_time_below_them(tmp_path: Path) -> None:
    """SCHED_FIFO (this test runs as root, as CI does): the loops at their priorities, and the
    recording's receiver at GIL_HOLDER_PRIORITY, so no ordinary process preempts it holding the GIL."""
    import os

    from oculus_server.daemon import Daemon
    from oculus_server.threads.base import GIL_HOLDER_PRIORITY
    from oculus_server.threads.realtime import realtime_error
    from oculus_server.vr import make_source
    from tests.daemon_fakes import daemon_config, wait_for
    from tests.robot_fakes import KinematicBackend, free_port_block, start_robot_server

    if realtime_error(10):
        pytest.skip(f"no SCHED_FIFO here: {realtime_error(10)}")
    port = free_port_block()
    server = start_robot_server(KinematicBackend(), port)
    cfg = daemon_config(tmp_path, port, realtime_priority=10)
    daemon = Daemon(cfg, make_source(cfg.vr_source))
    seen: dict[str, tuple[int, int]] = {}
    try:
        daemon.start()
        assert wait_for(lambda: bool(list(tmp_path.glob("*.partial"))), 10.0)
        for task in Path("/proc/self/task").iterdir():
            try:
                tid = int(task.name)
                seen[(task / "comm").read_text().strip()] = (
                    os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(tid).sched_priority)
            except OSError:
                continue
    finally:
        daemon.shutdown()
        server.stop()
    fifo = os.SCHED_FIFO
    assert seen["control"] == seen["recording"] == seen["vr"] == (fifo, 10), seen
    assert seen["robot"] == (fifo, 9) and seen["mcap-writer"] == (fifo, 8), seen
    assert seen["mcap-writer-rx"] == (fifo, GIL_HOLDER_PRIORITY), seen
