"""Runs the README's first command, `./run_server.sh --debug`, as a user does, and reads what its
first episode did from the recording's own ``/sim/state`` with the MJCF the recording carries.

The command runs in a *sandbox*: a temporary folder holding this checkout's `run_server.sh`,
`tools/bootstrap.sh`, `setup.cfg`, `pyproject.toml` and `configs/` (the same files) with `.venv`
linked to this checkout's, so the script does exactly what it does in a checkout while its
`recordings/` and `logs/` land in the temporary folder (the user's recordings are never touched,
their leftover partials never recovered by a test). It listens on the default ports (8900-8903,
10005-10006), as the README's command does: every test that uses them holds `default_ports_lock`
(a machine-wide file lock), so no two run at once, whichever xdist worker or test session they are
in, and each releases it only once its ports are free again.

No terminal (stdin is /dev/null, output to a file): the daemon loops the scripted pick-and-place.
Once the first episode's file is finished (in `recordings/success/` or `failure/`), the run is
stopped with SIGINT sent to its process group, as Ctrl-C in a terminal does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oculus_server.vr.trajectories import CUBE_SIZE_M

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORTS = {"state": 8900, "control": 8901, "commanded": 8902, "sim state": 8903, "camera 0": 10005,
                 "camera 1": 10006}
LOCK_PATH = Path(tempfile.gettempdir()) / "franka-vr-teleop-default-ports.lock"
LOCK_TIMEOUT_S = 900.0  # another test (or session) may hold the default ports this long
SANDBOX_FILES = ("run_server.sh", "setup.cfg", "pyproject.toml", "tools/bootstrap.sh")
SCENE_ATTACHMENT = "panda_scene.xml"
STACK_XY_TOL_M = 0.015  # a stacked cube's centre within this of the lower cube's (cubes are 4.5 cm)
STACK_Z_TOL_M = 0.004  # ... and resting on it
LIFT_Z_M = 0.1  # the red cube's centre must have been above this (lifted off the table)


def sandbox(tmp: Path) -> Path:
    """A checkout's shell in `tmp` (see the module doc); returns its root."""
    box = tmp / "checkout"
    for name in SANDBOX_FILES:
        (box / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, box / name)
    shutil.copytree(ROOT / "configs", box / "configs")
    (box / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    return box


def venv_missing() -> str | None:
    """Why the command cannot run here (no .venv bootstrapped for this setup.cfg), or None.

    The sandbox must find `.venv` current: were `tools/bootstrap.sh` to reinstall from the sandbox,
    it would point the editable install at the temporary folder.
    """
    if not (ROOT / ".venv" / "bin" / "oculus-server").exists():
        return f"{ROOT / '.venv'} has no oculus-server: run ./run_tests.sh (it bootstraps .venv)"
    digest = hashlib.sha1((ROOT / "setup.cfg").read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not (ROOT / ".venv" / f".installed-{digest[:12]}").exists():
        return f"{ROOT / '.venv'} is not installed from the current setup.cfg: run ./run_tests.sh (it reinstalls)"
    return None


def user_shell_env() -> dict[str, str]:
    """The environment of a user's plain shell with .venv/bin on PATH: no MUJOCO_GL (only
    run_server.sh sets it), no display, nothing this test process added."""
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY",
                                                          "WAYLAND_DISPLAY", "VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def wait_ports_free(ports: dict[str, int], timeout_s: float = 30.0) -> None:
    """Waits until the default ports are free (a previous run may still be closing them).

    Raises:
        AssertionError: one is still taken after `timeout_s` (the message names the holder).
    """
    from frankateach.port_holder import PortInUseError, check_ports_free

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check_ports_free("127.0.0.1", ports)
            return
        except PortInUseError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"the README's command needs its default ports: {exc}") from None
        time.sleep(0.2)


@contextlib.contextmanager
def default_ports_lock(ports: Mapping[str, int] = DEFAULT_PORTS) -> Iterator[None]:
    """Holds the machine-wide lock of the README's default ports: waits for `ports` to be free on
    entry, and on exit until they are free again (a child such as the simulator may still be closing).

    Raises:
        AssertionError: the lock or the ports did not come free in time.
    """
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    with open(LOCK_PATH, "a+b") as lock:
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{LOCK_PATH} held for over {LOCK_TIMEOUT_S} s"
                time.sleep(0.2)
        try:
            wait_ports_free(dict(ports))
            yield
            wait_ports_free(dict(ports))
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


@dataclass
class DemoRun:
    """One run of the command until its first episode was filed."""

    returncode: int
    episode: Path | None  # the first finished episode file
    log: str
    wall_s: float  # start to exit


def finished_episode(box: Path) -> Path | None:
    """The first finished episode file under the sandbox's recordings/, or None."""
    files = sorted((box / "recordings").glob("*/*.mcap"), key=lambda p: p.name)
    return files[0] if files else None


def run_debug_demo(tmp: Path, extra_args: Sequence[str] = (), timeout_s: float = 240.0) -> DemoRun:
    """Runs ``./run_server.sh --debug [extra_args]`` with no terminal until the first episode is filed,
    then stops it with SIGINT (Ctrl-C) and waits for it to exit."""
    problem = venv_missing()
    if problem:
        raise AssertionError(problem)
    box = sandbox(tmp)
    with default_ports_lock():
        return _run(box, tmp, extra_args, timeout_s)


def _run(box: Path, tmp: Path, extra_args: Sequence[str], timeout_s: float) -> DemoRun:
    log_path = tmp / "run_server.log"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["./run_server.sh", "--debug", *extra_args], cwd=box, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    episode = None
    try:
        deadline = t0 + timeout_s
        while episode is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.25)
            episode = finished_episode(box)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return DemoRun(rc, episode or finished_episode(box), log_path.read_text(errors="replace"),
                   time.monotonic() - t0)


