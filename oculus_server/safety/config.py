"""`SafetyConfig`: the limits of the command gate and of measured-state plausibility.

Loaded from the ``safety:`` section of the daemon's YAML config (`SafetyConfig.from_dict`),
validated at load. Units: metres, radians, seconds, Hz; positions in the robot base frame.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from frankateach.constants import ROBOT_WORKSPACE_MAX, ROBOT_WORKSPACE_MIN
from oculus_server.config_section import section_values
from oculus_server.errors import ConfigError

# Defaults near franka-vr-teleop's per-step limits (0.04 m / 0.2 rad at 20 Hz): 0.8 m/s, 4 rad/s.
DEFAULT_MAX_STEP_M = 0.04
DEFAULT_MAX_STEP_RAD = 0.20
DEFAULT_STEP_RATE_HZ = 20.0
# Franka Panda's rated Cartesian limits (end effector): 1.7 m/s, 2.5 rad/s.
PANDA_MAX_SPEED_M_S = 1.7
PANDA_MAX_SPEED_RAD_S = 2.5


@dataclass(frozen=True)
class SafetyConfig:
    """Limits of the command path.

    Attributes:
        workspace_min: (3,) lower corner of the box every target is clamped into, metres.
        workspace_max: (3,) upper corner.
        max_step_m: largest move of the target between two commands at `step_rate_hz`, metres.
        max_step_rad: largest turn of the target between two commands at `step_rate_hz`, rad.
        step_rate_hz: the control rate the two steps above are given for; at another rate
            they scale by ``step_rate_hz / control_hz``, so the speed limit stays the same.
        envelope_margin_m: a measured position farther than this outside the box is not
            believed (the link is treated as faulty), metres.
        quat_norm_tol: a measured quaternion whose norm differs from 1 by more than this is
            not believed.
        max_state_speed_m_s: a measured position that moved faster than this since the last
            believed state is not believed ("a jump no arm can make"), m/s.
        max_state_speed_rad_s: the same for the orientation, rad/s.
        max_state_gap_s: the interval used for that bound is capped at this, seconds (a long
            silence does not make any jump believable).
        recover_tol_m: after a disbelieved state, a state this close to the last believed
            pose or to the last sent target ends the fault, metres.
        recover_tol_rad: the same for the orientation, radians.
        hold_settle_s: when holding starts, the hold target follows the measured pose (the arm
            coming to rest) until a state received this long after the start, then stays.
        max_command_age_periods: the robot thread never sends a command older than this many
            control periods (an older one was made for a moment that has passed).
    """

    workspace_min: tuple[float, ...] = tuple(float(v) for v in ROBOT_WORKSPACE_MIN)
    workspace_max: tuple[float, ...] = tuple(float(v) for v in ROBOT_WORKSPACE_MAX)
    max_step_m: float = DEFAULT_MAX_STEP_M
    max_step_rad: float = DEFAULT_MAX_STEP_RAD
    step_rate_hz: float = DEFAULT_STEP_RATE_HZ
    envelope_margin_m: float = 0.3
    quat_norm_tol: float = 0.01
    max_state_speed_m_s: float = PANDA_MAX_SPEED_M_S
    max_state_speed_rad_s: float = PANDA_MAX_SPEED_RAD_S
    max_state_gap_s: float = 0.5
    recover_tol_m: float = 0.02
    recover_tol_rad: float = 0.1
    hold_settle_s: float = 0.25
    max_command_age_periods: float = 2.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name)))
        lo, hi = self.workspace_min, self.workspace_max
        if not all(a < b for a, b in zip(lo, hi)):
            raise ConfigError(
                f"safety config: expected workspace_min < workspace_max on every axis, got {list(lo)} and {list(hi)}"
            )
        if self.envelope_margin_m < 0:
            raise ConfigError(
                f"safety config 'envelope_margin_m': expected a number >= 0, got {self.envelope_margin_m}"
            )

    def step_limits(self, control_hz: float) -> tuple[float, float]:
        """(metres, radians) the target may move between two commands at `control_hz`."""
        if not (math.isfinite(control_hz) and control_hz > 0):
            raise ConfigError(f"control rate must be a finite number > 0 Hz, got {control_hz}")
        scale = self.step_rate_hz / control_hz
        return self.max_step_m * scale, self.max_step_rad * scale

    @property
    def max_speed_m_s(self) -> float:
        """The target's speed limit implied by the step limit, m/s."""
        return self.max_step_m * self.step_rate_hz

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The keys `from_dict` accepts."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> SafetyConfig:
        """Builds a config from a mapping (the ``safety:`` section); missing keys keep defaults.

        Raises:
            ConfigError: not a mapping, an unknown key (named, with the allowed ones), or a
                value of the wrong type or range.
        """
        return cls(**section_values(d, "safety", cls.field_names()))


_VECTORS = ("workspace_min", "workspace_max")


def _coerce(key: str, value: Any) -> Any:
    """Checks and normalises one field; raises ConfigError naming the key, the value and the rule."""
    if key in _VECTORS:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 3:
            raise ConfigError(f"safety config '{key}': expected a list of 3 numbers, got {value!r}")
        out = tuple(_number(key, v) for v in value)
        return out
    v = _number(key, value)
    if key == "envelope_margin_m":
        return v
    if not v > 0:
        raise ConfigError(f"safety config '{key}': expected a finite number > 0, got {value!r}")
    return v


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ConfigError(f"safety config '{key}': expected a finite number, got {value!r}")
    return float(value)
