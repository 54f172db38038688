from pathlib import Path

import pytest

from oculus_server.config import DEFAULT_CONFIG, DaemonConfig, load_config
from oculus_server.errors import ConfigError


def test_default_yaml_matches_dataclass_defaults():
    assert DEFAULT_CONFIG.exists()
    assert load_config(DEFAULT_CONFIG) == DaemonConfig()


def test_cli_overrides_win_and_none_means_unset():
    cfg = load_config(None, {"performance": True, "robot_host": "10.0.0.2", "duration": None})
    assert cfg.performance and cfg.robot_host == "10.0.0.2" and cfg.duration is None
    assert cfg.effective_control_hz == 40.0
    assert DaemonConfig().effective_control_hz == 20.0
    assert load_config(None, {"control_hz": 100}).effective_control_hz == 100.0


def test_record_on_start_defaults_by_source():
    assert DaemonConfig(vr_source="scripted:circle").effective_record_on_start
    assert DaemonConfig(vr_source="replay:x.mcap").effective_record_on_start
    assert not DaemonConfig(vr_source="quest").effective_record_on_start
    assert not DaemonConfig(vr_source="scripted:circle", record_on_start=False).effective_record_on_start


def test_unknown_key_is_rejected_with_the_allowed_keys(tmp_path: Path):
    f = tmp_path / "bad.yaml"
    f.write_text("robot_hots: 1.2.3.4\n")
    with pytest.raises(ConfigError, match="unknown config key 'robot_hots'.*robot_host"):
        load_config(f)


def test_non_mapping_and_bad_cameras_are_rejected(tmp_path: Path):
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(f)
    f.write_text("cameras: front\n")
    with pytest.raises(ConfigError, match="camera ids"):
        load_config(f)


def test_policy_overrides_merge(tmp_path: Path):
    f = tmp_path / "p.yaml"
    f.write_text("policy: {pos_action_gain: 7}\n")
    cfg = load_config(f, {"policy": {"rot_action_gain": 4}})
    assert cfg.policy == {"pos_action_gain": 7, "rot_action_gain": 4}


def test_fast100_profile_loads():
    cfg = load_config(DEFAULT_CONFIG.parent / "fast100.yaml")
    assert cfg.effective_control_hz == 100 and cfg.record_hz == 100 and cfg.vr_hz == 100