@dataclass
class DemoOutcome:
    """What the simulator's own state says about an episode of the pick-and-place demo."""

    samples: int  # /sim/state samples read
    red_start: np.ndarray
    red_end: np.ndarray
    blue_start: np.ndarray
    blue_end: np.ndarray
    red_max_z: float

    @property
    def stacked(self) -> bool:
        """Red lifted and resting on blue, blue where it was."""
        on_top = self.blue_end[2] + CUBE_SIZE_M  # blue's centre + a cube height
        return bool(
            self.red_max_z > LIFT_Z_M
            and np.linalg.norm(self.red_end[:2] - self.blue_end[:2]) < STACK_XY_TOL_M
            and abs(self.red_end[2] - on_top) < STACK_Z_TOL_M
            and np.linalg.norm(self.blue_end - self.blue_start) < 0.005
        )

    def describe(self) -> str:
        r, b = np.round(self.red_end, 4), np.round(self.blue_end, 4)
        verdict = "stacked" if self.stacked else "NOT stacked"
        return f"{verdict}: red {r} (lifted to z {self.red_max_z:.3f} m), blue {b}; {self.samples} /sim/state samples"


def demo_outcome(path: Path) -> DemoOutcome:
    """Reads the cubes from every ``/sim/state`` blob of the recording at `path`, in the MuJoCo model
    built from the MJCF it carries (not the simulator's code)."""
    import mujoco
    from mcap.reader import make_reader

    from frankateach.sim import state_blob
    from robot_formats.recording.reader import RecordingReader

    with open(path, "rb") as f:
        xml = next(a.data for a in make_reader(f).iter_attachments() if a.name == SCENE_ATTACHMENT)
    model = mujoco.MjModel.from_xml_string(xml.decode())
    data = mujoco.MjData(model)
    red, blue = [], []
    with RecordingReader(path) as r:
        for _, _, _, _, m in r.messages(["/sim/state"]):
            snap = state_blob.decode(m["blob"])
            mujoco.mj_setState(model, data, snap.state, snap.state_spec)
            mujoco.mj_forward(model, data)
            red.append(data.body("red_cube").xpos.copy())
            blue.append(data.body("blue_cube").xpos.copy())
    if not red:
        raise AssertionError(f"{path} has no /sim/state")
    return DemoOutcome(len(red), red[0], red[-1], blue[0], blue[-1], float(max(p[2] for p in red)))
