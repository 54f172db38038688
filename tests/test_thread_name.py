"""The kernel's thread names: what `top -H`, py-spy and `perf sched` show for the daemon's loops."""

from __future__ import annotations

import sys
import threading

import pytest

from frankateach.thread_name import MAX_NAME_BYTES, os_thread_name, set_os_thread_name
from oculus_server.threads.base import DaemonThread, Supervisor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names via prctl: Linux")


def _named_in_thread(name: str) -> tuple[bool, str, str]:
    seen: list[tuple[bool, str, str]] = []

    def body() -> None:
        before = os_thread_name()
        ok = set_os_thread_name(name)
        seen.append((ok, before, os_thread_name()))

    t = threading.Thread(target=body)
    t.start()
    t.join(5)
    return seen[0]


def test_names_only_the_calling_thread() -> None:
    main_before = os_thread_name()
    ok, _before, after = _named_in_thread("control")
    assert ok and after == "control"
    assert os_thread_name() == main_before


def test_long_names_are_cut_to_what_the_kernel_keeps() -> None:
    ok, _before, after = _named_in_thread("a-rather-long-thread-name")
    assert ok and after == "a-rather-long-thread-name"[:MAX_NAME_BYTES]


class _Probe(DaemonThread):
    def body(self) -> None:
        self.seen = os_thread_name()


def test_every_daemon_thread_carries_its_name_to_the_kernel() -> None:
    t = _Probe("recording", Supervisor())
    t.start()
    t.join(5)
    assert t.seen == "recording"
