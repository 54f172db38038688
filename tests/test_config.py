import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oculus_server.config import DEFAULT_CONFIG, DaemonConfig, describe, load_config
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


# -- validation: every key is checked at load, errors name key, value and what is allowed --------


@pytest.mark.parametrize(
    ("yaml_line", "key", "allowed"),
    [
        ('control_hz: "fast"', "control_hz", "a number with 0 < value <= 1000 (Hz), or null"),
        ('robot_port: "x"', "robot_port", "an integer with 1 <= value <= 65535"),
        ('request_timeout_s: "x"', "request_timeout_s", "a number with 0 < value <= 60 (s)"),
        ("vr_hz: -50", "vr_hz", "0 < value <= 1000 (Hz)"),
        ("record_hz: 0", "record_hz", "0 < value <= 1000 (Hz)"),
        ('record: "no"', "record", "true or false"),
        ("record: 0", "record", "true or false"),
        ("hold_after_s: -1", "hold_after_s", "0 < value <= 60 (s)"),
        ("duration: -5", "duration", "0 < value <= 86400 (s), or null"),
        ("robot_port: 99999", "robot_port", "1 <= value <= 65535"),
        ("robot_port: 8901.5", "robot_port", "an integer"),
        ("codec: json", "codec", "one of msgpack, pickle"),
        ("vr_hz: .nan", "vr_hz", "a number"),
        ("realtime_priority: 100", "realtime_priority", "0 <= value <= 99"),
        ("cameras: [0, 0]", "cameras", "listed twice"),
        ("record_on_start: yes please", "record_on_start", "true or false, or null"),
        ("robot_host: ''", "robot_host", "a non-empty string"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(tmp_path: Path, yaml_line: str, key: str, allowed: str):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml_line + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    msg = str(info.value)
    assert f"'{key}'" in msg and str(f) in msg and allowed in msg, msg
    value = yaml_line.split(":", 1)[1].strip().strip('"')
    assert value.lstrip(".") in msg or value == "''", msg


def test_command_line_overrides_are_checked_and_name_the_flag():
    names = {"duration": "--duration", "record_hz": "--record-hz", "robot_port": "--robot-port"}
    for key, value, allowed in (
        ("duration", -5.0, "0 < value"),
        ("record_hz", 0.0, "0 < value"),
        ("robot_port", 99999, "65535"),
    ):
        with pytest.raises(ConfigError) as info:
            load_config(None, {key: value}, names)
        msg = str(info.value)
        assert msg.startswith("command line:") and f"{names[key]} ('{key}')" in msg and allowed in msg, msg


def test_strict_bools_and_yaml_booleans():
    assert load_config(None, {"record": False}).record is False
    with pytest.raises(ConfigError, match="'record'.*true or false"):
        DaemonConfig(record="no")  # type: ignore[arg-type]


def test_policy_section_is_checked_at_load(tmp_path: Path):
    f = tmp_path / "p.yaml"
    f.write_text("policy: {pos_action_gain: fast}\n")
    with pytest.raises(ConfigError, match="pos_action_gain"):
        load_config(f)
    f.write_text("policy: {pos_gain: 3}\n")
    with pytest.raises(ConfigError, match="unknown key 'pos_gain'"):
        load_config(f)


def test_camera_mounts_are_parsed_and_checked(tmp_path: Path):
    f = tmp_path / "m.yaml"
    f.write_text(
        "camera_mounts:\n"
        "  front: {parent: robot_base, position: [1, 0, 0.7], orientation: [0, 0, 0, 1], fovy_deg: 40}\n"
    )
    m = load_config(f).camera_mounts["front"]
    assert m.position == (1.0, 0.0, 0.7) and m.fovy_deg == 40.0
    f.write_text("camera_mounts:\n  front: {parent: table, position: [1, 0, 0.7], orientation: [0, 0, 0, 1]}\n")
    with pytest.raises(ConfigError, match="'camera_mounts'.*camera 'front' parent"):
        load_config(f)


def test_every_key_is_described_and_documented_in_default_yaml():
    text = DEFAULT_CONFIG.read_text()
    for key in DaemonConfig.__dataclass_fields__:
        assert describe(key) and f"\n{key}:" in "\n" + text, key


_any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(DaemonConfig.__dataclass_fields__)), value=_any_value)
def test_any_value_is_either_accepted_as_valid_or_rejected_with_the_key_named(key: str, value):
    try:
        cfg = DaemonConfig(**{key: value})
    except ConfigError as exc:
        assert f"'{key}'" in str(exc)
        return
    got = getattr(cfg, key)
    if isinstance(got, bool) or got is None:
        assert got is value or got == value
    elif isinstance(got, float):
        assert math.isfinite(got)
    if key in ("vr_hz", "record_hz", "control_hz", "request_timeout_s", "hold_after_s", "duration") and got is not None:
        assert got > 0
    if key in ("robot_port", "camera_port_offset"):
        assert 1 <= got <= 65535
