"""`SafetyLimits`: the limits of the safety score's checks (`vla_server.stream.safety`), a section
of the service's configuration (``stream.safety``). No numpy: the configuration loads at start."""

from __future__ import annotations

import math
from dataclasses import dataclass

from frankateach.workspace import ROBOT_WORKSPACE_MAX_M, ROBOT_WORKSPACE_MIN_M
from vla_server.constants import (
    SAFETY_MAX_ANG_SPEED_RAD_S,
    SAFETY_MAX_JUMP,
    SAFETY_MAX_LIN_SPEED_M_S,
    SAFETY_MAX_MEASURED_LIN_SPEED_M_S,
    SAFETY_WORKSPACE_MARGIN_M,
)


@dataclass(frozen=True)
class SafetyLimits:
    """Limits of the checks (m, m/s, rad/s, action units)."""

    workspace_min: tuple[float, float, float] = ROBOT_WORKSPACE_MIN_M
    workspace_max: tuple[float, float, float] = ROBOT_WORKSPACE_MAX_M
    workspace_margin_m: float = SAFETY_WORKSPACE_MARGIN_M
    max_lin_speed_m_s: float = SAFETY_MAX_LIN_SPEED_M_S
    max_ang_speed_rad_s: float = SAFETY_MAX_ANG_SPEED_RAD_S
    max_measured_lin_speed_m_s: float = SAFETY_MAX_MEASURED_LIN_SPEED_M_S
    max_jump: float = SAFETY_MAX_JUMP

    def __post_init__(self) -> None:
        for name in ("workspace_margin_m", "max_lin_speed_m_s", "max_ang_speed_rad_s",
                     "max_measured_lin_speed_m_s", "max_jump"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"safety.{name}: expected a positive number, got {value!r}")
        if len(self.workspace_min) != 3 or len(self.workspace_max) != 3 or any(
            lo >= hi for lo, hi in zip(self.workspace_min, self.workspace_max, strict=True)
        ):
            raise ValueError(
                f"safety workspace: expected min < max per axis, got {self.workspace_min} / {self.workspace_max}"
            )
