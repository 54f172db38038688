"""Parent side of the simulated cameras: starts the render process and feeds it qpos snapshots.

Rendering runs in a separate process (multiprocessing *spawn*) so that OpenGL and JPEG work
never compete with the physics thread for the GIL. The physics thread only copies the newest
qpos into a shared-memory block (`push`, a few µs); the render process samples it at its own
rate. The GL backend is tried in order: $MUJOCO_GL if set, then EGL, then OSMesa.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from frankateach.errors import FrankaTeachError, HardwareUnavailableError
from frankateach.sim.render_worker import CameraConfig, render_main

log = logging.getLogger(__name__)

GL_BACKENDS = ("egl", "osmesa")
START_TIMEOUT_S = 60.0  # spawn + imports + model build + GL context, on a loaded machine


def gl_candidates() -> list[str]:
    """GL backends to try, in order: $MUJOCO_GL first (if set), then EGL, then OSMesa."""
    first = os.environ.get("MUJOCO_GL", "").strip().lower()
    return list(dict.fromkeys([b for b in (first, *GL_BACKENDS) if b]))


def rendering_available(backend: str, timeout_s: float = 60.0) -> tuple[bool, str]:
    """Probes, in a fresh interpreter, whether MuJoCo can render offscreen with `backend`.

    Returns:
        (True, "") if a 16×16 frame rendered, else (False, the last line of the error).
    """
    code = (
        "import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco/>'); "
        "r = mujoco.Renderer(m, 16, 16); r.update_scene(mujoco.MjData(m)); r.render()"
    )
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             timeout=timeout_s, text=True)
    except subprocess.TimeoutExpired:
        return False, f"MUJOCO_GL={backend}: probe timed out"
    if out.returncode == 0:
        return True, ""
    lines = (out.stderr or out.stdout).strip().splitlines()
    return False, f"MUJOCO_GL={backend}: {lines[-1] if lines else f'exit {out.returncode}'}"


class CameraStreamer:
    """Renders the sim cameras in a child process and publishes JPEG `CameraFrame`s.

    Args:
        config: cameras, image size, rate and ports (camera i on ``port_offset + i``).
        nq: length of the model's qpos vector.
        gl_backends: MUJOCO_GL values to try in order (default: `gl_candidates()`).

    Attributes:
        gl_backend: the MUJOCO_GL value that worked (after `start`).
    """

    def __init__(
        self, config: CameraConfig, nq: int, gl_backends: Sequence[str] | None = None
    ) -> None:
        self.config = config
        self.gl_backends = list(gl_backends) if gl_backends is not None else gl_candidates()
        self.nq = int(nq)
        self._ctx = mp.get_context("spawn")
        self._shared = self._ctx.Array("d", 2 + self.nq, lock=True)  # [seq, wall s, qpos...]
        self.skipped_pushes = 0  # snapshots dropped because the renderer held the lock too long
        self._view = np.frombuffer(cast(Any, self._shared.get_obj()), dtype=np.float64)  # the shared doubles
        self._stats = self._ctx.Array("d", 2 * len(config.names), lock=False)
        self._stop = self._ctx.Event()
        self._proc: Any = None
        self.gl_backend = ""

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Starts the render process; returns once its first frame rendered and ports are bound.

        Raises:
            HardwareUnavailableError: no GL backend could render (the message says why for each).
            FrankaTeachError: the renderer failed for another reason (e.g. a camera port in use).
        """
        reasons = []
        for backend in self.gl_backends:
            kind, detail = self._try_start(backend, timeout_s)
            if kind == "ok":
                self.gl_backend = backend
                log.info(
                    "camera renderer running (MUJOCO_GL=%s, pid %d): %s at %dx%d, %.1f fps, ports %d..%d",
                    backend, self._proc.pid, ",".join(self.config.names), self.config.width,
                    self.config.height, self.config.fps, self.config.port(0),
                    self.config.port(len(self.config.names) - 1),
                )
                return
            log.warning("camera renderer could not start: %s", detail)
            if kind != "gl-error":  # not a GL problem: another backend would fail the same way
                raise FrankaTeachError(f"camera renderer could not start: {detail}")
            reasons.append(detail)
        raise HardwareUnavailableError(
            "offscreen rendering is unavailable, cameras disabled; tried " + "; ".join(reasons)
            + " (install EGL (libegl1) or OSMesa (libosmesa6), or run with --no-cameras)"
        )

    def _try_start(self, backend: str, timeout_s: float) -> tuple[str, str]:
        """Spawns the renderer with `backend`; returns (kind, detail), kind "ok" on success."""
        status = self._ctx.Queue()
        self._stop.clear()
        saved = {k: os.environ.get(k) for k in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
        os.environ["MUJOCO_GL"] = backend
        if backend in GL_BACKENDS:
            os.environ["PYOPENGL_PLATFORM"] = backend
        try:
            # PR_SET_PDEATHSIG fires when the *thread* that started the child exits: only ask
            # for it from the main thread (elsewhere the renderer's parent-pid watch suffices).
            death_signal = int(signal.SIGKILL) if threading.current_thread() is threading.main_thread() else 0
            proc = self._ctx.Process(
                target=render_main,
                args=(self.config, self._shared, self._stats, self._stop, status, os.getpid(),
                      death_signal),
                name="sim-cameras",
                daemon=True,
            )
            proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        kind, detail = "gl-error", f"MUJOCO_GL={backend}: no answer within {timeout_s:.0f} s"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                kind, detail = status.get(timeout=0.2)
                break
            except queue.Empty:
                if not proc.is_alive():  # died before reporting (e.g. crashed importing OpenGL)
                    kind = "gl-error"
                    detail = (f"MUJOCO_GL={backend}: render process exited with code {proc.exitcode} "
                              "while starting (its traceback went to stderr)")
                    break
        if kind == "ok":
            self._proc = proc
            return kind, detail
        self._stop.set()
        proc.join(timeout=5.0)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=2.0)
        return kind, detail

    @property
    def pid(self) -> int | None:
        """The render process's pid (None when not running)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def push(self, wall_time: float, qpos: np.ndarray) -> None:
        """Publishes the newest qpos snapshot to the renderer (cheap; latest wins).

        The lock is shared with the render process: if that process died holding it (killed
        mid-copy), waiting for it would hang the physics thread forever, so the snapshot is
        skipped instead (the next one follows within a physics batch).
        """
        lock = self._shared.get_lock()
        if not lock.acquire(timeout=0.01):
            self.skipped_pushes += 1
            return
        try:
            self._view[0] += 1.0
            self._view[1] = wall_time
            self._view[2:] = qpos
        finally:
            lock.release()

    def fps(self) -> dict[str, float]:
        """Achieved frames per second per camera (over the last ~2 s)."""
        return {name: float(self._stats[i]) for i, name in enumerate(self.config.names)}

    def render_ms(self) -> dict[str, float]:
        """Mean render + JPEG time per frame per camera, ms."""
        n = len(self.config.names)
        return {name: float(self._stats[n + i]) for i, name in enumerate(self.config.names)}

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stops the render process (idempotent)."""
        self._stop.set()
        if self._proc is not None:
            self._proc.join(timeout=timeout_s)
            if self._proc.is_alive():
                log.warning("camera renderer did not stop in %.0f s; terminating it", timeout_s)
                self._proc.terminate()
                self._proc.join(timeout=2.0)
            self._proc = None
