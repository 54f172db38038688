"""A stand-in for the parts of deoxys that `frankateach.franka_server` uses.

It mirrors deoxys' public surface (`deoxys.FrankaInterface` attributes and `control()` signature,
`deoxys.utils.config_utils.get_default_controller_config`, `deoxys.config_root`) over a tiny
kinematic arm: an OSC_POSE delta action, scaled by the controller's ``action_scale`` exactly as
deoxys does, moves the hand a fixed fraction of the way; JOINT_POSITION moves the joints a
fraction of the way to the goal and the hand toward the pose this fake assigns to the goal.

Install it for one test with `install(monkeypatch, config_root)`, or on disk for a subprocess
with `write_package(folder)` (then put `folder` first on PYTHONPATH).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.spatial.transform import Rotation

from frankateach.constants import HOME_JOINTS

# The hand pose this fake associates with HOME_JOINTS (m, xyzw: pointing down).
HOME_POS = np.array([0.45, 0.0, 0.35])
HOME_QUAT = np.array([1.0, 0.0, 0.0, 0.0])
START_POS = np.array([0.5, 0.1, 0.3])
START_QUAT = Rotation.from_euler("xyz", [np.pi, 0.2, 0.1]).as_quat()
START_JOINTS = HOME_JOINTS + np.array([0.2, -0.1, 0.1, 0.2, 0.0, -0.1, 0.3])
MAX_WIDTH = 0.08


class AttrDict(dict):
    """A dict readable by attribute, like the EasyDict deoxys returns for configs."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def get_default_controller_config(controller_type: str) -> AttrDict:
    """Returns a controller config shaped like deoxys' defaults for the two controllers used."""
    if controller_type == "OSC_POSE":
        return AttrDict(
            controller_type="OSC_POSE",
            is_delta=True,
            Kp=AttrDict(translation=[150.0] * 3, rotation=[250.0] * 3),
            action_scale=AttrDict(translation=0.05, rotation=1.0),
            residual_mass_vec=[0.0, 0.0, 0.0, 0.0, 0.1, 0.5, 0.5],
            traj_interpolator_cfg=AttrDict(traj_interpolator_type="LINEAR_POSE", time_fraction=0.3),
        )
    if controller_type == "JOINT_POSITION":
        return AttrDict(
            controller_type="JOINT_POSITION",
            is_delta=False,
            traj_interpolator_cfg=AttrDict(
                traj_interpolator_type="LINEAR_JOINT_POSITION", time_fraction=0.3
            ),
        )
    raise ValueError(f"fake deoxys: no default config for {controller_type!r}")


