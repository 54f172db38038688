"""`vla_server.workers.memory`: the resident size read from /proc and handing freed heap pages back."""

from __future__ import annotations

import os
import sys

import pytest

from vla_server.workers.memory import release_free_memory, rss_mb


def test_rss_of_this_process_and_of_a_pid_that_is_gone() -> None:
    own = rss_mb(os.getpid())
    assert own is not None and own > 5.0
    assert rss_mb(2**22 + 12345) is None  # beyond pid_max's default: no such process


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_hands_freed_heap_pages_back() -> None:
    # 48 MiB of 1 KiB blocks (C heap, not Python's small-object arenas), one of every 64 kept: the
    # freed runs lie between live blocks, so only malloc_trim (not the automatic top trim) frees them
    blocks = [bytes(1024) for _ in range(48 * 1024)]
    keep = blocks[::64]
    del blocks
    before = rss_mb(os.getpid())
    assert release_free_memory() is True
    after = rss_mb(os.getpid())
    assert before is not None and after is not None
    assert before - after > 20.0, f"RSS {before:.1f} -> {after:.1f} MiB: expected > 20 MiB handed back"
    assert len(keep) == 768
