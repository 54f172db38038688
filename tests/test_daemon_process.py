"""`python -m oculus_server.cli --debug` as a real process, with the MuJoCo simulator as its child.

SIGTERM must give a clean exit with a finalized episode and no simulator left running; SIGKILL
must leave a `.partial` that `recover` turns into a valid file losing at most about a flush period.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcap.reader import make_reader

from robot_formats.recording.recover import recover
from tests.daemon_fakes import finished_files, read_episode, threads, wait_for
from tests.robot_fakes import free_port_block

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 45.0  # the simulator builds its MuJoCo model first


def _alive(pid: int) -> bool:
    """True if `pid` runs (a zombie, i.e. exited but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _sims_on(port: int) -> list[int]:
    """Pids of simulator processes serving control port `port` (scoped: other tests use others)."""
    out = subprocess.run(["pgrep", "-f", f"frankateach.sim.server .*--control-port {port} "],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class DaemonProcess:
    """The daemon under --debug with a scripted source, in its own folder and port block."""

    def __init__(self, tmp: Path, config: str = "") -> None:
        self.tmp = tmp
        self.rec = tmp / "rec"
        self.port = free_port_block(3) + 1  # sim: state P-1, control P, commanded P+1
        cfg = tmp / "daemon.yaml"
        cfg.write_text("cameras: []\nrealtime_priority: 0\n" + config)
        self.stderr_path = tmp / "daemon.log"
        argv = [
            sys.executable, "-m", "oculus_server.cli", "--config", str(cfg), "--debug",
            "--vr-source", "scripted:circle", "--no-dashboard", "--no-sim-cameras", "--sim-latency-ms", "0",
            "--robot-port", str(self.port), "--recordings-dir", str(self.rec), "--record-on-start",
        ]
        env = dict(os.environ, MUJOCO_GL="egl", PYTHONUNBUFFERED="1")
        self.stderr = open(self.stderr_path, "wb")
        # cwd=tmp: the simulator's log (logs/frankateach-sim.log) lands there, not in the checkout.
        self.proc = subprocess.Popen(argv, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.sim_pid: int | None = None

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def partials(self) -> list[Path]:
        return sorted(self.rec.glob("*.mcap.partial"))

    def wait_recording(self, timeout_s: float = START_TIMEOUT_S) -> Path:
        ok = wait_for(lambda: bool(self.partials()) or self.proc.poll() is not None, timeout_s, 0.05)
        assert ok and self.proc.poll() is None, f"daemon did not start recording:\n{self.log()}"
        m = re.search(r"frankateach-sim started \(pid (\d+)", self.log())
        assert m, f"no simulator pid in the log:\n{self.log()}"
        self.sim_pid = int(m.group(1))
        assert _alive(self.sim_pid) and _sims_on(self.port) == [self.sim_pid]
        return self.partials()[0]

    def wait_exit(self, timeout_s: float, what: str) -> int:
        """The exit code; fails with the daemon's log and its threads' stacks (SIGUSR1) if it is still
        running after `timeout_s`."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack to stderr
            time.sleep(1.0)
            pytest.fail(f"daemon still running {timeout_s:.0f} s after {what}:\n{self.log()[-8000:]}")

    def cleanup(self) -> None:
        for pid in [self.proc.pid if self.proc.poll() is None else None, self.sim_pid, *_sims_on(self.port)]:
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(5)
        self.stderr.close()


@pytest.fixture
def daemon_process(tmp_path: Path):
    procs: list[DaemonProcess] = []

    def start(config: str = "") -> DaemonProcess:
        procs.append(DaemonProcess(tmp_path, config))
        return procs[-1]

    yield start
    for p in procs:
        p.cleanup()


def test_sigterm_exits_cleanly_finalizes_and_stops_the_simulator(daemon_process):
    d = daemon_process()
    partial = d.wait_recording()
    time.sleep(2.0)
    if len(os.sched_getaffinity(0)) >= 2:  # no real-time scheduling: each loop also waits on the other CPU
        names = dict(threads(d.proc.pid))
        for loop in ("control", "recording", "vr"):
            first, second = os.sched_getaffinity(names[loop]), os.sched_getaffinity(names[f"{loop}-2"])
            assert len(first) == len(second) == 1 and first != second, (loop, first, second)
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    code = d.wait_exit(15.0, "SIGTERM")
    print(f"SIGTERM -> exit: {time.monotonic() - t0:.3f} s")
    assert code == 0, d.log()

    assert not partial.exists()
    (path,) = finished_files(d.rec)
    assert path.name == partial.name.removesuffix(".partial") and path.parent.name == "failure"
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None and summary.statistics.message_count > 100
    ep = read_episode(path)
    end = ep.metadata["recording_end"]
    assert end["outcome"] == "shutdown" and end["ended_by"] == "daemon stopped"
    assert "frankateach-sim" in ep.metadata["recording_start"]["robot"]
    assert ep.topic("/robot/ee_pose"), "no measured state from the simulator"

    assert wait_for(lambda: not _alive(d.sim_pid), 2.0), "the simulator outlived the daemon"
    assert _sims_on(d.port) == []


def test_sigkill_the_recording_process_finalizes_the_episode_and_exits(daemon_process):
    d = daemon_process("live_port: 0\n")  # --debug serves the live view: any free port
    partial = d.wait_recording()
    time.sleep(2.5)
    (writer,) = _writer_children(d.proc.pid)
    assert wait_for(lambda: len(_writer_children(d.proc.pid, "live-view")) == 1, 30.0), d.log()
    (live,) = _writer_children(d.proc.pid, "live-view")
    t_kill = time.time()
    d.proc.send_signal(signal.SIGKILL)
    assert d.proc.wait(timeout=5.0) == -signal.SIGKILL
    # The recording process sees the daemon's end of its pipe close: it writes what it has,
    # finalizes the file into failure/ and exits.
    assert wait_for(lambda: bool(finished_files(d.rec)), 15.0), "the recording process did not finalize"
    (path,) = finished_files(d.rec)
    assert not partial.exists() and path.parent.name == "failure"
    assert path.name == partial.name.removesuffix(".partial")
    assert wait_for(lambda: not _alive(writer), 5.0), "the recording process outlived the daemon"
    assert wait_for(lambda: not _alive(live), 5.0), "the live-view process outlived the daemon"
    ep = read_episode(path)
    end = ep.metadata["recording_end"]
    assert end["outcome"] == "crashed" and "killed or crashed" in end["ended_by"]
    with open(path, "rb") as f:
        last_ns = max(m.log_time for _, _, m in make_reader(f).iter_messages(log_time_order=False))
    assert -0.1 <= t_kill - last_ns / 1e9 <= 1.5
    seqs = [m.sequence for m in ep.topic("/control/mode")]
    assert seqs == list(range(len(seqs))) and len(seqs) > 40


def _writer_children(daemon_pid: int, name: str = "mcap-writer") -> list[int]:
    """The daemon's spawned helper processes called `name` (the recording process; the live view's:
    ``live-view``), children started by multiprocessing's spawn."""
    kids: list[int] = []
    for task in Path(f"/proc/{daemon_pid}/task").glob("*"):  # children are listed by the thread that started them
        try:
            kids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return [p for p in kids if "multiprocessing.spawn import spawn_main" in _cmdline(p) and _comm(p) == name]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_sigkill_with_the_writer_in_a_thread_leaves_a_partial_that_recovers(daemon_process):
    d = daemon_process("writer_process: false\n")
    partial = d.wait_recording()
    time.sleep(2.5)
    t_kill = time.time()
    d.proc.send_signal(signal.SIGKILL)
    assert d.proc.wait(timeout=5.0) == -signal.SIGKILL
    # The simulator watches its parent: it is gone within a second of the daemon's SIGKILL.
    assert wait_for(lambda: not _alive(d.sim_pid), 1.0, 0.005), "the simulator outlived the daemon"
    assert _sims_on(d.port) == []

    assert partial.exists() and not finished_files(d.rec)
    report = recover(partial)
    assert report.status == "recovered" and report.output is not None
    assert report.output == partial.with_name(partial.name.removesuffix(".partial"))
    with open(report.output, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        last_ns = max(m.log_time for _, _, m in reader.iter_messages(log_time_order=False))
    assert summary is not None and summary.statistics.message_count == report.messages_recovered > 50
    lost_s = t_kill - last_ns / 1e9
    print(f"SIGKILL: last recovered message {lost_s:.3f} s before the kill "
          f"(recover estimate {report.estimated_lost_s:.3f} s, {report.messages_recovered} messages kept)")
    assert -0.1 <= lost_s <= 1.5
    ep = read_episode(report.output)
    assert ep.metadata["recording_end"]["outcome"] == "crashed"
    seqs = [m.sequence for m in ep.topic("/control/mode")]
    assert seqs == list(range(len(seqs))) and len(seqs) > 40


def test_sigterm_during_simulator_start_up_leaves_no_simulator(daemon_process):
    d = daemon_process()
    assert wait_for(lambda: bool(_sims_on(d.port)) or d.proc.poll() is not None, START_TIMEOUT_S, 0.01)
    (sim_pid,) = _sims_on(d.port)
    d.sim_pid = sim_pid
    started = "frankateach-sim started" in d.log()
    d.proc.send_signal(signal.SIGTERM)  # before the daemon's own handler exists
    code = d.wait_exit(15.0, "SIGTERM at start-up")
    print(f"SIGTERM at start-up (simulator ready: {started}): exit code {code}")
    assert code in (0, 128 + signal.SIGTERM), d.log()
    assert wait_for(lambda: not _alive(sim_pid), 5.0), f"simulator {sim_pid} orphaned:\n{d.log()}"
    assert not d.partials()


def test_ctrl_c_during_simulator_start_up_exits_quietly_and_leaves_no_simulator(daemon_process):
    d = daemon_process()
    assert wait_for(lambda: bool(_sims_on(d.port)) or d.proc.poll() is not None, START_TIMEOUT_S, 0.01)
    (sim_pid,) = _sims_on(d.port)
    d.sim_pid = sim_pid
    if "frankateach-sim started" in d.log():
        pytest.skip("the simulator was ready before the interrupt could land")
    d.proc.send_signal(signal.SIGINT)  # what Ctrl-C at the terminal delivers
    code = d.wait_exit(15.0, f"Ctrl-C at start-up (sent at {time.strftime('%H:%M:%S')}.{time.time() % 1:.3f})")
    log = d.log()
    print(f"Ctrl-C at start-up: exit code {code}")
    assert code == 130, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert wait_for(lambda: not _alive(sim_pid), 5.0), f"simulator {sim_pid} orphaned:\n{log}"
    assert not d.partials()
    if "interrupted while the simulator was starting" not in log:
        assert "frankateach-sim started" in log and "interrupted during start-up" in log, log
        pytest.skip("the simulator became ready just before the interrupt landed")


@pytest.mark.parametrize("after_s", [0.0, 0.1, 0.25])
def test_ctrl_c_just_after_the_simulator_is_ready_is_never_lost(daemon_process, after_s):
    """Ctrl-C in the window between the simulator's ready line and the running daemon (its objects
    being built, its threads starting): the daemon stops either way, within the bound, and leaves
    no simulator and no partial file (under load such a Ctrl-C was once lost: the daemon ran on)."""
    d = daemon_process()
    assert wait_for(lambda: "frankateach-sim started" in d.log() or d.proc.poll() is not None, START_TIMEOUT_S,
                    0.005), d.log()
    m = re.search(r"frankateach-sim started \(pid (\d+)", d.log())
    assert m, d.log()
    d.sim_pid = int(m.group(1))
    time.sleep(after_s)
    d.proc.send_signal(signal.SIGINT)
    code = d.wait_exit(15.0, f"Ctrl-C {after_s:.2f} s after the simulator was ready")
    log = d.log()
    assert code in (0, 130), log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert wait_for(lambda: not _alive(d.sim_pid), 5.0), f"simulator {d.sim_pid} orphaned:\n{log}"
    assert not d.partials()


def test_a_burst_of_ctrl_c_stops_cleanly(daemon_process):
    # Ctrl-C can arrive twice at once (the terminal's group signal plus a supervisor's, or an
    # impatient operator); a handler that set the stop event re-entered its lock and hung the daemon.
    d = daemon_process()
    partial = d.wait_recording()
    time.sleep(1.0)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0 and d.proc.poll() is None:  # a flood, bounded to 1 s
        d.proc.send_signal(signal.SIGINT)
    code = d.wait_exit(15.0, "a burst of SIGINT")
    print(f"SIGINT burst -> exit: {time.monotonic() - t0:.3f} s")
    assert code == 0, d.log()
    assert not partial.exists() and len(finished_files(d.rec)) == 1
    assert wait_for(lambda: not _alive(d.sim_pid), 2.0), "the simulator outlived the daemon"


def test_sigusr1_prints_every_threads_stack_and_the_daemon_runs_on(daemon_process):
    """README (*Command line*): `kill -USR1 PID` prints every thread's stack to stderr; the daemon
    keeps running and still stops cleanly."""
    d = daemon_process()
    d.wait_recording()
    d.proc.send_signal(signal.SIGUSR1)
    assert wait_for(lambda: "Current thread" in d.log(), 10.0), d.log()[-3000:]
    log = d.log()
    assert "oculus_server/cli.py" in log and "threads/base.py" in log, log[-3000:]  # main and loop threads
    time.sleep(0.5)
    assert d.proc.poll() is None, log[-3000:]
    d.proc.send_signal(signal.SIGINT)
    assert d.wait_exit(15.0, "SIGINT after SIGUSR1") == 0, d.log()[-3000:]
