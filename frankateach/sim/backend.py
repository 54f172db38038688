"""`SimBackend`: the MuJoCo Panda as a `RobotBackend`, stepped in real time or on demand.

Real time: a thread wakes at `batch_hz` on absolute deadlines (`frankateach.timing.Ticker`) and
runs as many 2 ms physics steps as the monotonic clock says are due (at most `max_batch_steps`
per wake-up; time beyond that is dropped and shows up as a real-time factor below 1). After each
batch it caches a `FrankaState`, so `read_state` costs nothing, and hands a qpos snapshot to the
registered listeners (the camera renderer).

Headless: without the thread, `step(n)` / `run_for(seconds)` advance sim time as fast as the CPU
allows (tests use this).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import mujoco
import numpy as np

from frankateach.constants import ROBOT_WORKSPACE_MAX, ROBOT_WORKSPACE_MIN
from frankateach.errors import FrankaTeachError
from frankateach.messages import FrankaAction, FrankaState
from frankateach.server_base import RobotBackend
from frankateach.sim.controller import (
    CartesianController,
    ControllerGains,
    finger_to_gripper,
    mat_to_quat_wxyz,
    quat_wxyz_to_xyzw,
)
from frankateach.sim.model import SimIndex, build_model, reset_to_home
from frankateach.thread_name import set_os_thread_name
from frankateach.timing import RateStats, Ticker

log = logging.getLogger(__name__)

QposListener = Callable[[float, np.ndarray], None]  # (wall time s, (nq,) qpos copy)


class SimBackendError(FrankaTeachError):
    """The simulator was used in a way its current mode does not allow."""


class SimBackend(RobotBackend):
    """A simulated Franka Panda served exactly like the real one.

    Args:
        model: a model from `build_model` (built here, without cameras, if None).
        gains: controller tuning.
        batch_hz: real-time loop wake-up rate, Hz (each wake-up runs the steps that are due).
        max_batch_steps: most physics steps one wake-up may run (bounds the catch-up burst).
        control_every: run the controller every this many physics steps (2 → 250 Hz IK); the
            servo targets are held in between.
    """

    name = "mujoco-sim"

    def __init__(
        self,
        model: mujoco.MjModel | None = None,
        gains: ControllerGains | None = None,
        batch_hz: float = 250.0,
        max_batch_steps: int = 25,
        control_every: int = 2,
    ) -> None:
        self.model = model if model is not None else build_model(cameras=False)
        self.index = SimIndex.from_model(self.model)
        self.data = mujoco.MjData(self.model)
        self.dt = float(self.model.opt.timestep)
        if control_every < 1:
            raise SimBackendError(f"control_every must be >= 1, got {control_every}")
        self.control_every = int(control_every)
        self.control_dt = self.dt * self.control_every  # controller period, s
        self.controller = CartesianController(self.model, self.index, gains)
        self.batch_hz = float(batch_hz)
        self.max_batch_steps = int(max_batch_steps)
        self._lock = threading.Lock()  # guards data + controller
        self._listeners: list[QposListener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rtf_window: deque[tuple[float, float]] = deque(maxlen=2 * int(batch_hz))
        self.loop_stats = RateStats("sim-physics", batch_hz)
        self.steps = 0
        self.dropped_steps = 0
        self.step_time_s = 0.0  # wall time spent inside physics+control, total
        self._quat_prev = np.array([0.0, 0.0, 0.0, 1.0])
        self._commanded: FrankaState | None = None
        with self._lock:
            reset_to_home(self.model, self.data)
            self.controller.sync(self.data.qpos[self.index.arm_qpos])
            self._apply_ctrl(*self.controller.step(self.data.qpos[self.index.arm_qpos], 0.0))
            self._state = self._make_state()

    # -- physics --------------------------------------------------------------------------------
    def _apply_ctrl(self, q_cmd: np.ndarray, finger: float) -> None:
        self.data.ctrl[self.index.arm_act] = q_cmd
        self.data.ctrl[self.index.finger_act] = finger

    def _step_locked(self, n: int) -> None:
        """Runs `n` control+physics steps; the caller holds the lock."""
        t0 = time.perf_counter()
        q_adr = self.index.arm_qpos
        for _ in range(n):
            if self.steps % self.control_every == 0:
                self._apply_ctrl(*self.controller.step(self.data.qpos[q_adr], self.control_dt))
            mujoco.mj_step(self.model, self.data)
            self.steps += 1
        self.step_time_s += time.perf_counter() - t0

    def _make_state(self) -> FrankaState:
        """Measured state from `data` (caller holds the lock)."""
        d, idx = self.data, self.index
        quat = quat_wxyz_to_xyzw(mat_to_quat_wxyz(d.site_xmat[idx.tcp_site]))
        if np.dot(quat, self._quat_prev) < 0:  # keep the sign continuous for consumers
            quat = -quat
        self._quat_prev = quat
        opening = float(np.mean(d.qpos[idx.finger_qpos]))
        return FrankaState(
            pos=d.site_xpos[idx.tcp_site].copy(),
            quat=quat,
            gripper=finger_to_gripper(opening),
            timestamp=time.time(),
            start_teleop=True,
            joint_positions=d.qpos[idx.arm_qpos].copy(),
        )

    def _publish(self, wall: float) -> None:
        """Refreshes the cached state and feeds listeners (caller holds the lock)."""
        self._state = self._make_state()
        if self._listeners:
            qpos = self.data.qpos.copy()
            for listener in self._listeners:
                try:
                    listener(wall, qpos)
                except Exception:  # a broken listener must not stop the physics
                    log.exception("qpos listener failed")

    def step(self, n: int = 1) -> None:
        """Headless: advances the simulation by `n` physics steps (2 ms each) as fast as possible.

        Raises:
            SimBackendError: the real-time thread is running.
        """
        if self.running:
            raise SimBackendError("step() is for headless use; the real-time thread is running")
        with self._lock:
            self._step_locked(int(n))
            self._publish(time.time())

    def run_for(self, seconds: float) -> None:
        """Headless: advances the simulation by `seconds` of sim time."""
        self.step(max(1, int(round(seconds / self.dt))))

    # -- real time ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Starts stepping in real time in a background thread (idempotent)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_realtime, name="sim-physics", daemon=True)
        self._thread.start()

    def _run_realtime(self) -> None:
        set_os_thread_name("sim-physics")
        try:
            self._realtime_loop()
        except Exception:  # keep the reason; read_state then goes stale (old timestamps)
            log.exception("sim physics thread failed; the simulated arm is frozen")
            raise

    def _realtime_loop(self) -> None:
        ticker = Ticker(self.batch_hz, name="sim-physics", stats=self.loop_stats)
        anchor = time.monotonic()
        done = 0  # steps accounted for since `anchor` (run or dropped)
        while ticker.wait(self._stop):
            now = time.monotonic()
            due = int((now - anchor) / self.dt) - done
            if due > self.max_batch_steps:
                self.dropped_steps += due - self.max_batch_steps
                done += due - self.max_batch_steps
                due = self.max_batch_steps
            if due <= 0:
                continue
            with self._lock:
                self._step_locked(due)
                self._publish(time.time())
                sim_t = float(self.data.time)
            done += due
            self._rtf_window.append((time.monotonic(), sim_t))

    def stop(self) -> None:
        """Stops the real-time thread (the state stays readable; `step` works again)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def realtime_factor(self) -> float:
        """Sim seconds per wall second over the last ~2 s of real-time stepping (NaN if idle)."""
        window = list(self._rtf_window)
        if len(window) < 2 or window[-1][0] - window[0][0] <= 0:
            return float("nan")
        return (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])

    def add_qpos_listener(self, listener: QposListener) -> None:
        """Calls `listener(wall_time_s, qpos)` after every step batch (from the physics thread)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_qpos_listener(self, listener: QposListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- RobotBackend ---------------------------------------------------------------------------
    def read_state(self) -> FrankaState:
        """The state cached after the last step batch (cheap; timestamp = time of that batch)."""
        return self._state

    def apply_action(self, action: FrankaAction) -> None:
        """Makes `action` the controller's target (returns at once; a reset moves home smoothly)."""
        pos = np.clip(np.asarray(action.pos, float), ROBOT_WORKSPACE_MIN, ROBOT_WORKSPACE_MAX)
        with self._lock:
            if action.reset:
                self.controller.reset()
                self.controller.set_gripper(action.gripper)
            else:
                self.controller.set_target(pos, action.quat, action.gripper)
            c = self.controller
            self._commanded = FrankaState(
                pos=c.target_pos.copy(),
                quat=c.target_quat_xyzw,
                gripper=c.gripper,
                timestamp=time.time(),
                start_teleop=True,
                joint_positions=c.q_cmd.copy(),
            )

    def commanded_state(self) -> FrankaState | None:
        """The target being followed (joint_positions = the commanded joints), or None."""
        return self._commanded

    def close(self) -> None:
        self.stop()

    # -- introspection (tests, benchmarks, status lines) ----------------------------------------
    @property
    def sim_time(self) -> float:
        return float(self.data.time)

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured TCP (pos (3,) m, quat (4,) xyzw), base frame."""
        with self._lock:
            return (
                self.data.site_xpos[self.index.tcp_site].copy(),
                quat_wxyz_to_xyzw(mat_to_quat_wxyz(self.data.site_xmat[self.index.tcp_site])),
            )

    def body_position(self, name: str) -> np.ndarray:
        """World position (3,) m of body `name` (e.g. "red_cube")."""
        bid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if bid < 0:
            raise SimBackendError(f"no body named {name!r} in the sim model")
        with self._lock:
            return self.data.xpos[bid].copy()

    def joint_positions(self) -> np.ndarray:
        """Measured arm joints (7,), rad, real convention."""
        with self._lock:
            return self.data.qpos[self.index.arm_qpos].copy()

    def mean_step_us(self) -> float:
        """Mean wall time of one physics step (with its share of control) so far, µs."""
        return self.step_time_s / self.steps * 1e6 if self.steps else float("nan")
