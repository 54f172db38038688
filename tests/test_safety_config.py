"""SafetyConfig: defaults, validation naming key and value, the daemon config's `safety:` section."""

from __future__ import annotations

from pathlib import Path

import pytest

from frankateach.constants import ROBOT_WORKSPACE_MAX, ROBOT_WORKSPACE_MIN
from oculus_server.config import DEFAULT_CONFIG, load_config
from oculus_server.daemon import safety_config
from oculus_server.errors import ConfigError
from oculus_server.safety.config import SafetyConfig


def test_defaults_are_the_constants_box_and_franka_vr_teleop_steps() -> None:
    c = SafetyConfig()
    assert c.workspace_min == tuple(ROBOT_WORKSPACE_MIN) and c.workspace_max == tuple(ROBOT_WORKSPACE_MAX)
    assert (c.max_step_m, c.max_step_rad, c.step_rate_hz) == (0.04, 0.2, 20.0)
    assert SafetyConfig.from_dict(None) == c == SafetyConfig.from_dict({})


def test_from_dict_accepts_yaml_values() -> None:
    c = SafetyConfig.from_dict({"max_step_m": 0.02, "workspace_min": [0.3, -0.3, 0.1], "envelope_margin_m": 0})
    assert c.max_step_m == 0.02 and c.workspace_min == (0.3, -0.3, 0.1) and c.envelope_margin_m == 0.0
    assert isinstance(c.envelope_margin_m, float)


@pytest.mark.parametrize(
    "d, fragment",
    [
        ({"max_step": 0.02}, "unknown key 'max_step'; allowed keys: workspace_min"),
        ({"max_step_m": "fast"}, "'max_step_m': expected a finite number, got 'fast'"),
        ({"max_step_m": 0}, "'max_step_m': expected a finite number > 0, got 0"),
        ({"max_step_rad": float("nan")}, "'max_step_rad': expected a finite number"),
        ({"hold_settle_s": True}, "'hold_settle_s': expected a finite number, got True"),
        ({"workspace_min": [0.2, -0.4]}, "'workspace_min': expected a list of 3 numbers"),
        ({"workspace_min": [0.8, -0.4, 0.05]}, "expected workspace_min < workspace_max"),
        ({"envelope_margin_m": -0.1}, "'envelope_margin_m': expected a number >= 0"),
    ],
)
def test_bad_values_are_rejected_naming_key_and_value(d, fragment) -> None:
    with pytest.raises(ConfigError) as exc:
        SafetyConfig.from_dict(d)
    assert fragment in str(exc.value)


def test_from_dict_rejects_a_non_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a mapping, got list"):
        SafetyConfig.from_dict([("max_step_m", 1)])  # type: ignore[arg-type]


def test_step_limits_need_a_positive_rate() -> None:
    with pytest.raises(ConfigError, match="control rate"):
        SafetyConfig().step_limits(0.0)


def test_the_daemon_config_carries_a_validated_safety_section(tmp_path: Path) -> None:
    assert load_config(DEFAULT_CONFIG).safety == {}
    f = tmp_path / "c.yaml"
    f.write_text("safety:\n  max_step_m: 0.02\n  workspace_max: [0.7, 0.3, 0.6]\n")
    cfg = load_config(f, {"safety": {"max_step_rad": 0.1}})
    assert cfg.safety == {"max_step_m": 0.02, "workspace_max": [0.7, 0.3, 0.6], "max_step_rad": 0.1}
    s = safety_config(cfg)
    assert (s.max_step_m, s.max_step_rad, s.workspace_max) == (0.02, 0.1, (0.7, 0.3, 0.6))
    f.write_text("safety:\n  max_step_m: -1\n")
    with pytest.raises(ConfigError, match="'max_step_m': expected a finite number > 0, got -1"):
        load_config(f)
    f.write_text("policy:\n  workspace_min: [0.2, -0.4, 0.05]\n")
    with pytest.raises(ConfigError, match="belong in the 'safety:' section"):
        from oculus_server.daemon import policy_config

        policy_config(load_config(f))