class FakeFrankaInterface:
    """The `deoxys.franka_interface.FrankaInterface` surface over a kinematic arm.

    Class attributes let a test shape the next instance before the server builds it.

    Attributes:
        instances: every interface built (newest last).
        has_state: False models an arm that never sends state (start-up must time out).
        tracking_gain: fraction of a commanded delta the arm covers per control() call.
        calls: (controller_type, action copy, controller_cfg) for each control() call.
    """

    instances: ClassVar[list[FakeFrankaInterface]] = []
    has_state: ClassVar[bool] = True
    tracking_gain: ClassVar[float] = 0.5
    paced: ClassVar[bool] = False  # True: control() keeps 1/control_freq between calls, as deoxys

    def __init__(
        self,
        general_cfg_file: str = "config/local-host.yml",
        control_freq: float = 20.0,
        state_freq: float = 100.0,
        control_timeout: float = 1.0,
        has_gripper: bool = True,
        use_visualizer: bool = False,
    ) -> None:
        if not os.path.isfile(general_cfg_file):  # deoxys' YamlConfig fails the same way
            raise FileNotFoundError(general_cfg_file)
        self.general_cfg_file = general_cfg_file
        self.control_freq = control_freq
        self.use_visualizer = use_visualizer
        self._lock = threading.Lock()
        self._pos = START_POS.copy()
        self._rot = Rotation.from_quat(START_QUAT)
        self._q = START_JOINTS.copy()
        self._width = MAX_WIDTH
        self.calls: list[tuple[str, np.ndarray, Any]] = []
        self.closed = False
        self._last_call: float | None = None
        type(self).instances.append(self)

    # -- deoxys' read-only properties ------------------------------------------------------------
    @property
    def state_buffer_size(self) -> int:
        return 1 if self.has_state else 0

    @property
    def last_eef_quat_and_pos(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if not self.has_state:
            return None, None
        with self._lock:
            return self._rot.as_quat(), self._pos.reshape(3, 1).copy()  # deoxys: (3, 1)

    @property
    def last_q(self) -> np.ndarray | None:
        if not self.has_state:
            return None
        with self._lock:
            return self._q.copy()

    @property
    def last_gripper_q(self) -> np.ndarray | None:
        if not self.has_state:
            return None
        with self._lock:
            return np.array(self._width)  # deoxys returns a 0-d array of the width, m

    # -- commands ------------------------------------------------------------------------------
    def control(
        self,
        controller_type: str,
        action: Any,
        controller_cfg: Any = None,
        termination: bool = False,
    ) -> None:
        action = np.array(action, dtype=float)
        if self.paced:  # deoxys sleeps out the rest of the control interval since the last call
            if self._last_call is not None:
                remaining = 1.0 / self.control_freq - (time.monotonic() - self._last_call)
                if remaining > 0:
                    time.sleep(remaining)
            self._last_call = time.monotonic()
        self.calls.append((controller_type, action.copy(), controller_cfg))
        gain = self.tracking_gain
        with self._lock:
            if controller_type == "OSC_POSE":
                if action.shape != (7,):
                    raise ValueError(f"OSC_POSE action must have 7 entries, got {action.shape}")
                scale = controller_cfg["action_scale"]
                self._pos = self._pos + gain * action[:3] * scale["translation"]
                delta = Rotation.from_rotvec(gain * action[3:6] * scale["rotation"])
                self._rot = delta * self._rot
            elif controller_type == "JOINT_POSITION":
                if action.shape != (8,):  # deoxys asserts 7 joints + gripper
                    raise ValueError(
                        f"JOINT_POSITION action must have 8 entries, got {action.shape}"
                    )
                self._q = self._q + gain * (action[:7] - self._q)
                if np.max(np.abs(self._q - action[:7])) < 1e-4:
                    self._q = action[:7].copy()
                if np.allclose(action[:7], HOME_JOINTS):
                    self._pos = self._pos + gain * (HOME_POS - self._pos)
                    rots = Rotation.concatenate([self._rot, Rotation.from_quat(HOME_QUAT)])
                    self._rot = rots.mean(weights=[1.0 - gain, gain])
            else:
                raise ValueError(f"fake deoxys: unsupported controller {controller_type!r}")
            g = action[-1]
            self._width = MAX_WIDTH * abs(g) if g < 0 else 0.0  # deoxys: < 0 opens, >= 0 grasps

    def close(self) -> None:
        self.closed = True


def reset_fake() -> None:
    """Restores the class-level knobs and forgets earlier instances."""
    FakeFrankaInterface.instances = []
    FakeFrankaInterface.has_state = True
    FakeFrankaInterface.tracking_gain = 0.5
    FakeFrankaInterface.paced = False


def _modules(config_root: str) -> dict[str, types.ModuleType]:
    root = types.ModuleType("deoxys")
    root.config_root = config_root
    root.__path__ = []  # a package, so submodule imports resolve through sys.modules
    fi = types.ModuleType("deoxys.franka_interface")
    fi.FrankaInterface = FakeFrankaInterface
    fi.__path__ = []
    utils = types.ModuleType("deoxys.utils")
    utils.__path__ = []
    cu = types.ModuleType("deoxys.utils.config_utils")
    cu.get_default_controller_config = get_default_controller_config
    root.franka_interface, root.utils, utils.config_utils = fi, utils, cu
    return {
        "deoxys": root,
        "deoxys.franka_interface": fi,
        "deoxys.utils": utils,
        "deoxys.utils.config_utils": cu,
    }


def install(monkeypatch: Any, config_root: str | os.PathLike) -> None:
    """Makes ``import deoxys…`` return this fake for the rest of one test."""
    reset_fake()
    for name, module in _modules(os.fspath(config_root)).items():
        monkeypatch.setitem(sys.modules, name, module)


def write_package(folder: Path, config_root: str | os.PathLike) -> Path:
    """Writes an importable ``deoxys`` package under `folder` that re-exports this fake."""
    pkg = folder / "deoxys"
    (pkg / "franka_interface").mkdir(parents=True, exist_ok=True)
    (pkg / "utils").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(f"config_root = {os.fspath(config_root)!r}\n")
    (pkg / "franka_interface" / "__init__.py").write_text(
        "from tests.fakes.fake_deoxys import FakeFrankaInterface as FrankaInterface\n"
    )
    (pkg / "utils" / "__init__.py").write_text("")
    (pkg / "utils" / "config_utils.py").write_text(
        "from tests.fakes.fake_deoxys import get_default_controller_config\n"
    )
    return folder
