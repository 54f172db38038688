"""Where each camera sits: its frame in `/tf` (Foxglove's 3D panel) and its extrinsics in exports.

A camera's frame ``camera_<name>`` is the optical frame of its images (x right, y down, z along
the view, OpenCV's and Foxglove's convention). It hangs either off the robot base (a fixed
camera) or off the measured end-effector frame ``ee`` (a wrist camera).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

PARENT_FRAMES = ("robot_base", "ee")


@dataclass(frozen=True)
class CameraMount:
    """One camera's pose and lens.

    Attributes:
        parent: "robot_base" (fixed camera) or "ee" (moves with the hand TCP).
        position: (3,) parent_T_camera translation, metres.
        orientation: (4,) parent_T_camera rotation, quaternion xyzw (optical frame).
        fovy_deg: vertical field of view, degrees (None: unknown).
    """

    parent: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]
    fovy_deg: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the inverse of `camera_mount_from_dict`)."""
        out: dict[str, Any] = {
            "parent": self.parent, "position": list(self.position), "orientation": list(self.orientation),
        }
        if self.fovy_deg is not None:
            out["fovy_deg"] = self.fovy_deg
        return out


def _numbers(value: Any, n: int, what: str) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) != n:
        raise ValueError(f"{what}: expected a list of {n} numbers, got {value!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in value):
        raise ValueError(f"{what}: expected {n} finite numbers, got {value!r}")
    return tuple(float(v) for v in value)


def camera_mount_from_dict(name: str, d: Any) -> CameraMount:
    """Builds a mount from ``{parent, position: [x, y, z], orientation: [x, y, z, w], fovy_deg}``.

    Raises:
        ValueError: a missing or unknown key, a wrong type, a zero quaternion, a bad field of view
            (the message names the camera and the key).
    """
    where = f"camera {name!r}"
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: expected a mapping with parent, position, orientation, got {d!r}")  # noqa: TRY004 - callers report every bad value alike
    unknown = sorted(set(d) - {"parent", "position", "orientation", "fovy_deg"})
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; allowed: parent, position, orientation, fovy_deg")
    parent = d.get("parent", "robot_base")
    if parent not in PARENT_FRAMES:
        raise ValueError(f"{where} parent: expected one of {PARENT_FRAMES}, got {parent!r}")
    if "position" not in d or "orientation" not in d:
        raise ValueError(f"{where}: 'position' [x, y, z] (m) and 'orientation' [x, y, z, w] are required")
    pos = _numbers(d["position"], 3, f"{where} position")
    quat = np.array(_numbers(d["orientation"], 4, f"{where} orientation"))
    norm = float(np.linalg.norm(quat))
    if norm < 1e-6:
        raise ValueError(f"{where} orientation: a zero quaternion is not a rotation")
    fovy = d.get("fovy_deg")
    if fovy is not None:
        if isinstance(fovy, bool) or not isinstance(fovy, (int, float)) or not 0.0 < fovy < 180.0:
            raise ValueError(f"{where} fovy_deg: expected a number of degrees in (0, 180), got {fovy!r}")
        fovy = float(fovy)
    q = tuple(float(v) for v in quat / norm)
    return CameraMount(str(parent), (pos[0], pos[1], pos[2]), (q[0], q[1], q[2], q[3]), fovy)


def camera_mounts_from_dict(d: Any) -> dict[str, CameraMount]:
    """Parses ``{name: mount}``; raises ValueError naming the camera and key on bad input."""
    if d is None:
        return {}
    if not isinstance(d, Mapping):
        raise ValueError(f"expected a mapping of camera name -> mount, got {d!r}")  # noqa: TRY004 - as above
    return {str(name): camera_mount_from_dict(str(name), v) for name, v in d.items()}


def camera_frame(name: str) -> str:
    """The frame id of camera `name`'s images and its `/tf` child frame."""
    return f"camera_{name}"
