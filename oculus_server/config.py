"""Daemon configuration: one typed schema, validated at load, overridable from the CLI.

`DaemonConfig` is the single place the daemon's keys, types, defaults and allowed ranges live.
`configs/default.yaml` documents the same keys (a test keeps the two equal); command-line flags
override a file's values. Every value is checked when the config is built — whether from YAML,
flags or code — and a bad one raises `ConfigError` naming the key (and the flag or file it came
from), the value, and what is allowed. Types are strict: ``record: "no"`` is a string, not false;
``control_hz: "fast"`` is not a number. The ``policy:`` section is checked against
`oculus_server.policy.PolicyConfig` (whose fields and checks live with the policy).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from frankateach.constants import (
    CAM_PORT_OFFSET,
    CONTROL_PORT,
    DEOXYS_LATENCY_MS,
    HOST,
    REQUEST_TIMEOUT_S,
)
from oculus_server.constants import CONTROL_FREQ, PERFORMANCE_CONTROL_FREQ, RECORD_FREQ, VR_FREQ, VR_LINK_TIMEOUT_S
from oculus_server.errors import ConfigError
from oculus_server.safety.config import SafetyConfig
from robot_formats.recording.camera_mounts import CameraMount, camera_mounts_from_dict
from robot_formats.recording.paths import RECORDINGS_DIR

if TYPE_CHECKING:
    from oculus_server.assist.config import AssistConfig

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
MAX_RATE_HZ = 1000.0  # no loop of the daemon is meant to run faster
CODECS = ("msgpack", "pickle")


@dataclass(frozen=True)
class Rule:
    """What one key accepts.

    Attributes:
        kind: "str", "int", "float", "bool", "ids" (list of camera ids), "mapping", "mounts".
        optional: null (None) is allowed.
        lo, hi: inclusive bounds for numbers (None: unbounded).
        lo_open: `lo` itself is not allowed (a strict lower bound).
        choices: allowed values of a string.
        nonempty: a string must not be empty.
        unit: shown in messages ("Hz", "s", ...).
    """

    kind: str
    optional: bool = False
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] = ()
    nonempty: bool = False
    unit: str = ""

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        unit = f" ({self.unit})" if self.unit else ""
        if self.kind == "bool":
            text = "true or false"
        elif self.kind == "str":
            text = ("one of " + ", ".join(self.choices)) if self.choices else (
                "a non-empty string" if self.nonempty else "a string")
        elif self.kind in ("int", "float"):
            what = "an integer" if self.kind == "int" else "a number"
            if self.lo is not None and self.hi is not None:
                op = "<" if self.lo_open else "<="
                text = f"{what} with {_num(self.lo)} {op} value <= {_num(self.hi)}{unit}"
            elif self.lo is not None:
                text = f"{what} {'>' if self.lo_open else '>='} {_num(self.lo)}{unit}"
            else:
                text = f"{what}{unit}"
        elif self.kind == "ids":
            text = "a list of camera ids (distinct integers 0..1000)"
        elif self.kind == "mounts":
            text = ("a mapping of camera name -> "
                    "{parent: robot_base|ee, position: [x, y, z], orientation: [x, y, z, w], fovy_deg}")
        else:
            text = "a mapping"
        return text + (", or null" if self.optional else "")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _rule(default: Any, rule: Rule, doc: str) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"rule": rule, "doc": doc})
    return field(default=default, metadata={"rule": rule, "doc": doc})


PORT = Rule("int", lo=1, hi=65535)
RATE = Rule("float", lo=0.0, hi=MAX_RATE_HZ, lo_open=True, unit="Hz")
SECONDS = Rule("float", lo=0.0, hi=86400.0, lo_open=True, unit="s")


@dataclass(frozen=True)
class DaemonConfig:
    """Everything the daemon needs to run. Rates in Hz, times in seconds.

    `control_hz` None means 20 Hz, or 40 Hz with `performance`. `record_on_start` None means
    on for scripted and replay sources, off otherwise. `policy` holds overrides of the
    policy's own config (see `oculus_server.policy.PolicyConfig`), `safety` those of the command
    gate's limits (`oculus_server.safety.SafetyConfig`), `assist` the VLA assist settings
    (`oculus_server.assist.config.AssistConfig`; off unless a model is named). `camera_mounts` places the
    cameras in `/tf` (with --debug the simulator's own mounts are used for cameras not listed).

    Raises:
        ConfigError: a value of the wrong type or out of range (the message names the key).
    """

    robot_host: str = _rule(HOST, Rule("str", nonempty=True), "robot server host")
    robot_port: int = _rule(CONTROL_PORT, PORT, "robot REQ/REP control port")
    camera_port_offset: int = _rule(CAM_PORT_OFFSET, PORT, "camera i publishes on this port + i")
    codec: str = _rule("msgpack", Rule("str", choices=CODECS), "wire codec")
    request_timeout_s: float = _rule(REQUEST_TIMEOUT_S, Rule("float", lo=0.0, hi=60.0, lo_open=True, unit="s"),
                                     "every robot request gives up after this")
    state_feed: bool = _rule(True, Rule("bool"), "read the robot server's measured-state feed (PUB)")
    state_port: int | None = _rule(None, dataclasses.replace(PORT, optional=True),
                                   "state feed port (null: robot_port - 1, Franka-Teach's layout)")
    state_feed_timeout_s: float = _rule(0.25, Rule("float", lo=0.0, hi=60.0, lo_open=True, unit="s"),
                                        "no feed message for this long: use request replies")
    vr_source: str = _rule("quest", Rule("str", nonempty=True), "VR source spec")
    left_controller: bool = _rule(False, Rule("bool"), "teleoperate with the left controller")
    quest_ip: str | None = _rule(None, Rule("str", optional=True, nonempty=True), "Quest IP for network adb")
    performance: bool = _rule(False, Rule("bool"), "performance preset")
    debug: bool = _rule(False, Rule("bool"), "MuJoCo simulator as the robot")
    vr_hz: float = _rule(VR_FREQ, RATE, "VR polling rate")
    control_hz: float | None = _rule(None, dataclasses.replace(RATE, optional=True), "control rate")
    record_hz: float = _rule(RECORD_FREQ, RATE, "recording rate")
    record: bool = _rule(True, Rule("bool"), "record episodes")
    record_on_start: bool | None = _rule(None, Rule("bool", optional=True), "open an episode at launch")
    recordings_dir: str = _rule(RECORDINGS_DIR, Rule("str", nonempty=True), "where episodes are written")
    duration: float | None = _rule(None, dataclasses.replace(SECONDS, optional=True), "exit after this long")
    dashboard: bool = _rule(True, Rule("bool"), "live dashboard")
    hot_reload: bool = _rule(False, Rule("bool"), "restart on code/config change")
    cameras: tuple[int, ...] = _rule((0, 1), Rule("ids"), "camera ids on the robot server")
    sim_latency_ms: float = _rule(DEOXYS_LATENCY_MS, Rule("float", lo=0.0, hi=10000.0, unit="ms"),
                                  "simulator round-trip delay")
    sim_cameras: bool = _rule(True, Rule("bool"), "render the simulator's cameras")
    start_sim: bool = _rule(True, Rule("bool"), "with debug: start frankateach-sim as a child process")
    hold_after_s: float = _rule(VR_LINK_TIMEOUT_S, Rule("float", lo=0.0, hi=60.0, lo_open=True, unit="s"),
                                "no fresh robot state for this long: hold the arm")
    realtime_priority: int = _rule(10, Rule("int", lo=0, hi=99), "SCHED_FIFO priority (0: off)")
    rtkit: bool = _rule(True, Rule("bool"),
                        "without the privilege for SCHED_FIFO: ask RealtimeKit (rtkit, on desktops) for SCHED_RR")
    writer_process: bool = _rule(True, Rule("bool"), "write recordings in a helper process (off: a thread)")
    loop_slice_ms: float = _rule(0.2, Rule("float", lo=0.0, hi=100.0, unit="ms"),
                                 "without SCHED_FIFO: time slice the time-keeping loops ask for (0: the kernel's)")
    loop_wakers: int = _rule(2, Rule("int", lo=1, hi=64),
                             "without real-time scheduling: threads, each on its own CPU, that wait for each "
                             "tick of the control, VR and recording loops (the first awake takes it; 1: one)")
    helper_nice: int = _rule(5, Rule("int", lo=0, hi=19),
                             "nice value of the helper processes that can wait (recording, live view, "
                             "the simulator's camera renderer; 0: the daemon's)")
    live: bool | None = _rule(None, Rule("bool", optional=True),
                              "live view in Foxglove over WebSocket (null: on with debug)")
    live_host: str = _rule("127.0.0.1", Rule("str", nonempty=True), "address the live view binds")
    live_port: int = _rule(8765, Rule("int", lo=0, hi=65535), "live view port (0: any free port)")
    operator: str = _rule("", Rule("str"), "operator name")
    task: str = _rule("", Rule("str"), "task / instruction")
    camera_mounts: Mapping[str, CameraMount] = _rule({}, Rule("mounts"), "camera poses for /tf")
    policy: Mapping[str, Any] = _rule({}, Rule("mapping"), "PolicyConfig overrides")
    safety: Mapping[str, Any] = _rule({}, Rule("mapping"), "SafetyConfig overrides (command gate limits)")
    assist: Mapping[str, Any] = _rule({}, Rule("mapping"),
                                      "VLA assist (oculus_server.assist.AssistConfig): model, url, key, "
                                      "instruction, weight, mode, gripper, ...")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = _check(f.name, getattr(self, f.name), f.metadata["rule"])
            object.__setattr__(self, f.name, value)
        if self.camera_port_offset + max(self.cameras, default=0) > 65535:
            raise ConfigError(
                f"config 'camera_port_offset' = {self.camera_port_offset} with cameras {list(self.cameras)}: "
                "camera ports (offset + id) must stay <= 65535"
            )
        if self.state_feed and self.state_port is None and self.robot_port < 2:
            raise ConfigError(
                f"config 'robot_port' = {self.robot_port} with 'state_port' null: the state feed port "
                "(robot_port - 1) must be >= 1; set state_port or state_feed: false"
            )

    @property
    def effective_state_port(self) -> int:
        """The state feed's port: `state_port`, or Franka-Teach's layout (control port − 1)."""
        return self.state_port if self.state_port is not None else self.robot_port - 1

    @property
    def effective_control_hz(self) -> float:
        if self.control_hz is not None:
            return float(self.control_hz)
        return float(PERFORMANCE_CONTROL_FREQ if self.performance else CONTROL_FREQ)

    @property
    def effective_live(self) -> bool:
        """The live view is on: `live`, or by default with `debug`."""
        return self.debug if self.live is None else self.live

    @property
    def effective_record_on_start(self) -> bool:
        if self.record_on_start is not None:
            return self.record_on_start
        return self.vr_source.startswith(("scripted", "replay"))

    @property
    def vr_source_public(self) -> str:
        """`vr_source` with a session token (``webxr@token=...``) hidden, for logs and recordings."""
        return re.sub(r"(?<=token=)[^,@]*", "<set>", self.vr_source)

    def replace(self, **changes: Any) -> DaemonConfig:
        _known(changes, "config")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON/YAML-ready values (for the recording's metadata)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["vr_source"] = self.vr_source_public  # never a WebXR session token
        out["cameras"] = list(self.cameras)
        out["camera_mounts"] = {k: m.to_dict() for k, m in self.camera_mounts.items()}
        out["policy"] = dict(self.policy)
        out["assist"] = {k: ("<set>" if k == "key" and v else v) for k, v in self.assist.items()}  # never the key
        return out


_FIELDS = {f.name: f for f in fields(DaemonConfig)}


def describe(key: str) -> str:
    """The doc line of `key` with its allowed values (for messages and `--help`)."""
    f = _FIELDS[key]
    return f"{f.metadata['doc']}: {f.metadata['rule'].allowed()}"


def _bad(key: str, value: Any, rule: Rule, detail: str = "") -> ConfigError:
    got = (
        f"{value!r} ({type(value).__name__})"
        if not isinstance(value, (int, float)) or isinstance(value, bool)
        else repr(value)
    )
    extra = f" ({detail})" if detail else ""
    return ConfigError(f"config '{key}': got {got}{extra}; expected {rule.allowed()}")


def _check(key: str, value: Any, rule: Rule) -> Any:
    """Returns `value` normalised for `key`, or raises ConfigError naming key, value and rule."""
    if value is None:
        if rule.optional:
            return None
        raise _bad(key, value, rule)
    kind = rule.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(key, value, rule)
        return value
    if kind == "str":
        if not isinstance(value, str) or (rule.nonempty and not value.strip()):
            raise _bad(key, value, rule)
        if rule.choices and value not in rule.choices:
            raise _bad(key, value, rule)
        return value
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(key, value, rule)
        if kind == "int" and not (isinstance(value, int) or float(value).is_integer()):
            raise _bad(key, value, rule)
        if not math.isfinite(value):
            raise _bad(key, value, rule)
        low_ok = rule.lo is None or (value > rule.lo if rule.lo_open else value >= rule.lo)
        if not low_ok or (rule.hi is not None and value > rule.hi):
            raise _bad(key, value, rule)
        return int(value) if kind == "int" else float(value)
    if kind == "ids":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _bad(key, value, rule)
        if any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 1000 for v in value):
            raise _bad(key, value, rule)
        if len(set(value)) != len(value):
            raise _bad(key, value, rule, "an id is listed twice")
        return tuple(int(v) for v in value)
    if kind == "mounts":
        if isinstance(value, Mapping) and all(isinstance(v, CameraMount) for v in value.values()):
            return dict(value)
        try:
            return camera_mounts_from_dict(value)
        except ValueError as exc:
            raise ConfigError(f"config '{key}': {exc}") from None
    if kind == "mapping":
        if not isinstance(value, Mapping):
            raise _bad(key, value, rule)
        return dict(value)
    raise AssertionError(f"unknown rule kind {kind!r}")


def _known(values: Mapping[str, Any], where: str) -> None:
    for key in values:
        if key not in _FIELDS:
            raise ConfigError(f"{where}: unknown config key {key!r}: expected one of {sorted(_FIELDS)}")


def check_policy(cfg: DaemonConfig) -> None:
    """Checks the ``policy:`` section by building the policy's own config.

    Raises:
        ConfigError: an unknown policy key or a bad value (the message names it).
    """
    from oculus_server.policy import PolicyConfig

    changes = dict(cfg.policy)
    changes.setdefault("control_hz", cfg.effective_control_hz)
    PolicyConfig.from_dict(changes, performance=cfg.performance)


def assist_config(cfg: DaemonConfig, env: Mapping[str, str] | None = None) -> AssistConfig | None:
    """The resolved ``assist:`` section (`oculus_server.assist.config.resolve`), None when off.

    Raises:
        ConfigError: a bad value, no instruction, no URL without debug, or a toggle button the
            VR policy uses (the message names the key).
    """
    from oculus_server.assist.config import resolve
    from oculus_server.policy import PolicyConfig

    changes = dict(cfg.policy)
    changes.setdefault("control_hz", cfg.effective_control_hz)
    if cfg.left_controller:
        changes.setdefault("right_controller", False)
    pc = PolicyConfig.from_dict(changes, performance=cfg.performance)
    trigger = "RTr" if pc.right_controller else "LTr"
    buttons = (pc.grip_button, pc.joystick_button, pc.episode_button_name, pc.success_button_name, trigger)
    return resolve(cfg.assist, debug=cfg.debug, task=cfg.task, right_controller=pc.right_controller,
                   policy_buttons=buttons, env=env)


def _build(values: Mapping[str, Any], where: str, names: Mapping[str, str] | None = None) -> DaemonConfig:
    """DaemonConfig(**values); errors name `where` (a file, or the flag a key came from)."""
    _known(values, where)
    try:
        return DaemonConfig(**values)
    except ConfigError as exc:
        text = str(exc)
        if names:
            for key, flag in names.items():
                text = text.replace(f"config '{key}'", f"{flag} ('{key}')")
        text = text.removeprefix("config ")  # `where` already says so
        raise ConfigError(f"{where}: {text}") from None


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    override_names: Mapping[str, str] | None = None,
) -> DaemonConfig:
    """Reads `path` (default configs/default.yaml if present) and applies `overrides`.

    Args:
        path: a YAML file of config keys.
        overrides: key → value (e.g. from command-line flags); None values are ignored.
        override_names: key → how the user spelt it (e.g. "--record-hz"), for messages.

    Raises:
        ConfigError: unreadable file, a non-mapping document, an unknown key, or a value of the
            wrong type or range (the message names the key, the value and what is allowed).
    """
    data: dict[str, Any] = {}
    source = path or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    where = f"config {source}" if source is not None else "config"
    if source is not None:
        try:
            loaded = yaml.safe_load(Path(source).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {source}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {source}: expected a mapping at top level, got {type(loaded).__name__}")
        data.update(loaded)
    cfg = _build(data, where)
    merged = {k: v for k, v in (overrides or {}).items() if v is not None}
    if merged:
        if "policy" in merged and isinstance(merged["policy"], Mapping):
            merged["policy"] = {**cfg.policy, **merged["policy"]}
        if "safety" in merged and isinstance(merged["safety"], Mapping):
            merged["safety"] = {**cfg.safety, **merged["safety"]}
        if "assist" in merged and isinstance(merged["assist"], Mapping):
            merged["assist"] = {**cfg.assist, **merged["assist"]}
        cfg = _build({**_values(cfg), **merged}, "command line" if override_names else "overrides", override_names)
    try:
        check_policy(cfg)
        SafetyConfig.from_dict(cfg.safety)  # the command gate's limits, validated at load
        assist_config(cfg, env={"VLA_API_KEY": ""})  # assist settings, validated at load
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return cfg


def _values(cfg: DaemonConfig) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
