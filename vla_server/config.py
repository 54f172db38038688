"""`ServiceConfig`: everything `vla-server serve` needs, frozen and validated at load.

Sources, later ones winning: defaults (`vla_server.constants`) ← YAML file
(``configs/vla_server.yaml``; sections ``server``, ``stream``, ``registry``, ``stream.safety``)
← environment (``INFERENCE_QUEUE_MAX_SIZE``) ← command-line overrides (dotted keys such as
``registry.eviction``). Unknown keys and wrong types are refused with the file, the key, what
was expected and what came.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robot_formats.stream.limits import DEFAULT_HOST, DEFAULT_OPENPI_PORT, DEFAULT_PORT
from vla_server.constants import (
    DEFAULT_DATA_DIR,
    KEYS_DB_NAME,
    MAX_JSON_BODY_BYTES,
    QUEUE_ENV_VAR,
    TRANSPORT_MAX_FACTOR,
)
from vla_server.registry.config import RegistryConfig
from vla_server.registry.devices import DeviceSpec
from vla_server.stream.config import StreamConfig
from vla_server.stream.safety_limits import SafetyLimits

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A configuration that does not validate; the message names the source and the key."""


@dataclass(frozen=True)
class ServerConfig:
    """Process-level settings.

    Attributes:
        host, port: the HTTP + ``/v1/stream`` listener.
        openpi_port: the openpi-compatible listener (root path); None disables it.
        openpi_model: model served there when the client names none (default: first in the catalog).
        openpi_handover: hand each admitted openpi connection to its model's worker process, which
            answers its requests itself; off: every request passes through the service (a round
            trip to the worker each).
        data_dir: keys database, worker logs, arena data.
        catalog: model catalog YAML; None = the built-in catalog.
        log_level, log_format: structured logs (``json`` lines) or ``text``.
        shutdown_timeout_s: how long sessions get to close at shutdown.
        web: mount the web UI (``/ui``) when its package is present.
        recordings_dir: teleop recordings the UI lists (and arena episodes may start from).
        arena: mount the arena API (``/v1/arena``; data in ``<data_dir>/arena``).
        arena_executor: ``local`` (process pool), ``inline`` (a thread) or ``ray``.
        arena_workers: arena pool size (None: cores − 1).
        arena_live_port: first port of an arena episode watched live (127.0.0.1; taken: the next
            free one; 0: any free port).
        max_json_body_bytes: largest HTTP request body (the API takes JSON only); larger ones
            get 413 before a byte of them is read.
        api_docs: serve the interactive API docs (``/docs``, ``/openapi.json``); off by default.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    openpi_port: int | None = DEFAULT_OPENPI_PORT
    openpi_model: str | None = None
    openpi_handover: bool = True
    data_dir: str = DEFAULT_DATA_DIR
    catalog: str | None = None
    log_level: str = "info"
    log_format: str = "json"
    shutdown_timeout_s: float = 5.0
    web: bool = True
    recordings_dir: str = "recordings"
    arena: bool = True
    arena_executor: str = "local"
    arena_workers: int | None = None
    arena_live_port: int = 8765
    max_json_body_bytes: int = MAX_JSON_BODY_BYTES
    api_docs: bool = False

    def __post_init__(self) -> None:
        for name in ("port", "openpi_port", "arena_live_port"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 65535:
                raise ValueError(f"server.{name}: expected 0..65535, got {v}")
        if self.openpi_port is not None and self.openpi_port == self.port and self.port != 0:
            raise ValueError(f"server.openpi_port: must differ from server.port ({self.port})")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"server.log_format: expected one of {LOG_FORMATS}, got {self.log_format!r}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"server.log_level: expected one of {LOG_LEVELS}, got {self.log_level!r}")
        if self.arena_workers is not None and self.arena_workers < 1:
            raise ValueError(f"server.arena_workers: expected >= 1 or null, got {self.arena_workers}")
        if self.max_json_body_bytes < 1024:
            raise ValueError(f"server.max_json_body_bytes: expected >= 1024, got {self.max_json_body_bytes}")
        if not (math.isfinite(self.shutdown_timeout_s) and self.shutdown_timeout_s > 0):
            raise ValueError(f"server.shutdown_timeout_s: expected > 0, got {self.shutdown_timeout_s}")


@dataclass(frozen=True)
class ServiceConfig:
    """The whole service configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def keys_db(self) -> Path:
        return self.data_path / KEYS_DB_NAME

    @property
    def transport_max_bytes(self) -> int:
        """uvicorn's ``ws_max_size``: above this the websocket layer closes the connection (1009)."""
        return self.stream.max_message_bytes * TRANSPORT_MAX_FACTOR


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> ServiceConfig:
    """Builds the configuration (see the module docstring).

    Args:
        path: YAML file, or None for defaults only.
        overrides: dotted keys → values (CLI flags), e.g. ``{"registry.eviction": "lfu"}``;
            None sets a nullable key to null (``{"server.openpi_port": None}`` disables it).
        env: environment (default `os.environ`).

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or invalid value.
    """
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{source}: cannot read configuration: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping of sections, got {type(loaded).__name__}")
        data = loaded or {}
    env = os.environ if env is None else env
    if env.get(QUEUE_ENV_VAR):
        raw = env[QUEUE_ENV_VAR]
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"environment {QUEUE_ENV_VAR}: expected an integer >= 1, got {raw!r}") from None
        _set_dotted(data, "stream.queue_max_size", value)
        source += f" + {QUEUE_ENV_VAR}"
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    if overrides:
        source += " + command line"
    return _build(ServiceConfig, data, source, "")


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key}: {p} is not a section")
    node[parts[-1]] = value


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{source}: {where}: unknown key(s) {unknown}; allowed: {names}")
    kwargs = {name: _convert(hints[name], data[name], source, f"{prefix}{name}") for name in names if name in data}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


_NESTED = {StreamConfig, RegistryConfig, ServerConfig, SafetyLimits, DeviceSpec}


def _convert(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            if len(members) < len(typing.get_args(hint)):
                return None
            raise ConfigError(f"{source}: {key}: expected {_name(hint)}, got null")
        return _convert(members[0], value, source, key)
    if hint in _NESTED:
        return _build(hint, value, source, key + ".")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(hint)
        item = args[0]
        if len(args) != 2 or args[1] is not Ellipsis:  # fixed-size tuple such as (x, y, z)
            if len(value) != len(args):
                raise ConfigError(f"{source}: {key}: expected {len(args)} values, got {len(value)}")
            return tuple(
                _convert(a, v, source, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        return tuple(_convert(item, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: expected true or false, got {type(value).__name__} {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    return value


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))
