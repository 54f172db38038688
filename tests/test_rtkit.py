"""oculus_server.threads.rtkit and the daemon's use of it, against Debian's own dbus-daemon, polkitd
and rtkit-daemon on a private bus (tests/rtkit_sandbox.py).

Whatever asks rtkit runs in a child process: RLIMIT_RTTIME is process-wide, and a thread made
real-time must not be one of the test runner's. The daemon's children run without CAP_SYS_NICE
(as an operator who is not root), so SCHED_FIFO is refused to them and rtkit is what they get.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from oculus_server.threads.rtkit import RealtimeKit, RtkitError
from robot_formats.recording.schemas import TOPIC_EVENTS
from tests.daemon_fakes import read_episode
from tests.robot_fakes import KinematicBackend, free_port_block, start_robot_server
from tests.rtkit_sandbox import drop_sys_nice, missing, rtkit_sandbox

pytestmark = pytest.mark.skipif(bool(missing()), reason=f"private rtkit: {missing()}")

ROOT = Path(__file__).resolve().parent.parent
RESET_ON_FORK = getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory):
    with rtkit_sandbox(tmp_path_factory.mktemp("rtkit")) as address:
        yield address


def run_child(code: str, bus: str, timeout: float = 30.0) -> dict:
    """Runs `code` (which prints one JSON line last) in a child without CAP_SYS_NICE, on `bus`."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus),
                          preexec_fn=drop_sys_nice)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


ASK = """
import json, os, resource, threading
from oculus_server.threads.rtkit import RealtimeKit, RtkitError
if {rttime}:
    resource.setrlimit(resource.RLIMIT_RTTIME, ({rttime} // 4, {rttime}))
kit = RealtimeKit.connect()
out = {{"limits": [kit.limits.max_priority, kit.limits.rttime_usec_max]}}
def ask():
    try:
        kit.make_realtime(threading.get_native_id(), {priority})
        out["error"] = ""
    except RtkitError as exc:
        out["error"] = str(exc)
    out["policy"], out["priority"] = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
t = threading.Thread(target=ask)
t.start()
t.join()
out["main_policy"] = os.sched_getscheduler(0)
kit.close()
print(json.dumps(out))
"""


def test_a_thread_that_asks_runs_sched_rr_at_its_priority_and_its_children_do_not_inherit_it(bus: str):
    out = run_child(ASK.format(rttime=200_000, priority=7), bus)
    assert out["limits"] == [20, 200_000]  # rtkit's defaults, read from the service
    assert out["error"] == ""
    assert out["policy"] == os.SCHED_RR | RESET_ON_FORK and out["priority"] == 7
    assert out["main_policy"] == os.SCHED_OTHER  # only the thread that asked


@pytest.mark.parametrize(("rttime", "priority", "said"), [
    (0, 5, "rtkit refused"),  # no RLIMIT_RTTIME: rtkit's first condition
    (400_000, 5, "rtkit refused"),  # a hard RLIMIT_RTTIME above rtkit's 200 ms
    (200_000, 21, "rtkit refused"),  # above MaxRealtimePriority
])
def test_rtkit_refuses_what_its_policy_forbids_and_the_thread_stays_as_it_was(bus: str, rttime: int, priority: int,
                                                                               said: str):
    out = run_child(ASK.format(rttime=rttime, priority=priority), bus)
    assert out["error"].startswith(said) and "org.freedesktop.DBus.Error" in out["error"]
    assert out["policy"] == os.SCHED_OTHER and out["priority"] == 0


def test_no_bus_or_no_rtkit_on_it_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'none'}")
    with pytest.raises(RtkitError, match="no D-Bus system bus"):
        RealtimeKit.connect()
    with rtkit_sandbox(tmp_path / "bare", rtkit=False) as address:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        with pytest.raises(RtkitError, match=r"rtkit is not on the system bus \(org.freedesktop.DBus.Error"):
            RealtimeKit.connect()


OVERRUN = """
import json, os, threading, time
from oculus_server.threads.scheduling import Scheduling
sched = Scheduling(10)
grant = sched.setup()
out = {"fifo_error": sched.fifo_error, "rtkit_error": sched.rtkit_error}
def spin():
    out["granted"] = grant(10)
    out["policy_before"] = os.sched_getscheduler(0)
    end = time.thread_time() + 0.4  # 400 ms of CPU without a blocking call: past rtkit's 200 ms
    while time.thread_time() < end:
        pass
    out["policy_after"] = os.sched_getscheduler(0)
t = threading.Thread(target=spin)
t.start()
while t.is_alive():  # the main thread wakes as the daemon's does (signals.POLL_S)
    t.join(0.1)
report = sched.take_demotion()
out["report"] = [report.level, report.message, report.data["reason"]] if report else None
print(json.dumps(out))
"""


def test_a_real_time_thread_that_stops_sleeping_goes_back_to_normal_before_the_kernel_kills_the_process(bus: str):
    out = run_child(OVERRUN, bus)  # the child exits 0: not killed at the hard limit
    assert out["fifo_error"].startswith("PermissionError") and out["rtkit_error"] == ""
    assert out["granted"] is True and out["policy_before"] == os.SCHED_RR | RESET_ON_FORK
    assert out["policy_after"] == os.SCHED_OTHER | RESET_ON_FORK  # the flag stays: only privilege clears it
    level, message, reason = out["report"]
    assert level == 40 and "back to normal scheduling" in message and reason == "RLIMIT_RTTIME"


