"""Daemon configuration: a frozen dataclass loaded from `configs/*.yaml`, overridable from the CLI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from frankateach.constants import (
    CAM_PORT_OFFSET,
    CONTROL_PORT,
    CONTROL_FREQ,
    DEOXYS_LATENCY_MS,
    HOST,
    PERFORMANCE_CONTROL_FREQ,
    RECORD_FREQ,
    RECORDINGS_DIR,
    REQUEST_TIMEOUT_S,
    VR_FREQ,
    VR_LINK_TIMEOUT_S,
)
from oculus_server.errors import ConfigError
from oculus_server.safety.config import SafetyConfig

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


@dataclass(frozen=True)
class DaemonConfig:
    """Everything the daemon needs to run. Rates in Hz, times in seconds.

    `control_hz` None means 20 Hz, or 40 Hz with `performance`. `record_on_start` None means
    on for scripted and replay sources, off otherwise. `policy` holds overrides of the
    policy's own config (see `oculus_server.policy.PolicyConfig`), `safety` those of the command
    gate's limits (`oculus_server.safety.SafetyConfig`, validated at load).
    """

    robot_host: str = HOST
    robot_port: int = CONTROL_PORT
    camera_port_offset: int = CAM_PORT_OFFSET
    codec: str = "msgpack"
    request_timeout_s: float = REQUEST_TIMEOUT_S
    vr_source: str = "quest"
    left_controller: bool = False
    quest_ip: str | None = None
    performance: bool = False
    debug: bool = False
    vr_hz: float = VR_FREQ
    control_hz: float | None = None
    record_hz: float = RECORD_FREQ
    record: bool = True
    record_on_start: bool | None = None
    recordings_dir: str = RECORDINGS_DIR
    duration: float | None = None
    dashboard: bool = True
    hot_reload: bool = False
    cameras: tuple[int, ...] = (0, 1)
    sim_latency_ms: float = DEOXYS_LATENCY_MS
    sim_cameras: bool = True
    start_sim: bool = True  # with debug: start frankateach-sim as a child process
    hold_after_s: float = VR_LINK_TIMEOUT_S
    realtime_priority: int = 10  # SCHED_FIFO priority for the rate loops (0: off; needs CAP_SYS_NICE)
    operator: str = ""
    task: str = ""
    policy: Mapping[str, Any] = field(default_factory=dict)
    safety: Mapping[str, Any] = field(default_factory=dict)

    @property
    def effective_control_hz(self) -> float:
        if self.control_hz is not None:
            return float(self.control_hz)
        return float(PERFORMANCE_CONTROL_FREQ if self.performance else CONTROL_FREQ)

    @property
    def effective_record_on_start(self) -> bool:
        if self.record_on_start is not None:
            return self.record_on_start
        return self.vr_source.startswith(("scripted", "replay"))

    def replace(self, **changes: Any) -> "DaemonConfig":
        return dataclasses.replace(self, **_coerce(changes))


_FIELDS = {f.name: f for f in fields(DaemonConfig)}


def _coerce(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in _FIELDS:
            raise ConfigError(f"unknown config key {key!r}: expected one of {sorted(_FIELDS)}")
        if key == "cameras" and value is not None:
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) for v in value):
                raise ConfigError(f"config 'cameras': expected a list of camera ids, got {value!r}")
            value = tuple(value)
        if key == "policy":
            if not isinstance(value, Mapping):
                raise ConfigError(f"config 'policy': expected a mapping, got {type(value).__name__}")
            value = dict(value)
        if key == "safety":
            value = {} if value is None else value
            SafetyConfig.from_dict(value)  # validated here: a bad limit fails at load, naming the key
            value = dict(value)
        out[key] = value
    return out


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> DaemonConfig:
    """Reads `path` (default configs/default.yaml if present) and applies `overrides`.

    Raises:
        ConfigError: unreadable file, a non-mapping document, or an unknown key.
    """
    data: dict[str, Any] = {}
    source = path or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    if source is not None:
        try:
            loaded = yaml.safe_load(Path(source).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {source}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {source}: expected a mapping at top level, got {type(loaded).__name__}")
        data.update(loaded)
    cfg = DaemonConfig(**_coerce(data))
    if overrides:
        merged = {k: v for k, v in overrides.items() if v is not None}
        if "policy" in merged:
            merged["policy"] = {**cfg.policy, **merged["policy"]}
        if "safety" in merged:
            merged["safety"] = {**cfg.safety, **merged["safety"]}
        cfg = cfg.replace(**merged)
    return cfg
