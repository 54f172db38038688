"""`AssistConfig`: how the daemon lets a VLA policy help the operator (the YAML ``assist:`` section).

Validated at load (`AssistConfig.from_dict`); `resolve` fills what depends on the rest of the
daemon's config (the toggle button of the hand in use, the instruction from ``task``) and checks
what needs it (a service URL without ``--debug``, a toggle button the VR policy does not use).
Assist is on when ``model`` is set. Units: Hz, seconds, control periods; the weight α is the
policy's share of the six motion values of the action (0: operator only, 1: policy only).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from oculus_server.config_section import section_values
from oculus_server.errors import ConfigError
from robot_formats.recording.records import LEFT_BOOLS, RIGHT_BOOLS

MODES = ("blend", "drive")  # drive: α = 1 while the deadman is held (evaluating a policy)
GRIPPER_OWNERS = ("operator", "policy")
URL_SCHEMES = ("ws", "wss", "openpi", "openpi+ws", "openpi+wss")  # see vla_client.make_client
KEY_ENV = "VLA_API_KEY"  # the service key when neither --assist-key nor assist.key is given
MAX_RAMP_PER_TICK = 0.1  # α never rises faster than this per control tick
SERVICE_TIERS = ("free", "pro", "enterprise")


@dataclass(frozen=True)
class AssistConfig:
    """The assist settings.

    Attributes:
        model: catalog id of the policy (``--assist``); None: assist off.
        url: ``ws://HOST:PORT/v1/stream`` or ``openpi://HOST:PORT`` (``--assist-url``); None with
            ``--debug``: the daemon starts a local service.
        key: the service's API key (``--assist-key``; else the ``VLA_API_KEY`` environment
            variable). Never recorded.
        instruction: the task given to the policy (``--instruction``; default: ``task``).
        weight: α, the policy's share of the motion (``--assist-weight``), 0..1.
        mode: ``blend`` (α = weight) or ``drive`` (α = 1 while the deadman is held).
        gripper: who commands the gripper: ``operator`` (never averaged) or ``policy``.
        min_score: a policy action whose safety score is below this is not used (0..1).
        max_age_periods: a policy action older than this many control periods is stale.
        ramp_per_tick: α rises by at most this per control tick (≤ 0.1); it drops at once.
        toggle_button: controller button that switches assist on/off (None: X when driving with
            the right controller, A with the left: buttons the VR policy does not use).
        fps: frames sent to the service per second, Hz (the session's ``target_fps``).
        camera: the camera whose newest frame is sent.
        start_enabled: assist is on at start (the button switches it).
        smoothing: ask the service for its EMA over actions (adds lag; α ramps anyway).
        connect_timeout_s: one connection attempt (socket + auth), seconds.
        service_tier: tier of the temporary key of a local service (``--debug``).
        service_start_timeout_s: how long a local service may take to listen, seconds.
        catalog: model catalog YAML of the local service (``--assist-catalog``; e.g. one that
            tools/train_lerobot.py registered a trained policy in); None: the built-in catalog.
    """

    model: str | None = None
    url: str | None = None
    key: str = ""
    instruction: str = ""
    weight: float = 0.3
    mode: str = "blend"
    gripper: str = "operator"
    min_score: float = 0.5
    max_age_periods: float = 2.0
    ramp_per_tick: float = MAX_RAMP_PER_TICK
    toggle_button: str | None = None
    fps: float = 15.0
    camera: str = "front"
    start_enabled: bool = True
    smoothing: bool = False
    connect_timeout_s: float = 2.0
    service_tier: str = "pro"
    service_start_timeout_s: float = 90.0
    catalog: str | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _check(f.name, getattr(self, f.name)))

    @property
    def enabled(self) -> bool:
        """Assist is configured (a model is named)."""
        return self.model is not None

    @property
    def alpha_target(self) -> float:
        """The α aimed at while the policy is usable: `weight`, or 1 in drive mode."""
        return 1.0 if self.mode == "drive" else self.weight

    def max_age_s(self, control_hz: float) -> float:
        """A policy action older than this is stale, seconds."""
        return self.max_age_periods / control_hz

    def redacted(self) -> dict[str, Any]:
        """The settings as plain values, the key replaced (for recordings and logs)."""
        out = dataclasses.asdict(self)
        out["key"] = "<set>" if self.key else ""
        return out

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The keys `from_dict` accepts."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> AssistConfig:
        """Builds a config from a mapping (the ``assist:`` section); missing keys keep defaults.

        Raises:
            ConfigError: not a mapping, an unknown key (named, with the allowed ones), or a value
                of the wrong type or range (named, with what is allowed).
        """
        return cls(**section_values(d, "assist", cls.field_names()))


_UNIT = ("weight", "min_score")
_POSITIVE = ("max_age_periods", "fps", "connect_timeout_s", "service_start_timeout_s")
_CHOICES = {"mode": MODES, "gripper": GRIPPER_OWNERS, "service_tier": SERVICE_TIERS}
_BOOLS = ("start_enabled", "smoothing")


def _bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"assist config '{key}': got {value!r}; expected {allowed}")


def _check(key: str, value: Any) -> Any:
    """Checks and normalises one field; raises ConfigError naming the key, the value and the rule."""
    if key in _BOOLS:
        if not isinstance(value, bool):
            raise _bad(key, value, "true or false")
        return value
    if key in _UNIT or key in _POSITIVE or key == "ramp_per_tick":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise _bad(key, value, "a finite number")
        v = float(value)
        if key in _UNIT and not 0.0 <= v <= 1.0:
            raise _bad(key, value, "a number with 0 <= value <= 1")
        if key in _POSITIVE and not v > 0.0:
            raise _bad(key, value, "a number > 0")
        if key == "fps" and v > 1000.0:
            raise _bad(key, value, "a rate with 0 < value <= 1000 Hz")
        if key == "ramp_per_tick" and not 0.0 < v <= MAX_RAMP_PER_TICK:
            raise _bad(key, value, f"a number with 0 < value <= {MAX_RAMP_PER_TICK}")
        return v
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            raise _bad(key, value, "one of " + ", ".join(_CHOICES[key]))
        return value
    if key in ("model", "url", "toggle_button", "catalog"):
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise _bad(key, value, "a non-empty string, or null")
        if key == "url":
            _check_url(value)
        if key == "toggle_button" and value not in RIGHT_BOOLS + LEFT_BOOLS:
            raise _bad(key, value, "a controller button: one of " + ", ".join(RIGHT_BOOLS + LEFT_BOOLS) + ", or null")
        return value
    if key in ("key", "instruction", "camera"):
        if not isinstance(value, str) or (key == "camera" and not value.strip()):
            raise _bad(key, value, "a non-empty string" if key == "camera" else "a string")
        return value
    raise AssertionError(f"assist config: no rule for {key!r}")


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES or not parts.hostname:
        raise _bad("url", url, "ws://HOST:PORT/v1/stream or openpi://HOST:PORT")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise _bad("url", url, "a URL with a port number 1..65535") from None


def default_toggle(right_controller: bool) -> str:
    """The toggle button when none is configured: the other hand's first button."""
    return "X" if right_controller else "A"


def resolve(
    section: Mapping[str, Any],
    *,
    debug: bool,
    task: str,
    right_controller: bool,
    policy_buttons: tuple[str, ...],
    env: Mapping[str, str] | None = None,
) -> AssistConfig | None:
    """The assist config of a daemon run, or None when assist is off.

    Args:
        section: the ``assist:`` mapping (file and flags merged).
        debug: the daemon runs the simulator (a local service may be started).
        task: the daemon's task, the instruction when none is given.
        right_controller: the operator drives with the right controller.
        policy_buttons: the buttons the VR policy uses (grip, calibration, episode, success,
            trigger); the toggle button must not be one of them.
        env: environment for `KEY_ENV` (default `os.environ`).

    Raises:
        ConfigError: a bad value, no instruction, no URL without --debug, or a toggle button the
            VR policy already uses.
    """
    cfg = AssistConfig.from_dict(section)
    if not cfg.enabled:
        return None
    changes: dict[str, Any] = {}
    if not cfg.instruction.strip():
        if not task.strip():
            raise ConfigError("assist: no instruction for the policy; give --instruction TEXT "
                              "(or assist.instruction, or --task)")
        changes["instruction"] = task
    if cfg.url is None and not debug:
        raise ConfigError("assist: --assist-url is required without --debug (with --debug the daemon "
                          "starts a local inference service)")
    if not cfg.key:
        changes["key"] = (env if env is not None else os.environ).get(KEY_ENV, "")
    button = cfg.toggle_button or default_toggle(right_controller)
    if button in policy_buttons:
        raise ConfigError(f"assist config 'toggle_button': {button!r} is already used by the VR policy "
                          f"(its buttons: {', '.join(policy_buttons)}); choose another")
    changes["toggle_button"] = button
    return dataclasses.replace(cfg, **changes)


def cadence_warning(cfg: AssistConfig, control_hz: float) -> str:
    """A warning when actions cannot stay fresh between frames ("" when they can).

    A new action comes about once per frame period (1 / fps); if that is longer than the
    staleness limit (`max_age_periods` control periods), every action goes stale before the next
    arrives and assist flickers between on and stale (e.g. --performance: 40 Hz, 2 periods =
    50 ms, but 15 fps = 67 ms between actions).
    """
    limit, gap = cfg.max_age_s(control_hz), 1.0 / cfg.fps
    if limit >= 1.2 * gap:
        return ""
    periods = math.ceil(1.2 * gap * control_hz)
    return (f"assist: actions arrive every {gap * 1e3:.0f} ms ({cfg.fps:g} fps) but are stale after "
            f"{limit * 1e3:.0f} ms ({cfg.max_age_periods:g} periods at {control_hz:g} Hz): assist will flicker; "
            f"set assist.max_age_periods: {periods} (or raise --assist-fps)")
