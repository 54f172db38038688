"""The README's commands, run as written (subprocess, no terminal, real flags), checked on the real
parts: the simulator's own state, the service's own protocol, the arena's files.

`./run_server.sh --debug` and `vla-server serve` run on their default ports: those tests hold one
machine-wide lock (`tests/debug_demo.default_ports_lock`), so they never run at the same time.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
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
    """The README command line that starts with `prefix`, split into words (its comment dropped)."""
    for line in README.splitlines():
        if line.startswith(prefix):
            import shlex

            return shlex.split(line.split("  #")[0])
    raise AssertionError(f"README.md has no line starting with {prefix!r}")


def _check_first_episode_stacks(tmp_path: Path) -> None:
    run = run_debug_demo(tmp_path)
    assert run.returncode == 0, run.log[-4000:]
    assert run.episode is not None, f"no episode was filed:\n{run.log[-4000:]}"
    assert "looping the scripted pick-and-place demo" in run.log
    outcome = demo_outcome(run.episode)
    print(f"{run.episode.name}: {outcome.describe()} ({run.wall_s:.0f} s)")
    assert outcome.stacked, outcome.describe()
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
