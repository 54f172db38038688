"""Assist settings: the ``assist:`` section, its flags, resolution against the daemon config, and
the key never reaching a recording's metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oculus_server.assist.config import AssistConfig, cadence_warning, resolve
from oculus_server.cli import build_parser, config_from_args, main
from oculus_server.config import DaemonConfig, assist_config, load_config
from oculus_server.errors import ConfigError

BUTTONS = ("RG", "RJ", "A", "B", "RTr")


def _cfg(*argv: str) -> DaemonConfig:
    return config_from_args(build_parser().parse_args(list(argv)))


def test_assist_is_off_by_default_and_the_defaults_are_the_documented_ones() -> None:
    assert assist_config(DaemonConfig()) is None
    c = AssistConfig()
    assert (c.weight, c.mode, c.gripper, c.ramp_per_tick, c.max_age_periods) == (0.3, "blend", "operator", 0.1, 2.0)
    assert c.alpha_target == 0.3 and AssistConfig(mode="drive").alpha_target == 1.0
    assert c.max_age_s(20.0) == pytest.approx(0.1) and c.max_age_s(40.0) == pytest.approx(0.05)


def test_flags_fill_the_assist_section() -> None:
    cfg = _cfg("--debug", "--assist", "color-reach", "--instruction", "pick up the red cube", "--assist-weight", "0.5",
               "--assist-mode", "drive", "--assist-gripper", "policy", "--assist-min-score", "0.2",
               "--assist-toggle", "Y", "--assist-fps", "10", "--assist-key", "vla_secret")
    a = assist_config(cfg, env={})
    assert a is not None and a.model == "color-reach" and a.url is None
    assert (a.instruction, a.weight, a.mode, a.gripper, a.min_score, a.toggle_button, a.fps) == (
        "pick up the red cube", 0.5, "drive", "policy", 0.2, "Y", 10.0)
    assert a.key == "vla_secret"
    assert cfg.to_dict()["assist"]["key"] == "<set>"  # recordings carry cfg.to_dict(): never the key
    assert "vla_secret" not in repr(a.redacted())


def test_the_file_and_the_flags_merge(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("debug: true\nassist:\n  model: color-reach\n  instruction: lift the blue cube\n  weight: 0.4\n")
    a = assist_config(_cfg("--config", str(f), "--assist-weight", "0.6"), env={})
    assert a is not None and (a.model, a.instruction, a.weight) == ("color-reach", "lift the blue cube", 0.6)


@pytest.mark.parametrize(
    "argv, words",
    [
        (("--assist-weight", "1.5"), ("--assist-weight ('assist.weight')", "1.5", "0 <= value <= 1")),
        (("--assist-min-score", "-0.1"), ("--assist-min-score", "0 <= value <= 1")),
        (("--assist-fps", "0"), ("--assist-fps", "> 0")),
        (("--assist-url", "http://x:1/v1/stream"), ("--assist-url", "ws://HOST:PORT/v1/stream or openpi://HOST:PORT")),
        (("--assist-url", "ws://host:99999/v1/stream"), ("--assist-url", "port")),
        (("--assist-toggle", "Z"), ("--assist-toggle", "a controller button")),
        (("--assist-toggle", "A"), ("--assist-toggle ('assist.toggle_button')", "'A' is already used by the VR")),
    ],
)
def test_bad_assist_flags_exit_2_naming_the_flag(argv: tuple[str, ...], words: tuple[str, ...], capsys) -> None:
    code = main(["--debug", "--no-dashboard", "--assist", "color-reach", "--instruction", "x", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    for w in words:
        assert w in err, err


def test_unknown_keys_and_wrong_types_in_the_file_are_named(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("assist:\n  model: color-reach\n  wieght: 0.2\n")
    with pytest.raises(ConfigError, match="unknown key 'wieght'.*weight"):
        load_config(f)
    f.write_text("assist:\n  model: color-reach\n  start_enabled: 'yes'\n")
    with pytest.raises(ConfigError, match="'start_enabled'.*true or false"):
        load_config(f)
    f.write_text("assist:\n  ramp_per_tick: 0.5\n")
    with pytest.raises(ConfigError, match="ramp_per_tick.*0 < value <= 0.1"):
        load_config(f)


def test_resolution_fills_defaults_and_refuses_what_cannot_run() -> None:
    kw = {"debug": True, "task": "", "right_controller": True, "policy_buttons": BUTTONS}
    a = resolve({"model": "m", "instruction": "go"}, **kw, env={"VLA_API_KEY": "from-env"})
    assert a is not None and a.toggle_button == "X" and a.key == "from-env"
    left = resolve({"model": "m", "instruction": "go"}, **{**kw, "right_controller": False,
                                                          "policy_buttons": ("LG", "LJ", "X", "Y", "LTr")}, env={})
    assert left is not None and left.toggle_button == "A"
    assert resolve({"model": "m"}, **{**kw, "task": "stack cups"}, env={}).instruction == "stack cups"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="no instruction"):
        resolve({"model": "m"}, **kw, env={})
    with pytest.raises(ConfigError, match="--assist-url is required without --debug"):
        resolve({"model": "m", "instruction": "go"}, **{**kw, "debug": False}, env={})
    assert resolve({"model": "m", "instruction": "go", "url": "openpi://gpu:8001"}, **{**kw, "debug": False}, env={})
    assert resolve({"weight": 0.9}, **kw, env={}) is None  # no model: off, whatever else is set


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(AssistConfig.field_names()),
       st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=12), st.lists(st.integers(), max_size=2)))
def test_any_value_is_either_accepted_or_refused_naming_the_key(key: str, value: object) -> None:
    try:
        cfg = AssistConfig.from_dict({key: value})
    except ConfigError as exc:
        assert f"'{key}'" in str(exc)
    else:
        assert getattr(cfg, key) == value or getattr(cfg, key) == float(value)  # type: ignore[arg-type]


def test_a_staleness_limit_shorter_than_the_frame_period_is_warned_about() -> None:
    assert cadence_warning(AssistConfig(), 20.0) == ""  # 100 ms limit, a frame every 67 ms
    text = cadence_warning(AssistConfig(), 40.0)  # --performance: 50 ms limit
    assert "every 67 ms (15 fps) but are stale after 50 ms" in text and "max_age_periods: 4" in text
    assert cadence_warning(AssistConfig(max_age_periods=4), 40.0) == ""
