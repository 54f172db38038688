"""oculus_server.threads.cpu_weight: the cgroup's CPU weight and the systemd hint, on fake /proc and /sys trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from oculus_server.threads.cpu_weight import (
    DEFAULT_WEIGHT,
    SUGGESTED_WEIGHT,
    describe_weight,
    own_weight,
    systemd_hint,
)
from oculus_server.threads.realtime import describe_fix

SCOPE = "/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope"


def _tree(tmp_path: Path, proc: str, weight: str | None) -> tuple[Path, Path]:
    proc_cgroup = tmp_path / "cgroup"
    proc_cgroup.write_text(proc)
    root = tmp_path / "sys"
    if weight is not None:
        (root / SCOPE.lstrip("/")).mkdir(parents=True)
        (root / SCOPE.lstrip("/") / "cpu.weight").write_text(weight)
    return proc_cgroup, root


def test_the_weight_of_a_v2_cgroup_is_read_from_its_cpu_weight(tmp_path: Path):
    assert own_weight(*_tree(tmp_path, f"0::{SCOPE}\n", "1000\n")) == 1000


@pytest.mark.parametrize("proc, weight", [
    ("12:cpu,cpuacct:/\n1:name=systemd:/\n", None),  # cgroup v1 only: no cpu.weight
    (f"0::{SCOPE}\n", None),                          # v2, but the cpu controller is not enabled there
    (f"0::{SCOPE}\n", "garbage"),
    ("", None),
])
def test_no_weight_where_it_cannot_be_read(tmp_path: Path, proc: str, weight: str | None):
    assert own_weight(*_tree(tmp_path, proc, weight)) is None


def test_no_proc_file_is_no_weight(tmp_path: Path):
    assert own_weight(tmp_path / "absent", tmp_path) is None


def test_the_hint_needs_systemd_run_and_a_user_manager(tmp_path: Path):
    (tmp_path / "systemd").mkdir()
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    hint = systemd_hint(env, lambda name: f"/usr/bin/{name}")
    assert hint.startswith("systemd-run --user --scope") and f"CPUWeight={SUGGESTED_WEIGHT}" in hint
    assert systemd_hint(env, lambda name: None) == ""  # no systemd-run
    assert systemd_hint({}, lambda name: "/usr/bin/systemd-run") == ""  # no XDG_RUNTIME_DIR
    assert systemd_hint({"XDG_RUNTIME_DIR": str(tmp_path / "none")}, lambda name: "/x") == ""


def test_the_message_names_a_larger_weight_or_the_command_that_gives_one():
    assert "CPU weight 1000" in describe_weight(1000, "anything")
    assert describe_weight(DEFAULT_WEIGHT, "systemd-run --user ...").endswith("systemd-run --user ...")
    assert describe_weight(None, "") == describe_weight(DEFAULT_WEIGHT, "") == ""
    full = describe_fix("PermissionError: Operation not permitted") + describe_weight(None, "cmd")
    assert "setcap" in full and full.endswith("cmd")
