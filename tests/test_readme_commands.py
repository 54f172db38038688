"""The README's commands, run as written (subprocess, no terminal, real flags), checked on the real
parts: the simulator's own state, the service's own protocol, the arena's files.

`./run_server.sh --debug` and `vla-server serve` run on their default ports: those tests hold one
machine-wide lock (`tests/debug_demo.default_ports_lock`), so they never run at the same time.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.debug_demo import (
    ROOT,
    default_ports_lock,
    demo_outcome,
    run_debug_demo,
    user_shell_env,
    venv_missing,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(venv_missing() is not None, reason=venv_missing() or "")]

BUSY_LOOP = "while 1: pass"
BIN = ROOT / ".venv" / "bin"
README = (ROOT / "README.md").read_text()


def readme_block(after: str, lang: str) -> str:
    """The first ```lang block of the README after the line containing `after`."""
    start = README.index(after)
    m = re.compile(rf"```{lang}\n(.*?)```", re.S).search(README, start)
    assert m is not None, f"no {lang} block after {after!r} in README.md"
    return m.group(1)


def readme_line(prefix: str) -> list[str]:
    """The README command that starts with `prefix` (with its `\\` continuation lines), split into
    words (comments dropped)."""
    import shlex

    lines = README.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(prefix):
            words = []
            for part in lines[i:]:
                text = part.split("  #")[0].rstrip()
                words.append(text.removesuffix("\\"))
                if not text.endswith("\\"):
                    break
            return shlex.split(" ".join(words))
    raise AssertionError(f"README.md has no line starting with {prefix!r}")


def _check_first_episode_stacks(tmp_path: Path) -> None:
    run = run_debug_demo(tmp_path)
    assert run.returncode == 0, run.log[-4000:]
    assert run.episode is not None, f"no episode was filed:\n{run.log[-4000:]}"
    assert "looping the scripted pick-and-place demo" in run.log
    outcome = demo_outcome(run.episode)
    print(f"{run.episode.name}: {outcome.describe()} ({run.wall_s:.0f} s)")
    waits = [ln for ln in run.log.splitlines() if "scripted" in ln or "overran" in ln][-20:]
    assert outcome.stacked, outcome.describe() + "\n" + "\n".join(waits)
    assert run.episode.parent.name == "success"


def test_run_server_debug_with_no_terminal_stacks_the_red_cube_on_the_blue_one(tmp_path: Path) -> None:
    _check_first_episode_stacks(tmp_path)


def test_run_server_debug_stacks_the_red_cube_beside_a_cpu_bound_process(tmp_path: Path) -> None:
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdin=subprocess.DEVNULL)
    try:
        _check_first_episode_stacks(tmp_path)
    finally:
        busy.kill()
        busy.wait()


def test_run_server_debug_with_assist_blends_the_policy_into_the_operators_motion(tmp_path: Path) -> None:
    from robot_formats.recording.reader import RecordingReader

    argv = readme_line("./run_server.sh --debug --assist color-reach")
    assert argv[:2] == ["./run_server.sh", "--debug"]
    run = run_debug_demo(tmp_path, argv[2:])
    assert run.returncode == 0, run.log[-4000:]
    assert run.episode is not None, f"no episode was filed:\n{run.log[-4000:]}"
    with RecordingReader(run.episode) as r:
        blends = [m for _, _, _, _, m in r.messages(["/assist/blend"])]
        actions = sum(1 for _ in r.messages(["/assist/action"]))
    engaged = [m for m in blends if m["engaged"]]
    used = [m for m in engaged if m["state"] == "on" and m["alpha"] > 0]
    print(f"{len(used)}/{len(engaged)} engaged ticks blended, {actions} policy actions")
    assert actions > 50 and len(engaged) > 100
    assert len(used) >= 0.5 * len(engaged), {m["state"] for m in engaged}
    assert max(m["alpha"] for m in used) == pytest.approx(0.3)  # the README's default α


def test_vla_server_serve_answers_the_readmes_ten_line_stream_client(tmp_path: Path) -> None:
    env = user_shell_env()
    created = subprocess.run(readme_line("vla-server keys create"), cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    with default_ports_lock({"http": 8000, "openpi": 8001}):
        _serve_and_stream(tmp_path, env, key)


def _serve_and_stream(tmp_path: Path, env: dict[str, str], key: str) -> None:
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(readme_line("vla-server serve"), cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get("http://127.0.0.1:8000/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.25)
        prelude = f"KEY = {key!r}\nimport numpy as np\nrgb_uint8_hxwx3 = np.zeros((240, 320, 3), np.uint8)\n"
        client = subprocess.run([str(BIN / "python"), "-c", prelude + readme_block("Stream from Python", "python")],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert client.returncode == 0, client.stderr
        connected, action = (ast.literal_eval(line) for line in client.stdout.splitlines())
        assert connected["type"] == "connected" and connected["status"] == "ready"
        assert action["type"] == "action" and len(action["action"]) == 7 and action["frame_id"] == 0
        os.killpg(proc.pid, signal.SIGINT)  # "Ctrl-C stops"
        assert proc.wait(60) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_vla_arena_run_lifts_the_red_cube_from_a_plain_shell(tmp_path: Path) -> None:
    from mcap.reader import make_reader

    argv = readme_line("vla-arena run --model color-reach --instruction \"pick up the red cube\"  ")
    run = subprocess.run(argv, cwd=tmp_path, env=user_shell_env(), capture_output=True, text=True, timeout=600,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " done " in run.stdout and "success True" in run.stdout, run.stdout  # README: default start, 0 ms: success
    (episode,) = (tmp_path / "vla_data" / "arena" / "episodes").iterdir()
    assert {"video.mp4", "trajectory.mcap", "final.blob"} <= {p.name for p in episode.iterdir()}
    with open(episode / "trajectory.mcap", "rb") as f:
        r = make_reader(f)
        assert r.get_summary().statistics.message_count == sum(1 for _ in r.iter_messages()) > 0


# -- the README's daemon examples -------------------------------------------------------------------

RUN_SERVER = "./run_server.sh --debug"
TICK_TOPIC = "/control/mode"  # one message per recording tick
PATH_TOL_M = 0.025  # the replayed hand's path within this of the recorded one (measured 0.6 cm)


def _sandbox_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}


def _episodes(box: Path) -> list[Path]:
    return sorted((box / "recordings").glob("*/*.mcap"), key=lambda p: p.name)


def _metadata(path: Path) -> dict[str, dict[str, str]]:
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        return {m.name: dict(m.metadata) for m in make_reader(f).iter_metadata()}


def _json_messages(path: Path, topic: str) -> list[tuple[int, dict]]:
    """(log time ns, message) of every JSON message on `topic`, read with the official reader."""
    import json

    from mcap.reader import make_reader

    with open(path, "rb") as f:
        return [(m.log_time, json.loads(m.data)) for _, _, m in make_reader(f).iter_messages(topics=[topic])]


@contextlib.contextmanager
def _reaped(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Kills `proc`'s process group (SIGKILL) if it is still running when the block ends."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _ctrl_c(proc: subprocess.Popen) -> int:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) unless it has exited; its exit code."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    return proc.wait(timeout=60)


def _sequences(path: Path, topic: str) -> list[tuple[int, int]]:
    """(message sequence, log time ns) of every message on `topic`, read with the official reader."""
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        return [(m.sequence, m.log_time) for _, _, m in make_reader(f).iter_messages(topics=[topic])]


def _run_to_exit(box: Path, argv: list[str], log_path: Path, timeout_s: float = 240.0,
                 rtkit_bus: str | None = None) -> tuple[int, str]:
    """Runs `argv` in the sandbox with no terminal until it exits by itself (SIGKILL after `timeout_s`).
    With `rtkit_bus`, as an operator who is not root would on a desktop: without CAP_SYS_NICE, that
    bus as the system bus (tests/rtkit_sandbox.py)."""
    from tests.rtkit_sandbox import drop_sys_nice

    env = _sandbox_env() | ({"DBUS_SYSTEM_BUS_ADDRESS": rtkit_bus} if rtkit_bus else {})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=box, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=drop_sys_nice if rtkit_bus else None)
    with _reaped(proc):
        rc = proc.wait(timeout=timeout_s)
    return rc, log_path.read_text(errors="replace")


class TimedRun:
    """`./run_server.sh --debug --performance --vr-source scripted:pick_place --duration 30 --no-dashboard`."""

    def __init__(self, tmp: Path, busy: bool = False, rtkit_bus: str | None = None) -> None:
        from tests.debug_demo import sandbox

        self.argv = readme_line(f"{RUN_SERVER} --performance --vr-source scripted:pick_place")
        assert self.argv[2:] == ["--performance", "--vr-source", "scripted:pick_place", "--duration", "30",
                                 "--no-dashboard"], self.argv
        self.box = sandbox(tmp)
        load = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdin=subprocess.DEVNULL) if busy else None
        try:
            with default_ports_lock():
                self.returncode, self.log = _run_to_exit(self.box, self.argv, tmp / "run_server.log",
                                                         rtkit_bus=rtkit_bus)
        finally:
            if load is not None:
                load.kill()
                load.wait()
        self.episodes = _episodes(self.box)


def _check_timed_performance_run(run: TimedRun) -> None:
    """What the README promises for the command: it exits by itself, cleanly, after 30 s (`--duration`),
    printing the compact status line (`--no-dashboard`); scripted sources record from the start
    (`--record-on-start` default); 40 Hz control and recording (`--performance`), every tick built and
    every command sent (consecutive `send_seq`) recorded; pick_place stacks the red cube and presses B (success)."""
    from tests.recording_checks import read_whole, validate_json_messages

    assert run.returncode == 0, run.log[-4000:]
    assert "duration of 30.0 s reached: stopping" in run.log, run.log[-4000:]
    assert "Traceback" not in run.log, run.log[-4000:]
    assert re.search(r"INFO oculus_server: t=\d+s \| ", run.log), "no --no-dashboard status line:\n" + run.log[-4000:]
    assert len(run.episodes) == 1, run.episodes
    (episode,) = run.episodes
    assert episode.parent.name == "success", (episode, run.log[-4000:])
    assert f"recording saved: recordings/success/{episode.name}" in run.log
    assert read_whole(episode) > 0
    validate_json_messages(episode)
    meta = _metadata(episode)
    start, end = meta["recording_start"], meta["recording_end"]
    assert start["mode"] == "performance" and start["rates_hz"] == "vr=50.0 control=40.0 record=40.0", start
    assert end["outcome"] == "success", end
    ticks = _json_messages(episode, TICK_TOPIC)
    assert len(ticks) == int(end["ticks_last_seq"]) + 1, "ticks built but not recorded"
    assert {g["value"] for _, m in ticks for g in m["gains"] if g["name"] == "control_hz"} == {40.0}
    periods_ms = np.diff([t for t, _ in ticks]) / 1e6
    # The ticks' own log times: 40 Hz is a 25 ms period (the median ignores a late tick on a busy VM;
    # at 20 Hz it would be 50 ms).
    assert 22.5 < float(np.median(periods_ms)) < 27.5, np.percentile(periods_ms, [1, 50, 99])
    # Every command sent while the episode was open, once, in send order: `send_seq` consecutive (from
    # the first command after the episode opened: one may have been sent before) and equal to the
    # message sequence, as the README's topic table says.
    commands = _json_messages(episode, "/robot/command")
    sent = [m["send_seq"] for _, m in commands]
    assert len(sent) > 50 and sent == list(range(sent[0], sent[0] + len(sent))), sent
    assert [seq for seq, _ in _sequences(episode, "/robot/command")] == sent
    outcome = demo_outcome(episode)
    print(f"{episode.name}: {len(ticks)} ticks, median period {np.median(periods_ms):.2f} ms, "
          f"{len(sent)} commands; {outcome.describe()}")
    assert outcome.stacked, outcome.describe()


@pytest.fixture(scope="module")
def timed_run(tmp_path_factory: pytest.TempPathFactory) -> TimedRun:
    """One run of the README's timed example, shared by the tests that check it and replay it."""
    return TimedRun(tmp_path_factory.mktemp("timed"))


def test_run_server_debug_performance_duration_30_exits_by_itself_with_a_40_hz_recording(timed_run: TimedRun) -> None:
    _check_timed_performance_run(timed_run)


def test_run_server_debug_performance_duration_30_beside_a_cpu_bound_process(tmp_path: Path) -> None:
    _check_timed_performance_run(TimedRun(tmp_path, busy=True))


def test_run_server_debug_performance_duration_30_for_an_operator_without_privileges_runs_under_rtkit(
        tmp_path: Path) -> None:
    """The README's timed command as written, by a user who may not ask for SCHED_FIFO, on a machine
    with RealtimeKit (Debian's, on a private bus), beside a CPU-bound process: the same outcome, and
    the loops real-time from rtkit, as the README's scheduling section says."""
    from tests.rtkit_sandbox import missing, rtkit_sandbox

    if missing():
        pytest.skip(f"private rtkit: {missing()}")
    with rtkit_sandbox(tmp_path / "rtkit") as bus:
        run = TimedRun(tmp_path, busy=True, rtkit_bus=bus)
    _check_timed_performance_run(run)
    assert "real-time scheduling from RealtimeKit (SCHED_RR" in run.log, run.log[-4000:]
    assert "no real-time scheduling" not in run.log, run.log[-4000:]
    events = [m for _, m in _json_messages(run.episodes[0], "/events") if m.get("kind") == "scheduling"]
    assert [(e["data"]["realtime"], e["data"]["via"]) for e in events] == [(True, "rtkit")], events


def _hand_path(path: Path) -> np.ndarray:
    """(n, 3) measured hand positions (robot base, m) while the arm followed the controller."""
    from robot_formats.recording.reader import RecordingReader

    with RecordingReader(path) as r:
        events = [(log_ns, m["message"]) for _, log_ns, _, _, m in r.messages(["/events"]) if m["kind"] == "control"]
        engaged = next(t for t, what in events if what == "engaged")
        released = next((t for t, what in events if what == "disengaged" and t > engaged), None)
        return np.array([(m.pose.position.x, m.pose.position.y, m.pose.position.z)
                         for _, log_ns, _, _, m in r.messages(["/robot/ee_pose"])
                         if log_ns >= engaged and (released is None or log_ns <= released)])


def _poses(path: Path, topic: str) -> list[tuple[float, ...]]:
    from robot_formats.recording.reader import RecordingReader

    with RecordingReader(path) as r:
        return [(p.position.x, p.position.y, p.position.z, p.orientation.x, p.orientation.y, p.orientation.z,
                 p.orientation.w) for _, _, _, _, m in r.messages([topic]) for p in [m.pose]]


def _run_until(box: Path, argv: list[str], log_path: Path, done: str, timeout_s: float = 180.0) -> tuple[int, str]:
    """Runs `argv` in the sandbox with no terminal until its output matches the regular expression
    `done`, then Ctrl-C."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=box, env=_sandbox_env(), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    with _reaped(proc):
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and not re.search(done, log_path.read_text(errors="replace")):
            assert time.monotonic() < deadline, f"no {done!r} in {timeout_s} s:\n" + log_path.read_text()[-4000:]
            time.sleep(0.25)
        rc = _ctrl_c(proc)
    return rc, log_path.read_text(errors="replace")


def test_run_server_debug_replay_source_moves_the_arm_as_the_recording_did(timed_run: TimedRun,
                                                                           tmp_path: Path) -> None:
    """`--vr-source replay:recordings/success/FILE.mcap` replays the controller of the timed example's
    episode: the new episode's controller poses are the recorded ones, the hand follows the recorded
    hand's path, and the replayed B marks it a success."""
    import shutil

    from tests.debug_demo import sandbox

    argv = readme_line(f"{RUN_SERVER} --vr-source replay:")
    assert argv[3].startswith("replay:recordings/success/") and argv[3].endswith(".mcap"), argv
    (original,) = timed_run.episodes
    box = sandbox(tmp_path)
    (box / "recordings" / "success").mkdir(parents=True)
    shutil.copy2(original, box / "recordings" / "success" / original.name)
    argv[3] = f"replay:recordings/success/{original.name}"
    with default_ports_lock():
        # The status line says vr=finished once the replay's last frame has played; then Ctrl-C.
        rc, log = _run_until(box, argv, tmp_path / "run_server.log", r"\| vr=finished ")
    assert rc == 0, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    (replayed,) = [p for p in _episodes(box) if p.name != original.name]
    assert replayed.parent.name == "success", (replayed, log[-4000:])  # the recorded B, replayed
    assert _metadata(replayed)["recording_start"]["vr_source"].startswith(f"replay:recordings/success/{original.name}")
    recorded, played = _poses(original, "/vr/right/pose"), _poses(replayed, "/vr/right/pose")
    assert set(played) <= set(recorded), "the replay recorded controller poses the recording does not hold"
    assert len(set(played)) >= 0.5 * len(set(recorded)), (len(set(played)), len(set(recorded)))
    a, b = _hand_path(original), _hand_path(replayed)
    gap = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    worst_a, worst_b = float(gap.min(axis=1).max()), float(gap.min(axis=0).max())
    print(f"{replayed.name}: hand path within {worst_a * 100:.1f} / {worst_b * 100:.1f} cm of the recorded one "
          f"({len(a)} / {len(b)} states); {demo_outcome(replayed).describe()}")
    assert worst_a < PATH_TOL_M and worst_b < PATH_TOL_M, (worst_a, worst_b)


class Terminal:
    """A pseudo-terminal (80×200) for a child: what it prints is drained into `output` by a thread."""

    def __init__(self) -> None:
        import fcntl
        import struct
        import termios
        import threading

        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 80, 200, 0, 0))
        self.settings = termios.tcgetattr(self.slave)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every copy of the slave side is closed
                return
            if not data:
                return
            self._chunks.append(data)

    @property
    def output(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def wait_for(self, pattern: str, proc: subprocess.Popen, timeout_s: float = 180.0) -> None:
        """Waits until the output matches the regular expression `pattern`."""
        self.wait_until(lambda: re.search(pattern, self.output) is not None, repr(pattern), proc, timeout_s)

    def wait_until(self, done: Callable[[], bool], what: str, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
        """Waits until `done()` while the child runs; the assertion names `what` and shows the output."""
        deadline = time.monotonic() + timeout_s
        while not done():
            assert proc.poll() is None, f"exited ({proc.returncode}) before {what}:\n{self.output[-4000:]}"
            assert time.monotonic() < deadline, f"no {what} in {timeout_s} s:\n{self.output[-4000:]}"
            time.sleep(0.1)

    def type(self, keys: str, gap_s: float = 0.1) -> None:
        for key in keys:
            os.write(self.master, key.encode())
            time.sleep(gap_s)

    def close(self) -> None:
        os.close(self.slave)
        self._reader.join(timeout=10)
        os.close(self.master)


def test_run_server_debug_keyboard_source_in_a_terminal_drives_the_arm_and_names_the_task(tmp_path: Path) -> None:
    """`--vr-source keyboard --task "stack the red cube"` at a terminal (a pty): space starts an episode,
    g holds the deadman, w moves the arm forward 1 cm a press, b marks success, space stops; the
    episode carries the task, and the terminal's settings are restored at exit."""
    import termios

    from tests.debug_demo import sandbox

    argv = readme_line(f"{RUN_SERVER} --vr-source keyboard")
    assert argv[2:] == ["--vr-source", "keyboard", "--task", "stack the red cube"], argv
    box = sandbox(tmp_path)
    term = Terminal()
    with default_ports_lock():
        proc = subprocess.Popen(argv, cwd=box, env=_sandbox_env(), stdin=term.slave, stdout=term.slave,
                                stderr=term.slave, start_new_session=True)
        try:
            with _reaped(proc):
                term.wait_for("daemon running", proc)
                term.type(" ")  # A: start an episode: its file is open under recordings/
                term.wait_until(lambda: any((box / "recordings").glob("*_stack-the-red-cube.mcap.partial")),
                                "open episode file", proc)
                term.type("g", gap_s=1.0)  # the deadman (grip) on; its press anchors the origin
                term.type("w" * 10)  # ten presses, 1 cm each, forward
                time.sleep(3.0)  # the arm gets there (a ~150 ms round trip)
                term.type("g", gap_s=0.5)
                term.type("b", gap_s=1.0)  # B: success
                term.type(" ")  # A: stop
                term.wait_until(lambda: bool(_episodes(box)), "finished episode file", proc)
                rc = _ctrl_c(proc)
        finally:
            restored = termios.tcgetattr(term.slave)
            term.close()
    assert rc == 0, term.output[-4000:]
    assert restored == term.settings, "the terminal was left in cbreak mode"
    (episode,) = _episodes(box)
    assert episode.parent.name == "success" and episode.stem.endswith("_stack-the-red-cube"), episode
    start = _metadata(episode)["recording_start"]
    assert start["task"] == "stack the red cube" and start["vr_source"].startswith("keyboard"), start
    hand = _hand_path(episode)
    moved = hand[-1] - hand[0]
    print(f"{episode.name}: the hand moved {np.round(moved * 100, 1)} cm while the deadman was held")
    assert 0.07 < moved[0] < 0.13, moved  # forward (robot +x) by the ten presses
    assert abs(moved[1]) < 0.02 and abs(moved[2]) < 0.02, moved


def test_run_server_debug_assists_with_a_lerobot_policy_from_the_catalog(tmp_path: Path) -> None:
    """Step 6 of *Training a policy* with the catalog that step 3 writes (here: the tests' tiny ACT,
    registered as act-arena in the sandbox's models/catalog.yaml): the daemon's local service loads
    the LeRobot policy and its actions are blended into the operator's motion (α → 0.3). Stopped
    with Ctrl-C once the status line shows the assist on at full α."""
    import yaml

    from robot_formats.recording.reader import RecordingReader
    from tests.debug_demo import sandbox
    from tests.lerobot_env import tiny_checkpoint

    argv = readme_line(f"{RUN_SERVER} --assist act-arena")
    assert argv[2:6] == ["--assist", "act-arena", "--assist-catalog", "models/catalog.yaml"], argv
    made = tiny_checkpoint()  # skips, naming tools/make_lerobot_env.sh, without the LeRobot env
    catalog = yaml.safe_load(made.catalog.read_text())
    (entry,) = [e for e in catalog["models"] if e["id"] == made.model_id]
    entry["id"] = "act-arena"
    box = sandbox(tmp_path)
    (box / "models").mkdir()
    (box / "models" / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    with default_ports_lock():
        rc, log = _run_until(box, argv, tmp_path / "run_server.log", r"assist: on α=0\.30 act-arena ")
    assert rc == 0, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    assert re.search(r"vla stream session \S+ model=act-arena", log), log[-4000:]
    (episode,) = _episodes(box)  # open at Ctrl-C: finalized and kept
    with RecordingReader(episode) as r:
        blends = [m for _, _, _, _, m in r.messages(["/assist/blend"])]
        actions = sum(1 for _ in r.messages(["/assist/action"]))
    used = [m for m in blends if m["engaged"] and m["state"] == "on" and m["alpha"] > 0]
    moved = [m for m in used if m["blended"] != m["operator"]]
    print(f"{episode.name}: {actions} act-arena actions, {len(used)} ticks blended, {len(moved)} changed the command")
    assert actions > 0 and moved, {m["state"] for m in blends}
    assert max(m["alpha"] for m in used) == pytest.approx(0.3)  # the README's default α
