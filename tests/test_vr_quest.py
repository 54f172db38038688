"""QuestReader against the fake headset running as a real child process (the real adb is never used)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from oculus_server.errors import VRSourceError
from oculus_server.vr.factory import fake_headset_command
from oculus_server.vr.fake_headset import CORRUPTIONS, FakeHeadset
from oculus_server.vr.linereader import NonBlockingLines
from oculus_server.vr.parser import ParsedLine, parse_line
from oculus_server.vr.quest import QuestReader, headset_present, parse_adb_devices
from oculus_server.vr.source import SourceState, VRSample
from oculus_server.vr.trajectories import TRAJECTORIES

pytestmark = pytest.mark.timeout(60)


def run_until(reader: QuestReader, cond: Callable[[], bool], timeout: float, period: float = 0.02) -> list[VRSample]:
    """Polls `reader` every `period` s until `cond()` holds; returns the samples; fails on timeout."""
    samples: list[VRSample] = []
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s; status: {reader.status()}")
        s = reader.poll()
        if s is not None:
            samples.append(s)
        time.sleep(period)
    return samples


@pytest.fixture
def make_reader():
    readers: list[QuestReader] = []

    def make(**kw) -> QuestReader:
        r = QuestReader(**kw)
        readers.append(r)
        return r

    yield make
    for r in readers:
        r.close()


# --- the non-blocking line splitter --------------------------------------------------------------


def test_line_splitter_keeps_partial_lines_and_sees_eof() -> None:
    rfd, wfd = os.pipe()
    try:
        lines = NonBlockingLines(rfd, max_line=50)
        assert lines.read() == []  # nothing written: returns at once
        os.write(wfd, b"first\nsec")
        assert lines.read() == [b"first"]
        os.write(wfd, b"ond\nthird\n")
        assert lines.read() == [b"second", b"third"]
        os.write(wfd, b"x" * 120)  # an overlong line, split across reads
        assert lines.read() == []
        os.write(wfd, b"y" * 10 + b"\nok\n" + b"z" * 70 + b"\nlast")
        assert lines.read() == [b"ok"]
        assert lines.overlong == 2
        os.close(wfd)
        wfd = -1
        assert lines.read() == [] and lines.eof
        assert lines.take_partial() == b"last"
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)


# --- the fake headset itself ------------------------------------------------------------------------


def test_fake_headset_writes_parseable_app_lines_between_noise(tmp_path: Path) -> None:
    rfd, wfd = os.pipe()
    fake = FakeHeadset(
        wfd, trajectory="circle", rate_hz=1000.0, duration_s=0.05, noise=2, bad_every=4, side_order="alternate"
    )
    assert fake.run() == 0
    os.close(wfd)
    data = b""
    while chunk := os.read(rfd, 1 << 16):
        data += chunk
    os.close(rfd)
    outcomes = [parse_line(line) for line in data.split(b"\n") if line]
    app = [o for o in outcomes if o is not None]
    assert len(outcomes) - len(app) == 2 * fake.lines_written + 1  # noise + "beginning of main"
    good = [o for o in app if isinstance(o, ParsedLine)]
    assert len(app) == fake.lines_written and len(app) - len(good) == fake.bad_written > 0
    reasons = [o.reason for o in app if not isinstance(o, ParsedLine)]
    assert reasons == [list(CORRUPTIONS.values())[i % len(CORRUPTIONS)] for i in range(len(reasons))]
    # The first clean line is the trajectory at t = 0, byte for byte through the formatter.
    poses, buttons = TRAJECTORIES["circle"].sample(0.0)
    np.testing.assert_allclose(good[0].poses["r"], poses["r"], atol=1e-6)
    assert good[0].buttons == buttons


# --- QuestReader ---------------------------------------------------------------------------------------


def test_missing_adb_says_how_to_install_it(make_reader) -> None:
    reader = make_reader(adb="adb-that-does-not-exist-42")
    with pytest.raises(VRSourceError, match="apt-get install adb"):
        reader.start()


def test_commands_in_usb_and_network_mode() -> None:
    usb = QuestReader(serial="1WMHH000X00000")
    assert usb.logcat_command() == ["adb", "-s", "1WMHH000X00000", "logcat", "-T", "0"]
    net = QuestReader(ip="192.168.1.40", adb="/usr/bin/adb")
    assert net.connect_command() == ["/usr/bin/adb", "connect", "192.168.1.40:5555"]
    assert net.logcat_command() == ["/usr/bin/adb", "-s", "192.168.1.40:5555", "logcat", "-T", "0"]
    assert net.start_app_command()[-4:] == ["am", "start", "-n", "com.rail.oculus.teleop/.MainActivity"]
    assert QuestReader().logcat_command() == ["adb", "logcat", "-T", "0"]


def test_end_to_end_samples_rejects_and_status(make_reader) -> None:
    adb = fake_headset_command("figure8", rate=50, bad_every=5, noise=3)
    reader = make_reader(adb=adb, name="fake")
    assert reader.status().state is SourceState.DISCONNECTED  # not started yet
    assert reader.poll() is None
    reader.start()
    samples = run_until(reader, lambda: reader.status().samples >= 40, timeout=30)
    st = reader.status()
    assert st.state is SourceState.CONNECTED
    assert st.reconnects == 0
    # Every 5th line is corrupted: 1 bad per 4 good (±1 for the lines read at the boundary).
    assert abs(st.rejected - st.samples / 4) <= 1.5
    assert set(st.reject_reasons) <= set(CORRUPTIONS.values()) and sum(st.reject_reasons.values()) == st.rejected
    # Samples carry seq numbers that count every valid line, newest per poll.
    seqs = [s.seq for s in samples]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert seqs[-1] <= st.samples - 1
    assert all(set(s.poses) == {"r", "l"} and s.buttons["RG"] in (True, False) for s in samples)
    # A slow poller gets only the newest line, and a seq gap shows what it skipped.
    time.sleep(0.3)
    late = reader.poll()
    assert late is not None and late.seq == reader.status().samples - 1
    assert late.seq - seqs[-1] > 3


def test_disconnect_then_reconnect(make_reader) -> None:
    adb = fake_headset_command("circle", rate=50, drop_after=1.0, noise=1)
    reader = make_reader(adb=adb, backoff_initial_s=0.2, backoff_max_s=0.4)
    reader.start()
    states: list[SourceState] = []

    def track() -> bool:
        st = reader.status()
        if not states or states[-1] is not st.state:
            states.append(st.state)
        return st.reconnects >= 1 and st.state is SourceState.CONNECTED

    run_until(reader, track, timeout=40)
    i = states.index(SourceState.CONNECTED)
    j = states.index(SourceState.DISCONNECTED, i)
    assert SourceState.CONNECTED in states[j:]
    st = reader.status()
    assert "device offline" in st.last_error and "exited (code 1)" in st.last_error
    assert st.reject_reasons.get("truncated") == 1  # the half line written at the drop


def test_headset_asleep_goes_stale_then_logcat_is_restarted(make_reader) -> None:
    adb = fake_headset_command("hold", rate=50, pause_after=0.5, noise=0)
    reader = make_reader(adb=adb, stale_timeout_s=0.2, silent_restart_s=1.0, backoff_initial_s=0.1)
    reader.start()
    seen: set[SourceState] = set()

    def until_restarted() -> bool:
        seen.add(reader.status().state)
        return reader.status().reconnects >= 1

    run_until(reader, until_restarted, timeout=30)
    assert {SourceState.CONNECTED, SourceState.STALE} <= seen
    assert "no app line" in reader.status().last_error


def test_network_mode_connects_and_starts_the_app_first(make_reader, tmp_path: Path) -> None:
    log = tmp_path / "argv.jsonl"
    adb = [*fake_headset_command("hold", rate=50, noise=0), "--log-commands", str(log)]
    reader = make_reader(adb=adb, ip="10.1.2.3", start_app=True)
    reader.start()
    assert reader.status().state is SourceState.WAITING
    run_until(reader, lambda: reader.status().samples >= 1, timeout=30)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    options = adb[3:]  # after "python -m oculus_server.vr.fake_headset"
    assert all(c[: len(options)] == options for c in calls)
    tails = [c[len(options) :] for c in calls]
    assert tails == [
        ["connect", "10.1.2.3:5555"],
        ["-s", "10.1.2.3:5555", "shell", "am", "start", "-n", "com.rail.oculus.teleop/.MainActivity"],
        ["-s", "10.1.2.3:5555", "logcat", "-T", "0"],
    ]


def test_failed_connect_backs_off_and_retries(make_reader) -> None:
    adb = [*fake_headset_command("hold"), "--fail-connect"]
    reader = make_reader(adb=adb, ip="10.9.9.9", backoff_initial_s=0.05, backoff_max_s=0.1)
    reader.start()
    run_until(reader, lambda: reader.status().reconnects >= 2, timeout=30)
    st = reader.status()
    assert st.samples == 0
    assert "failed to connect" in st.last_error
    assert st.state in (SourceState.DISCONNECTED, SourceState.WAITING)


def test_failing_command_reports_its_error_and_retries(make_reader, tmp_path: Path) -> None:
    reader = make_reader(adb=[sys.executable, str(tmp_path / "missing.py")], backoff_initial_s=0.05)
    reader.start()
    run_until(reader, lambda: reader.status().reconnects >= 1, timeout=20)
    assert "exited (code 2)" in reader.status().last_error and "missing.py" in reader.status().last_error


def test_close_stops_the_child(make_reader) -> None:
    reader = make_reader(adb=fake_headset_command("hold", rate=50))
    reader.start()
    run_until(reader, lambda: reader.status().samples >= 1, timeout=30)
    proc = reader._proc
    assert proc is not None and proc.poll() is None
    reader.close()
    assert proc.poll() is not None
    reader.close()  # idempotent
    assert reader.status().state is SourceState.DISCONNECTED
    assert reader.poll() is None


def test_usb_logcat_waiting_for_the_device_is_not_restarted(make_reader) -> None:
    waiting_adb = [
        sys.executable,
        "-c",
        "import sys, time; sys.stderr.write('- waiting for device -\\n'); sys.stderr.flush(); time.sleep(30)",
    ]
    reader = make_reader(adb=waiting_adb, silent_restart_s=0.3)
    reader.start()
    run_until(reader, lambda: "waiting for device" in reader.status().detail, timeout=20)
    end = time.monotonic() + 1.0
    run_until(reader, lambda: time.monotonic() > end, timeout=5)
    st = reader.status()
    assert st.state is SourceState.WAITING and st.reconnects == 0 and st.samples == 0


# --- adb device presence (the one helper; the daemon's --debug source choice uses it) -----------

ADB_DEVICES = (
    "List of devices attached\n"
    "1WMHH815K10123\tdevice\n"
    "192.168.1.40:5555\tdevice\n"
    "emulator-5554\toffline\n"
    "2G0YC1ZF8S0456\tunauthorized\n"
)


def test_parse_adb_devices_keeps_only_ready_devices() -> None:
    assert parse_adb_devices(ADB_DEVICES) == ["1WMHH815K10123", "192.168.1.40:5555"]
    assert parse_adb_devices("List of devices attached\n\n") == []
    assert parse_adb_devices("* daemon not running; starting now at tcp:5037\n* daemon started successfully\n") == []


def test_headset_present_runs_adb_devices(tmp_path) -> None:
    import stat

    fake = tmp_path / "adb"
    listing = tmp_path / "devices.txt"
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = devices ] && cat {listing}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    listing.write_text(ADB_DEVICES)
    assert headset_present(adb=str(fake))
    assert headset_present("1WMHH815K10123", adb=str(fake))
    assert headset_present("192.168.1.40", adb=str(fake))  # network adb: IP without the port
    assert not headset_present("emulator-5554", adb=str(fake))  # offline
    assert not headset_present("10.0.0.9", adb=str(fake))
    listing.write_text("List of devices attached\n\n")
    assert not headset_present(adb=str(fake))
    assert not headset_present(adb=str(tmp_path / "no-such-adb"))
