"""The real-arm robot server: a Franka Panda driven through deoxys, served like the simulator.

`DeoxysBackend` turns each `FrankaAction` (an absolute Cartesian target for the hand) into
deoxys' delta OSC_POSE actions: the pose error from the measured hand pose to the target,
divided by the controller's action scale and clipped to [-1, 1], sent in
`DEOXYS_STEPS_PER_COMMAND` consecutive ``control()`` calls. deoxys paces ``control()`` at
`DEOXYS_CONTROL_FREQ` (20 Hz), so a command takes about 150 ms, the round trip a client sees.
A ``reset`` action drives the joints to `HOME_JOINTS` with deoxys' JOINT_POSITION controller.

deoxys is imported lazily (when the backend is built), so this module imports without it.
Frames and units: positions in metres and xyzw quaternions of the hand in the robot base frame;
rotation deltas are base-frame axis-angle vectors in radians.

Console script: ``frankateach-real --config charmander.yml --host 0.0.0.0``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq
from scipy.spatial.transform import Rotation

from frankateach.constants import (
    COMMANDED_STATE_PORT,
    CONTROL_PORT,
    DEOXYS_CONTROL_FREQ,
    DEOXYS_DEFAULT_CONFIG,
    DEOXYS_RESET_TIMEOUT_S,
    DEOXYS_RESET_TOLERANCE_RAD,
    DEOXYS_STATE_TIMEOUT_S,
    DEOXYS_STEPS_PER_COMMAND,
    FRANKA_GRIPPER_MAX_WIDTH_M,
    GRIPPER_OPEN,
    HOME_JOINTS,
    HOST,
    STATE_PORT,
)
from frankateach.errors import FrankaTeachError, HardwareUnavailableError
from frankateach.messages import CODECS, FrankaAction, FrankaState, make_codec
from frankateach.server_base import RobotBackend, RobotServer
from frankateach.signals import SignalFlag

log = logging.getLogger(__name__)

DEOXYS_INSTALL_HINT = (
    "deoxys is not installed (it is not on PyPI). On the robot's control PC: "
    "`git clone https://github.com/UT-Austin-RPL/deoxys_control`, build it as its README "
    "describes (franka-interface on the NUC, the Python protobuf pieces on the PC), then run "
    "`pip install -e deoxys` from the clone's root, in this same Python environment."
)


@dataclass(frozen=True)
class DeoxysApi:
    """The three pieces of deoxys this server uses.

    Attributes:
        franka_interface: the `deoxys.franka_interface.FrankaInterface` class.
        get_default_controller_config: `deoxys.utils.config_utils.get_default_controller_config`.
        config_root: deoxys' own config folder, or None if the package does not say.
    """

    franka_interface: Callable[..., Any]
    get_default_controller_config: Callable[[str], Any]
    config_root: str | None


def load_deoxys() -> DeoxysApi:
    """Imports deoxys.

    Raises:
        HardwareUnavailableError: deoxys (or one of its own dependencies) cannot be imported;
            the message says how to install it.
    """
    try:
        deoxys = importlib.import_module("deoxys")
        franka_interface = importlib.import_module("deoxys.franka_interface")
        config_utils = importlib.import_module("deoxys.utils.config_utils")
    except ImportError as exc:
        raise HardwareUnavailableError(f"{DEOXYS_INSTALL_HINT} (import failed: {exc})") from exc
    root = getattr(deoxys, "config_root", None)
    return DeoxysApi(
        franka_interface=franka_interface.FrankaInterface,
        get_default_controller_config=config_utils.get_default_controller_config,
        config_root=os.path.normpath(root) if isinstance(root, str) else None,
    )


def resolve_config(path: str, config_root: str | None) -> str:
    """Finds the deoxys interface yaml: `path` as given, else inside deoxys' config folder.

    Raises:
        HardwareUnavailableError: neither exists.
    """
    candidates = [path]
    if config_root is not None and not os.path.isabs(path):
        candidates.append(os.path.join(config_root, path))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise HardwareUnavailableError(
        f"deoxys interface config {path!r} not found (looked at: {', '.join(candidates)}); "
        "pass --config with the yaml that names your NUC's IP and ports"
    )


def _scale(cfg: Any, key: str, default: float) -> float:
    """Reads ``cfg["action_scale"][key]`` from a deoxys controller config (EasyDict or dict)."""
    try:
        value = float(cfg["action_scale"][key])
    except (KeyError, TypeError, ValueError):
        return default
    return value if value > 0 and math.isfinite(value) else default


def osc_delta_action(
    current_pos: np.ndarray,
    current_quat: np.ndarray,
    target_pos: np.ndarray,
    target_quat: np.ndarray,
    gripper: float,
    translation_scale: float,
    rotation_scale: float,
) -> np.ndarray:
    """Builds one deoxys OSC_POSE delta action from the measured pose to the target.

    Args:
        current_pos, target_pos: (3,) hand positions, m, base frame.
        current_quat, target_quat: (4,) hand orientations, xyzw.
        gripper: -1 open … +1 closed (deoxys: < 0 opens to 0.08·|g| m, ≥ 0 grasps).
        translation_scale: metres deoxys applies per unit action (controller action_scale).
        rotation_scale: radians deoxys applies per unit action.

    Returns:
        (7,) [dx, dy, dz, drx, dry, drz, gripper], the first six in [-1, 1]: the position error
        and the base-frame axis-angle of ``R_target · R_currentᵀ``, each divided by its scale.
    """
    dpos = (np.asarray(target_pos, float) - np.asarray(current_pos, float)) / translation_scale
    rot_err = Rotation.from_quat(target_quat) * Rotation.from_quat(current_quat).inv()
    drot = rot_err.as_rotvec() / rotation_scale
    return np.concatenate([np.clip(dpos, -1.0, 1.0), np.clip(drot, -1.0, 1.0), [float(gripper)]])


def width_to_gripper(width_m: float) -> float:
    """Maps a measured finger opening (m) onto the protocol's -1 (open) … +1 (closed)."""
    opening = min(max(float(width_m) / FRANKA_GRIPPER_MAX_WIDTH_M, 0.0), 1.0)
    return 1.0 - 2.0 * opening