def daemon_cmd(tmp: Path, port: int, duration: float) -> list[str]:
    """`oculus-server --performance` (as an operator runs it at an arm) against the robot server on `port`."""
    cfg = tmp / "no-cameras.yaml"
    cfg.write_text("cameras: []\n")
    return [sys.executable, "-m", "oculus_server.cli", "--performance", "--config", str(cfg), "--vr-source",
            "scripted:circle@loop=1", "--no-dashboard", "--record-on-start", "--recordings-dir", str(tmp / "rec"),
            "--duration", str(duration), "--robot-port", str(port)]


def thread_policies(pid: int) -> dict[str, int]:
    """Thread name → scheduling policy of each thread of process `pid`."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[(task / "comm").read_text().strip()] = os.sched_getscheduler(int(task.name))
        except (OSError, ValueError):
            continue
    return out


def scheduling_events(tmp: Path) -> list[dict]:
    bodies = []
    for path in sorted((tmp / "rec").glob("*/*.mcap")):
        bodies += [m.body for m in read_episode(path).topic(TOPIC_EVENTS) if m.body.get("kind") == "scheduling"]
    return bodies


def test_the_daemon_of_an_operator_without_privileges_runs_its_loops_under_rtkit_until_rtkit_takes_it_back(
        bus: str, tmp_path: Path):
    port = free_port_block()
    server = start_robot_server(KinematicBackend(), port)
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus)
    log = tmp_path / "daemon.log"
    loops = ("vr", "control", "robot", "recording")
    with open(log, "wb") as f:
        proc = subprocess.Popen(daemon_cmd(tmp_path, port, 8.0), cwd=ROOT, env=env, stdout=f,
                                stderr=subprocess.STDOUT, preexec_fn=drop_sys_nice)
        try:
            deadline = time.monotonic() + 60.0
            while b"daemon running" not in log.read_bytes() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
            time.sleep(1.0)
            granted = thread_policies(proc.pid)
            # what rtkit's watchdog does when real-time threads starve the machine
            subprocess.run(["rtkitctl", "--reset-known"], env=env, check=True, timeout=10)
            deadline = time.monotonic() + 5.0  # the main thread looks every 0.25 s
            while (b"took real-time scheduling back" not in log.read_bytes() and proc.poll() is None
                   and time.monotonic() < deadline):
                time.sleep(0.1)
            after = thread_policies(proc.pid)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
            server.stop()
    text = log.read_text()
    assert code == 0, text
    rr = os.SCHED_RR | RESET_ON_FORK
    assert {granted.get(name) for name in loops} == {rr}, granted
    assert granted["mcap-writer-rx"] == rr  # it takes the GIL: real-time too, below the loops
    assert "real-time scheduling from RealtimeKit" in text and "no real-time scheduling" not in text
    assert {after.get(name, 0) & ~RESET_ON_FORK for name in granted} == {os.SCHED_OTHER}, after
    given, taken = scheduling_events(tmp_path)
    assert given["data"]["realtime"] is True and given["data"]["via"] == "rtkit"
    assert taken["data"]["realtime"] is False and "took real-time scheduling back" in taken["message"]
    assert set(taken["data"]["threads"]) >= set(loops)


def test_where_rtkit_refuses_some_loops_the_daemon_runs_none_real_time_and_says_why(tmp_path: Path):
    port = free_port_block()
    server = start_robot_server(KinematicBackend(), port)
    try:
        # rtkit grants one request per burst: the main thread's, then refuses the loops
        with rtkit_sandbox(tmp_path / "rtkit", rtkit_args=("--actions-per-burst-max=1",)) as address:
            env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
            proc = subprocess.run(daemon_cmd(tmp_path, port, 3.0), cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=90, preexec_fn=drop_sys_nice)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if "no real-time scheduling" in line]
    assert len(said) == 1 and "RealtimeKit: rtkit refused: org.freedesktop.DBus.Error.AccessDenied" in said[0]
    assert "so no thread runs real-time" in said[0] and "setcap cap_sys_nice" in said[0]
    (event,) = scheduling_events(tmp_path)
    assert event["data"]["realtime"] is False and "AccessDenied" in event["data"]["reason"]
    assert set(event["data"]["normal"]) >= {"vr", "control", "robot", "recording"}


SETUP = """
import json
from oculus_server.threads.scheduling import Scheduling
sched = Scheduling(10)
grant = sched.setup()
print(json.dumps({"rtkit_error": sched.rtkit_error, "uses_rtkit": grant.kit is not None}))
"""


def test_an_rtkit_that_requires_too_short_an_rttime_limit_is_not_used(tmp_path: Path):
    with rtkit_sandbox(tmp_path, rtkit_args=("--rttime-usec-max=5000",)) as address:
        out = run_child(SETUP, address)
    assert out == {"uses_rtkit": False,
                   "rtkit_error": "rtkit requires RLIMIT_RTTIME ≤ 5000 µs: too short for the loops "
                                  "(expected at least 20000 µs)"}
