"""`oculus_server.sim_process`: the --debug simulator never outlives the daemon, and a start that
finds its ports taken names the holder. Real processes, real SIGKILLs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from oculus_server.errors import OculusServerError
from oculus_server.sim_process import SimProcess
from tests.robot_fakes import free_port_block
from tests.test_lifeline import EXIT_BUDGET_S, alive, time_until_gone

ROOT = Path(__file__).resolve().parent.parent

# A stand-in daemon: starts a SimProcess, prints the simulator's pid, waits to be killed.
DAEMON = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from oculus_server.sim_process import SimProcess
sim = SimProcess(0.0, cameras={cameras}, control_port={port}, camera_port_offset={cam},
                 log_path=Path({log!r}))
sim.start(timeout_s=60)
print(sim.proc.pid, flush=True)
while True:
    time.sleep(1)
"""


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _start_daemon(tmp_path: Path, cameras: bool) -> tuple[subprocess.Popen, int, int]:
    port = free_port_block(3) + 1
    cam = free_port_block(2)
    code = textwrap.dedent(DAEMON).format(root=str(ROOT), cameras=cameras, port=port, cam=cam,
                                          log=str(tmp_path / "sim.log"))
    env = dict(os.environ, MUJOCO_GL="egl")
    daemon = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env,
                              cwd=tmp_path)
    line = daemon.stdout.readline() if daemon.stdout else ""
    if not line.strip().isdigit():
        daemon.kill()
        pytest.fail(f"simulator did not start: {line!r}\n{(tmp_path / 'sim.log').read_text(errors='replace')}")
    return daemon, int(line), port


def _kill_all(*pids: int) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_simulator_exits_within_a_second_of_the_daemons_sigkill_and_frees_its_ports(tmp_path: Path) -> None:
    daemon, sim_pid, port = _start_daemon(tmp_path, cameras=False)
    try:
        daemon.kill()
        daemon.wait(5)
        took = time_until_gone(sim_pid, 5.0)
        print(f"daemon SIGKILL -> simulator gone after {took:.3f} s")
        assert not alive(sim_pid) and took < EXIT_BUDGET_S, f"simulator outlived the daemon by {took:.2f} s"
        # Nothing holds the ports any more: a new simulator could start right away.
        for p in (port - 1, port, port + 1):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", p))
        assert "frankateach-sim stopped" in (tmp_path / "sim.log").read_text(), "no clean shutdown"
    finally:
        _kill_all(daemon.pid, sim_pid)


@pytest.mark.slow
def test_renderer_exits_within_a_second_of_the_simulators_sigkill(tmp_path: Path) -> None:
    daemon, sim_pid, _ = _start_daemon(tmp_path, cameras=True)
    try:
        log = (tmp_path / "sim.log").read_text(errors="replace")
        if "camera renderer running" not in log:
            pytest.skip(f"no offscreen rendering here: {log[-300:]}")
        kids = _children(sim_pid)
        assert kids, "the simulator has no child processes"
        os.kill(sim_pid, signal.SIGKILL)
        t0 = time.monotonic()
        while any(alive(k) for k in kids) and time.monotonic() - t0 < 5.0:
            time.sleep(0.005)
        took = time.monotonic() - t0
        print(f"simulator SIGKILL -> renderer gone after {took:.3f} s")
        assert not any(alive(k) for k in kids) and took < EXIT_BUDGET_S
    finally:
        _kill_all(daemon.pid, sim_pid)


def test_a_taken_port_is_reported_with_its_holder_before_anything_starts(tmp_path: Path) -> None:
    port = free_port_block(3) + 1
    holder = socket.socket()
    holder.bind(("127.0.0.1", port + 1))  # the commanded-state port
    holder.listen()
    sim = SimProcess(0.0, cameras=False, control_port=port, log_path=tmp_path / "sim.log")
    try:
        with pytest.raises(OculusServerError) as err:
            sim.start()
    finally:
        holder.close()
    msg = str(err.value)
    assert f"port {port + 1} (commanded state) on 127.0.0.1 is already in use by pid {os.getpid()}" in msg
    assert f"kill {os.getpid()}" in msg and "--robot-port" in msg
    assert sim.proc is None and not (tmp_path / "sim.log").exists()


def test_command_passes_our_pid_and_a_death_signal_only_from_the_main_thread() -> None:
    import threading

    sim = SimProcess(0.0, cameras=True, control_port=20001, camera_port_offset=20100)
    cmd = sim.command()
    assert cmd[cmd.index("--parent-pid") + 1] == str(os.getpid())
    assert cmd[cmd.index("--codec") + 1] == "msgpack"
    assert "pickle" in SimProcess(0.0, codec="pickle").command()
    assert cmd[cmd.index("--parent-death-signal") + 1] == str(int(signal.SIGTERM))
    assert sim.ports() == {"robot control": 20001, "robot state": 20000, "commanded state": 20002,
                           "sim state": 20003, "camera front": 20100, "camera wrist": 20101}
    assert cmd[cmd.index("--sim-state-port") + 1] == "20003"
    out: list[list[str]] = []
    worker = threading.Thread(target=lambda: out.append(sim.command()))
    worker.start()
    worker.join()
    assert out[0][out[0].index("--parent-death-signal") + 1] == "0"