class DeoxysBackend(RobotBackend):
    """Drives a real Franka through deoxys' `FrankaInterface`.

    Args:
        config_path: deoxys interface yaml (path, or a name inside deoxys' config folder).
        steps_per_command: ``control()`` calls per action (each paced by deoxys at `control_hz`).
        control_hz: deoxys' control rate, Hz.
        state_timeout_s: how long to wait for the first robot state, seconds.
        reset_timeout_s: a joint reset gives up after this long, seconds.
        api: deoxys' entry points; loaded with `load_deoxys()` when None.

    Raises:
        HardwareUnavailableError: deoxys missing, config missing, or no robot state in time.
    """

    name = "franka"

    def __init__(
        self,
        config_path: str = DEOXYS_DEFAULT_CONFIG,
        steps_per_command: int = DEOXYS_STEPS_PER_COMMAND,
        control_hz: float = DEOXYS_CONTROL_FREQ,
        state_timeout_s: float = DEOXYS_STATE_TIMEOUT_S,
        reset_timeout_s: float = DEOXYS_RESET_TIMEOUT_S,
        api: DeoxysApi | None = None,
    ) -> None:
        if steps_per_command < 1:
            raise ValueError(f"steps_per_command must be >= 1, got {steps_per_command}")
        api = api or load_deoxys()
        self.config_path = resolve_config(config_path, api.config_root)
        self.steps_per_command = int(steps_per_command)
        self.control_hz = float(control_hz)
        self.reset_timeout_s = float(reset_timeout_s)
        self._osc_cfg = api.get_default_controller_config("OSC_POSE")
        self._joint_cfg = api.get_default_controller_config("JOINT_POSITION")
        self._translation_scale = _scale(self._osc_cfg, "translation", 0.05)
        self._rotation_scale = _scale(self._osc_cfg, "rotation", 1.0)
        self._lock = threading.Lock()  # one control sequence at a time
        self._commanded: FrankaState | None = None
        self._gripper_cmd = GRIPPER_OPEN
        log.info("connecting to the arm through deoxys (%s)", self.config_path)
        self._robot = api.franka_interface(
            self.config_path, use_visualizer=False, control_freq=self.control_hz
        )
        try:
            self._wait_for_state(state_timeout_s)
        except BaseException:
            self._robot.close()
            raise

    # -- state ----------------------------------------------------------------------------------
    def _measured_pose(self) -> tuple[np.ndarray, np.ndarray] | None:
        quat, pos = self._robot.last_eef_quat_and_pos
        if quat is None or pos is None:
            return None
        quat = np.asarray(quat, dtype=float).reshape(4)
        norm = float(np.linalg.norm(quat))
        if not norm > 0 or not np.all(np.isfinite(quat)):
            return None
        return np.asarray(pos, dtype=float).reshape(3), quat / norm

    def _wait_for_state(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._measured_pose() is None or self._robot.last_q is None:
            if time.monotonic() > deadline:
                raise HardwareUnavailableError(
                    f"no robot state from deoxys within {timeout_s:.1f} s: is franka-interface "
                    f"running on the NUC, and does {self.config_path} name its IP and ports?"
                )
            time.sleep(0.01)

    def read_state(self) -> FrankaState:
        pose = self._measured_pose()
        q = self._robot.last_q
        if pose is None or q is None:
            raise HardwareUnavailableError("deoxys has no robot state (arm disconnected?)")
        width = self._robot.last_gripper_q
        gripper = self._gripper_cmd if width is None else width_to_gripper(np.asarray(width).item())
        return FrankaState(
            pos=pose[0],
            quat=pose[1],
            gripper=gripper,
            timestamp=time.time(),
            start_teleop=True,
            joint_positions=np.asarray(q, dtype=float).reshape(7),
        )

    def commanded_state(self) -> FrankaState | None:
        return self._commanded

    # -- commands -------------------------------------------------------------------------------
    def apply_action(self, action: FrankaAction) -> None:
        with self._lock:
            if action.reset:
                self._reset_joints()
                state = self.read_state()
                self._commanded = FrankaState(
                    pos=state.pos,
                    quat=state.quat,
                    gripper=GRIPPER_OPEN,
                    timestamp=action.timestamp,
                    start_teleop=True,
                    joint_positions=HOME_JOINTS.copy(),
                )
                return
            self._gripper_cmd = float(action.gripper)
            for _ in range(self.steps_per_command):
                pose = self._measured_pose()
                if pose is None:
                    raise HardwareUnavailableError("deoxys lost the robot state mid-command")
                command = osc_delta_action(
                    pose[0],
                    pose[1],
                    action.pos,
                    action.quat,
                    action.gripper,
                    self._translation_scale,
                    self._rotation_scale,
                )
                self._robot.control(
                    controller_type="OSC_POSE", action=command, controller_cfg=self._osc_cfg
                )
            self._commanded = FrankaState(
                pos=np.array(action.pos, dtype=float),
                quat=np.array(action.quat, dtype=float),
                gripper=float(action.gripper),
                timestamp=action.timestamp,
                start_teleop=True,
                joint_positions=np.asarray(self._robot.last_q, dtype=float).reshape(7),
            )

    def _reset_joints(self) -> None:
        """Drives the joints to HOME_JOINTS (gripper open) with JOINT_POSITION control.

        Raises:
            FrankaTeachError: the joints did not reach home within `reset_timeout_s`.
        """
        command = np.concatenate([HOME_JOINTS, [GRIPPER_OPEN]])
        self._gripper_cmd = GRIPPER_OPEN
        # deoxys paces control() itself; the step cap also bounds the loop if it does not.
        max_steps = int(math.ceil(self.reset_timeout_s * self.control_hz)) + 1
        start = time.monotonic()
        error = float("inf")
        for _ in range(max_steps):
            q = self._robot.last_q
            if q is not None:
                error = float(np.max(np.abs(np.asarray(q, dtype=float) - HOME_JOINTS)))
                if error < DEOXYS_RESET_TOLERANCE_RAD:
                    log.info("joint reset done")
                    return
            if time.monotonic() - start > self.reset_timeout_s:
                break
            self._robot.control(
                controller_type="JOINT_POSITION", action=command, controller_cfg=self._joint_cfg
            )
        raise FrankaTeachError(
            f"joint reset did not reach HOME_JOINTS within {self.reset_timeout_s:.1f} s "
            f"(largest joint error {error:.4f} rad, tolerance {DEOXYS_RESET_TOLERANCE_RAD} rad)"
        )

    def close(self) -> None:
        self._robot.close()


# ---------------------------------------------------------------------------------------------
# Console script
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Returns the `frankateach-real` argument parser."""
    p = argparse.ArgumentParser(
        prog="frankateach-real",
        description="Serve a real Franka arm (through deoxys) on the Franka-Teach robot ports.",
    )
    p.add_argument("--host", default=HOST, help="interface to bind; 0.0.0.0 serves the network")
    p.add_argument("--codec", choices=sorted(CODECS), default="msgpack", help="wire codec")
    p.add_argument(
        "--config",
        default=DEOXYS_DEFAULT_CONFIG,
        help="deoxys interface yaml: a path, or a file name inside deoxys' config folder",
    )
    p.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)"
    )
    p.add_argument("--control-port", type=int, default=CONTROL_PORT)
    p.add_argument("--state-port", type=int, default=STATE_PORT)
    p.add_argument("--commanded-port", type=int, default=COMMANDED_STATE_PORT)
    p.add_argument(
        "--steps-per-command",
        type=int,
        default=DEOXYS_STEPS_PER_COMMAND,
        help="deoxys control() calls per received action",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs the real-robot server until Ctrl-C / SIGTERM or `--duration`; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    try:
        backend = DeoxysBackend(args.config, steps_per_command=args.steps_per_command)
    except (HardwareUnavailableError, ValueError) as exc:
        print(f"frankateach-real: {exc}", file=sys.stderr)
        return 2
    server = RobotServer(
        backend,
        host=args.host,
        codec=make_codec(args.codec),
        ports=(args.control_port, args.state_port, args.commanded_port),
    )
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = None
    signals = SignalFlag()  # the handler only records the signal (see frankateach.signals)
    if in_main_thread:  # SIGTERM (systemd, docker stop) stops cleanly like Ctrl-C
        previous_sigterm = signal.getsignal(signal.SIGTERM)
        signals.install((signal.SIGTERM,))
    try:
        server.start()
        print(
            f"frankateach-real: serving {args.config} on {args.host} "
            f"(control {args.control_port}, state {args.state_port}, "
            f"commanded {args.commanded_port}, codec {args.codec})",
            flush=True,
        )
        signals.wait(stop, args.duration if args.duration > 0 else None)
    except KeyboardInterrupt:
        pass
    except (FrankaTeachError, zmq.ZMQError) as exc:  # e.g. a port already in use
        print(f"frankateach-real: {exc}", file=sys.stderr)
        return 2
    finally:
        server.stop()
        backend.close()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    print(f"frankateach-real: stopped ({server.requests} requests, {server.errors} rejected)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
