"""`python -m vla_server.workers.main`'s command line (the worker's entry point, spawned by the
service): what `spawn_worker` writes parses back; anything else exits 2 naming the fault, before
the worker touches a descriptor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vla_server.workers.main import WorkerArgs, parse_args

ROOT = Path(__file__).resolve().parent.parent


def test_the_flags_the_service_writes_parse_back() -> None:
    argv = ["--fd", "14", "--spec", '{"id": "arm"}', "--parent", "4242", "--device", "cuda:1", "--shm-fd", "15",
            "--shm-slots", "8", "--shm-slot-bytes", "4194304", "--openpi-fd", "16"]
    assert parse_args(argv) == WorkerArgs(fd=14, spec='{"id": "arm"}', parent=4242, device="cuda:1", shm_fd=15,
                                          shm_slots=8, shm_slot_bytes=4194304, openpi_fd=16)
    assert parse_args(["--spec", "{}", "--parent", "1", "--fd", "3"]) == WorkerArgs(fd=3, spec="{}", parent=1)


@pytest.mark.parametrize(("argv", "said"), [
    (["--fd", "x", "--spec", "{}", "--parent", "1"], "--fd: expected an integer, got 'x'"),
    (["--fd", "3", "--spec", "{}"], "missing --parent"),
    (["--fd", "3", "--spec", "{}", "--parent", "1", "--bogus", "2"], "got '--bogus'"),
    (["--fd", "3", "--spec", "{}", "--parent"], "got '--parent'"),
])
def test_a_bad_command_line_exits_2_with_the_reason(argv: list[str], said: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "vla_server.workers.main", *argv], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and said in proc.stderr, proc.stderr
