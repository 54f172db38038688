"""The daemon's CPU weight: its cgroup's share of a busy CPU, and how to raise it without root.

Without SCHED_FIFO the loops compete as one group (a cgroup, or with autogroup a session) against
every other group. A group with a larger weight (cgroup v2 ``cpu.weight``; the default is 100) wins
a busy CPU sooner. Measured on the 2-core development VM under the benchmark's mixed load
(README, scheduling): with 10 times the default weight no tick was late in any run, against
0–4 late ticks per run at the default.

On a systemd desktop (systemd ≥ 252 delegates the cpu controller to the user's manager) an operator
gets that weight without root by starting the daemon in a scope of their own:
``systemd-run --user --scope -p CPUWeight=1000 ./run_server.sh --performance``. `systemd_hint`
returns that command where this machine has a reachable user manager; `own_weight` reads the
weight the process already has.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

DEFAULT_WEIGHT = 100  # cgroup v2 cpu.weight (and systemd's CPUWeight) default
SUGGESTED_WEIGHT = 1000
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def own_weight(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> int | None:
    """The ``cpu.weight`` of this process's cgroup (v2), or None where it cannot be read.

    None on cgroup v1, where the cgroup has no cpu controller of its own, or where the files are
    not there (not Linux).
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, _, path = line.partition("::")  # v2: "0::/user.slice/.../run-r1.scope"
        if hierarchy == "0" and path.startswith("/"):
            try:
                return int((root / path.lstrip("/") / "cpu.weight").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return None
    return None


def systemd_hint(env: Mapping[str, str] = os.environ,
                 which: Callable[[str], str | None] = shutil.which) -> str:
    """The command that starts the daemon with a larger CPU weight without root ("" where this
    machine has no systemd user manager to ask: no ``systemd-run``, or no ``$XDG_RUNTIME_DIR/systemd``)."""
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if not which("systemd-run") or not runtime or not (Path(runtime) / "systemd").is_dir():
        return ""
    return f"systemd-run --user --scope -p CPUWeight={SUGGESTED_WEIGHT} ./run_server.sh --performance"


def describe_weight(weight: int | None, hint: str) -> str:
    """One sentence on the CPU weight for the no-real-time message ("" where there is nothing to say)."""
    if weight is not None and weight > DEFAULT_WEIGHT:
        return (f" This process's cgroup has CPU weight {weight} (the default is {DEFAULT_WEIGHT}), "
                "which keeps the loops ahead of the other groups on a busy CPU.")
    if hint:
        return (f" Without root on this machine, a larger CPU weight also helps (README, scheduling): {hint}")
    return ""
